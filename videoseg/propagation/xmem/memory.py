"""XMem's memory: working memory, long-term memory and their consolidation (paper step 3b).

XMem keeps three memories (Atkinson-Shiffrin model):

- **sensory memory**: a per-object hidden state updated every frame by GRUs in the network
  (``MemoryManager.hidden``, ``(1, num_objects, hidden_dim, h, w)``);
- **working memory**: the keys / values of recent memory frames (every ``mem_every``-th frame and
  every frame with a given mask), plus the first memory frame, which is never removed;
- **long-term memory**: when the working memory holds ``max_mid_term_frames`` frames, all frames but
  the first and the newest ``min_mid_term_frames - 1`` are *consolidated*: the ``num_prototypes``
  most used keys become prototypes, and each prototype's value (and shrinkage) is read out from the
  candidates with a softmax over their similarity to it (*memory potentiation*). When the long-term
  memory would exceed ``max_long_term_elements``, its least used elements (usage = times selected by
  the top-k readout / time spent in memory) are dropped first.

Keys are shared by all objects. Values are stored per *object group*: objects first given on the
same frame form a group and share a temporal extent, so a group added later holds values only for
the newest keys (its values are aligned with the *last* keys of the store).

Everything here reproduces the official implementation's arithmetic (similarity, top-k softmax,
usage counting, slicing and consolidation rules, including its quirks with late object groups). The
one opt-in difference is ``fast_readout``: the top-k affinity is applied as a sparse matrix instead
of a dense ``N x HW`` matrix with ``N - k`` zeros per column, which only changes float rounding of
the readout; the usage counts, which are ranked, keep the official bits either way (see
:meth:`TopKAffinity.row_sums`). ``bench/compare_xmem_official.py`` runs the official code beside
this one.

Shapes: ``N`` memory elements (frames x h x w), ``CK`` key channels, ``CV`` value channels,
``HW`` query positions (h x w at 1/16 of the padded frame).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

# ----------------------------------------------------------------------------- affinity

# Rows x queries materialised at a time by TopKAffinity.row_sums (4 MB of float32).
USAGE_CHUNK_ELEMENTS = 1 << 20


def get_similarity(mk: Tensor, ms: Tensor | None, qk: Tensor, qe: Tensor | None) -> Tensor:
    """Negative shrunk, selection-weighted squared L2 distance between memory and query keys.

    mk (B, CK, N) memory keys, ms (B, 1, N) shrinkage, qk (B, CK, HW) query keys, qe (B, CK, HW)
    query selection -> (B, N, HW):
    ``-(sum_c qe_c (mk_c - qk_c)^2) * ms / sqrt(CK)`` expanded as ``-a^2 + 2ab - b^2``.

    The arithmetic is the official one, operation for operation, but done in place: the N x HW
    temporaries are the largest tensors of a step, and allocating five of them per frame costs more
    than the arithmetic (about 5x on a CPU at 480p with a full memory). The result is bit-identical.
    """
    ck = mk.shape[1]
    mk = mk.flatten(start_dim=2)
    ms = ms.flatten(start_dim=1).unsqueeze(2) if ms is not None else None
    qk = qk.flatten(start_dim=2)
    qe = qe.flatten(start_dim=2) if qe is not None else None

    if qe is not None:
        mk_t = mk.transpose(1, 2)
        similarity = (mk_t.pow(2) @ qe).neg_()  # -a^2
        two_ab = mk_t @ (qk * qe)
        two_ab.mul_(2)
        similarity = _inplace_or_not(similarity, two_ab, "add")
        del two_ab
        b_sq = (qe * qk.pow(2)).sum(1, keepdim=True)
        similarity = _inplace_or_not(similarity, b_sq, "sub")
    else:
        a_sq = mk.pow(2).sum(1).unsqueeze(2)
        similarity = mk.transpose(1, 2) @ qk
        similarity.mul_(2)
        similarity = _inplace_or_not(similarity, a_sq.neg(), "add")  # -a^2 + 2ab (addition commutes)

    if ms is not None:
        similarity = _inplace_or_not(similarity, ms, "mul")
    return similarity.div_(math.sqrt(ck))


def _inplace_or_not(a: Tensor, b: Tensor, op: str) -> Tensor:
    # In place when the result keeps a's dtype (always on the CPU); otherwise promote like the
    # out-of-place official expression would (mixed fp16/fp32 memories under CUDA autocast).
    if torch.result_type(a, b) == a.dtype:
        return getattr(a, op + "_")(b)
    return getattr(torch, op)(a, b)


@dataclass
class TopKAffinity:
    """A top-k softmax affinity over N memory elements for HW queries, kept sparse.

    indices (B, k, HW) into the memory, weights (B, k, HW) summing to 1 over k.
    """

    indices: Tensor
    weights: Tensor
    size: int
    _dense: Tensor | None = field(default=None, repr=False)

    def dense(self) -> Tensor:
        """(B, N, HW) with zeros outside the top-k, as the official code materialises it (cached)."""
        if self._dense is None:
            out = self.weights.new_zeros(self.weights.shape[0], self.size, self.weights.shape[2])
            self._dense = out.scatter_(1, self.indices, self.weights)
        return self._dense

    def row_sums(self, chunk_elements: int = USAGE_CHUNK_ELEMENTS) -> Tensor:
        """(N,) ``dense().sum(dim=2)`` bit for bit (CPU), without holding the whole N x HW matrix.

        The usage decides which memory elements become prototypes and which long-term elements are
        dropped, both by ranking; elements with identical keys (padding, flat regions) have equal
        usage up to rounding, so a sum in another order (e.g. ``index_add`` in query order) breaks
        such ties differently from the official code and the memories drift apart. A row's sum only
        depends on that row, so materialising rows chunk by chunk (zeros + the row's top-k weights)
        and summing each chunk with the same reduction gives exactly the official numbers, in the
        weights' dtype. In float32 / float64 a row with at most two nonzero weights sums to the same
        bits in any order (adding zeros is exact, ``a + b == b + a``), so only rows holding three or
        more weights are materialised; the others come from a plain ``index_add``. Only batch size 1
        is supported (as in the official memory manager).
        """
        if self.weights.shape[0] != 1:
            raise ValueError(f"row_sums needs a batch of 1, got {self.weights.shape[0]}")
        k, hw = self.weights.shape[1:]
        rows = self.indices[0].reshape(-1)
        cols = torch.arange(hw, device=rows.device).repeat(k)  # entry (j, q) sits in column q
        weights = self.weights[0].reshape(-1)
        if self.weights.dtype in (torch.float32, torch.float64):
            out = torch.zeros(self.size, dtype=self.weights.dtype, device=self.weights.device)
            out.index_add_(0, rows, weights)
            order_dependent = torch.bincount(rows, minlength=self.size) >= 3
        else:
            out = torch.empty(self.size, dtype=self.weights.dtype, device=self.weights.device)
            order_dependent = torch.ones(self.size, dtype=torch.bool, device=rows.device)
        targets = order_dependent.nonzero().flatten()
        # each materialised row's place in the chunks (-1: not materialised)
        slot = torch.full((self.size,), -1, dtype=torch.long, device=rows.device)
        slot[targets] = torch.arange(len(targets), device=rows.device)
        entry_slot = slot[rows]
        step = max(1, chunk_elements // max(hw, 1))
        for start in range(0, len(targets), step):
            stop = min(start + step, len(targets))
            inside = (entry_slot >= start) & (entry_slot < stop)
            chunk = self.weights.new_zeros(stop - start, hw)
            chunk[entry_slot[inside] - start, cols[inside]] = weights[inside]
            out[targets[start:stop]] = chunk.sum(dim=1)
        return out


def topk_softmax(similarity: Tensor, top_k: int) -> TopKAffinity:
    """Softmax over the ``top_k`` largest similarities of each query (official ``do_softmax``).

    The official code exponentiates without subtracting the maximum; so do we, for identical
    numbers. ``top_k`` is capped at N (the official code raises when the memory is smaller).
    """
    k = min(top_k, similarity.shape[1])
    values, indices = torch.topk(similarity, k=k, dim=1)
    weights = values.exp_()
    weights /= torch.sum(weights, dim=1, keepdim=True)
    return TopKAffinity(indices, weights, similarity.shape[1])


def full_softmax(similarity: Tensor) -> Tensor:
    """Plain softmax over the memory axis (dim 1), max-subtracted (official, no top-k)."""
    maxes = torch.max(similarity, dim=1, keepdim=True)[0]
    x_exp = torch.exp(similarity - maxes)
    return x_exp / torch.sum(x_exp, dim=1, keepdim=True)


def sparse_readout(values: Tensor, affinity: TopKAffinity) -> Tensor:
    """values (O, CV, N) x top-k affinity (1, k, HW) -> (O, CV, HW), without the dense N x HW matrix.

    Each query reads k values instead of N, so the cost drops from O*CV*N*HW to O*CV*k*HW
    multiply-adds (a 20-50x smaller matmul for a full memory at 480p).
    """
    objects, channels, size = values.shape
    hw = affinity.indices.shape[2]
    k = affinity.indices.shape[1]
    # Row q of the (HW, N) CSR matrix holds query q's k weights at its k memory indices.
    crow = torch.arange(0, hw * k + 1, k, device=values.device)
    cols = affinity.indices[0].t().reshape(-1)
    weights = affinity.weights[0].t().reshape(-1).to(values.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        csr = torch.sparse_csr_tensor(crow, cols, weights, size=(hw, size), check_invariants=False)
        out = csr @ values.reshape(objects * channels, size).t()  # (HW, O*CV)
    return out.t().reshape(objects, channels, hw)


# ----------------------------------------------------------------------------- one key/value store


class KeyValueStore:
    """Keys (shared by all objects) and per-group values, with usage counters (official semantics).

    key (1, CK, N), shrinkage (1, 1, N) or None, selection (1, CK, N) or None,
    values[g] (objects in group g, CV, N_g) with N_g <= N aligned with the last N_g keys,
    use_count / life_count (1, 1, N) float32 when ``count_usage``.
    """

    def __init__(self, count_usage: bool):
        self.count_usage = count_usage
        self.key: Tensor | None = None
        self.shrinkage: Tensor | None = None
        self.selection: Tensor | None = None
        self.values: list[Tensor] = []
        self.groups: list[list[int]] = []  # 0-based object indices of each group
        self.all_objects: list[int] = []
        self.use_count: Tensor | None = None
        self.life_count: Tensor | None = None

    @property
    def size(self) -> int:
        return 0 if self.key is None else self.key.shape[-1]

    @property
    def num_groups(self) -> int:
        return len(self.values)

    def engaged(self) -> bool:
        return self.key is not None

    def value_size(self, group: int) -> int:
        return self.values[group].shape[2]

    def add(
        self,
        key: Tensor,
        value: Tensor | list[Tensor | None],
        shrinkage: Tensor | None,
        selection: Tensor | None,
        objects: list[int] | None,
    ) -> None:
        """Append elements. With ``objects`` (1-based labels), ``value`` is (num_objects, CV, n) and
        objects not yet in a group form a new group; without, ``value`` is a list by group (None:
        nothing for that group), as produced by consolidation."""
        n = key.shape[2]
        new_count = torch.zeros((key.shape[0], 1, n), device=key.device, dtype=torch.float32)
        new_life = torch.zeros((key.shape[0], 1, n), device=key.device, dtype=torch.float32) + 1e-7

        if self.key is None:
            self.key, self.shrinkage, self.selection = key, shrinkage, selection
            if self.count_usage:
                self.use_count, self.life_count = new_count, new_life
        else:
            self.key = torch.cat([self.key, key], -1)
            if shrinkage is not None:
                self.shrinkage = torch.cat([self.shrinkage, shrinkage], -1)
            if selection is not None:
                self.selection = torch.cat([self.selection, selection], -1)
            if self.count_usage:
                self.use_count = torch.cat([self.use_count, new_count], -1)
                self.life_count = torch.cat([self.life_count, new_life], -1)

        if objects is not None:
            if not isinstance(value, Tensor):
                raise TypeError("with objects, value must be one tensor (num_objects, CV, n)")
            remaining = [obj - 1 for obj in objects]
            for gi, group in enumerate(self.groups):
                for obj in group:
                    if obj not in remaining:
                        raise ValueError(f"object {obj + 1} of an existing group is missing from {objects}")
                    remaining.remove(obj)
                self.values[gi] = torch.cat([self.values[gi], value[group]], -1)
            if remaining:
                self.values.append(value[remaining])
                self.groups.append(list(remaining))
                self.all_objects.extend(remaining)
                if sorted(self.all_objects) != self.all_objects:
                    raise ValueError("objects must be added in increasing label order")
        else:
            if not isinstance(value, list):
                raise TypeError("without objects, value must be a list by group")
            # A None group is skipped *without* keeping its slot, exactly as the official store does.
            for gi, gv in enumerate(value):
                if gv is None:
                    continue
                if gi < self.num_groups:
                    self.values[gi] = torch.cat([self.values[gi], gv], -1)
                else:
                    self.values.append(gv)

    def update_usage(self, usage: Tensor) -> None:
        """Add one read's usage (N,) to use_count and age every element by one read."""
        if not self.count_usage:
            return
        self.use_count += usage.view_as(self.use_count)
        self.life_count += 1

    def get_usage(self) -> Tensor:
        """(1, 1, N) use_count / life_count."""
        if not self.count_usage:
            raise RuntimeError("this memory store does not count usage")
        return self.use_count / self.life_count

    def get_all_sliced(self, start: int, end: int) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
        """key, shrinkage, selection, usage of elements [start:end] (end 0 = to the end)."""
        stop = None if end == 0 else end
        usage = self.get_usage()[:, :, start:stop]
        key = self.key[:, :, start:stop]
        shrinkage = self.shrinkage[:, :, start:stop] if self.shrinkage is not None else None
        selection = self.selection[:, :, start:stop] if self.selection is not None else None
        return key, shrinkage, selection, usage

    def sieve_by_range(self, start: int, end: int, min_size: int) -> None:
        """Drop elements [start:end] (end 0 = to the end) of the keys and of every group with at
        least ``min_size`` values (smaller groups were not consolidated and keep everything)."""

        def cut(t: Tensor) -> Tensor:
            if end == 0:
                return t[:, :, :start]
            return torch.cat([t[:, :, :start], t[:, :, end:]], -1)

        self.key = cut(self.key)
        if self.count_usage:
            self.use_count = cut(self.use_count)
            self.life_count = cut(self.life_count)
        if self.shrinkage is not None:
            self.shrinkage = cut(self.shrinkage)
        if self.selection is not None:
            self.selection = cut(self.selection)
        for gi in range(self.num_groups):
            if self.values[gi].shape[-1] >= min_size:
                self.values[gi] = cut(self.values[gi])

    def remove_obsolete_features(self, max_size: int) -> None:
        """Keep only elements used more than the (size - max_size)-th least used one."""
        if self.num_groups > 1:
            raise NotImplementedError(
                "XMem cannot drop long-term memory elements when objects were added on different "
                "frames (keys and values of later groups are not aligned); raise "
                "max_long_term_elements or give all objects on the first frame"
            )
        usage = self.get_usage().flatten()
        excess = self.size - max_size
        if excess <= 0:  # the official code raises on an empty top-k here; nothing to drop
            return
        smallest, _ = torch.topk(usage, k=excess, largest=False, sorted=True)
        survived = usage > smallest[-1]
        self.key = self.key[:, :, survived]
        self.shrinkage = self.shrinkage[:, :, survived] if self.shrinkage is not None else None
        self.selection = self.selection[:, :, survived] if self.selection is not None else None
        for gi in range(self.num_groups):
            self.values[gi] = self.values[gi][:, :, survived]
        self.use_count = self.use_count[:, :, survived]
        self.life_count = self.life_count[:, :, survived]


# ----------------------------------------------------------------------------- the memory manager


class MemoryManager:
    """Working + long-term memory and the sensory (hidden) state of one video.

    config keys (official names): ``top_k``, ``enable_long_term``, ``enable_long_term_count_usage``,
    ``max_mid_term_frames``, ``min_mid_term_frames``, ``num_prototypes``,
    ``max_long_term_elements``, ``hidden_dim``; and ours: ``fast_readout``.
    """

    def __init__(self, config: dict[str, Any]):
        self.hidden_dim = int(config["hidden_dim"])
        self.top_k = config["top_k"]
        self.enable_long_term = bool(config["enable_long_term"])
        self.enable_long_term_usage = bool(config["enable_long_term_count_usage"])
        self.fast_readout = bool(config.get("fast_readout", True))
        if self.enable_long_term:
            self.max_mt_frames = int(config["max_mid_term_frames"])
            self.min_mt_frames = int(config["min_mid_term_frames"])
            self.num_prototypes = int(config["num_prototypes"])
            self.max_long_elements = int(config["max_long_term_elements"])

        self.CK: int | None = None
        self.CV: int | None = None
        self.H: int | None = None
        self.W: int | None = None
        self.HW = 0
        self.min_work_elements = self.max_work_elements = 0

        # sensory memory of all objects: (1, num_objects, hidden_dim, h, w)
        self.hidden: Tensor | None = None

        self.work_mem = KeyValueStore(count_usage=self.enable_long_term)
        self.long_mem = (
            KeyValueStore(count_usage=self.enable_long_term_usage) if self.enable_long_term else None
        )
        self.reset_config = True
        self.consolidations = 0  # how many times working memory was consolidated (for inspection)

    def update_config(self, config: dict[str, Any]) -> None:
        """Change top_k / mid-term / long-term sizes between frames (long-term on/off cannot change)."""
        if bool(config["enable_long_term"]) != self.enable_long_term or (
            bool(config["enable_long_term_count_usage"]) != self.enable_long_term_usage
        ):
            raise ValueError("enable_long_term and enable_long_term_count_usage cannot change mid-video")
        self.reset_config = True
        self.hidden_dim = int(config["hidden_dim"])
        self.top_k = config["top_k"]
        self.fast_readout = bool(config.get("fast_readout", self.fast_readout))
        if self.enable_long_term:
            self.max_mt_frames = int(config["max_mid_term_frames"])
            self.min_mt_frames = int(config["min_mid_term_frames"])
            self.num_prototypes = int(config["num_prototypes"])
            self.max_long_elements = int(config["max_long_term_elements"])

    # ------------------------------------------------------------------ reading

    def _affinity(self, similarity: Tensor) -> TopKAffinity | Tensor:
        if self.top_k is None:
            return full_softmax(similarity)
        return topk_softmax(similarity, int(self.top_k))

    def _readout(self, affinity: TopKAffinity | Tensor, values: Tensor) -> Tensor:
        if isinstance(affinity, Tensor):
            return values @ affinity
        if self.fast_readout and values.device.type == "cpu":
            return sparse_readout(values, affinity)
        # On a GPU the dense matmul is cheap and exact to the official numbers.
        return values @ affinity.dense()

    def _usage_of(self, affinity: TopKAffinity | Tensor) -> Tensor:
        # The official code sums the dense affinity over the queries in its own dtype (fp16 under
        # CUDA autocast). The usage is only ever ranked (prototype choice, long-term removal), and
        # equal-key elements tie, so it must be the same bits, not just close: a float32 sum in
        # another order picked other prototypes than the official code from the second
        # consolidation on (bench/compare_xmem_official.py). On the CPU, row_sums gives the official
        # bits chunk by chunk; elsewhere (or when the dense matrix exists anyway) the dense sum.
        if isinstance(affinity, TopKAffinity):
            if affinity.weights.device.type == "cpu" and affinity._dense is None and self.fast_readout:
                return affinity.row_sums()
            return affinity.dense().sum(dim=2).flatten()
        return affinity.sum(dim=2).flatten()  # a full-softmax (top_k None) dense affinity

    def match_memory(self, query_key: Tensor, selection: Tensor | None) -> Tensor:
        """Read the memory for one frame: query_key / selection (1, CK, h, w) -> (num_objects, CV, h, w)."""
        num_groups = self.work_mem.num_groups
        h, w = query_key.shape[-2:]
        query_key = query_key.flatten(start_dim=2)
        selection = selection.flatten(start_dim=2) if selection is not None else None

        long_mem = self.long_mem
        if self.enable_long_term and long_mem is not None and long_mem.engaged():
            long_size = long_mem.size
            memory_key = torch.cat([long_mem.key, self.work_mem.key], -1)
            shrinkage = torch.cat([long_mem.shrinkage, self.work_mem.shrinkage], -1)
            similarity = get_similarity(memory_key, shrinkage, query_key, selection)
            work_sim = similarity[:, long_size:]
            long_sim = similarity[:, :long_size]

            # Group 0 (the first objects) has a value for every key; its affinity also gives the usage.
            first = self._affinity(torch.cat([long_sim[:, -long_mem.value_size(0) :], work_sim], 1))
            affinities = [first]
            for gi in range(1, num_groups):
                work_part = work_sim[:, -self.work_mem.value_size(gi) :]
                if gi < long_mem.num_groups:
                    part = torch.cat([long_sim[:, -long_mem.value_size(gi) :], work_part], 1)
                else:
                    part = work_part
                affinities.append(self._affinity(part))

            all_values = []
            for gi, gv in enumerate(self.work_mem.values):
                if gi < long_mem.num_groups:
                    all_values.append(torch.cat([long_mem.values[gi], gv], -1))
                else:
                    all_values.append(gv)

            usage = self._usage_of(first)
            self.work_mem.update_usage(usage[long_size:])
            if self.enable_long_term_usage:
                long_mem.update_usage(usage[:long_size])
        else:
            similarity = get_similarity(self.work_mem.key, self.work_mem.shrinkage, query_key, selection)
            first = self._affinity(similarity)
            affinities = [first]
            for gi in range(1, num_groups):
                affinities.append(self._affinity(similarity[:, -self.work_mem.value_size(gi) :]))
            all_values = self.work_mem.values
            if self.enable_long_term:
                self.work_mem.update_usage(self._usage_of(first))

        readout = torch.cat([self._readout(aff, gv) for aff, gv in zip(affinities, all_values)], 0)
        return readout.view(readout.shape[0], self.CV, h, w)

    # ------------------------------------------------------------------ writing

    def add_memory(
        self,
        key: Tensor,
        shrinkage: Tensor,
        value: Tensor,
        objects: list[int],
        selection: Tensor | None = None,
    ) -> None:
        """key (1, CK, h, w), shrinkage (1, 1, h, w), value (1, num_objects, CV, h, w),
        objects: the 1-based labels of all objects so far; selection only with long-term memory."""
        if self.H is None or self.reset_config:
            self.reset_config = False
            self.H, self.W = key.shape[-2:]
            self.HW = self.H * self.W
            if self.enable_long_term:
                # frame counts -> element counts
                self.min_work_elements = self.min_mt_frames * self.HW
                self.max_work_elements = self.max_mt_frames * self.HW

        key = key.flatten(start_dim=2)
        shrinkage = shrinkage.flatten(start_dim=2)
        value = value[0].flatten(start_dim=2)
        self.CK = key.shape[1]
        self.CV = value.shape[1]
        if selection is not None:
            selection = selection.flatten(start_dim=2)

        self.work_mem.add(key, value, shrinkage, selection, objects)

        if self.enable_long_term and self.work_mem.size >= self.max_work_elements:
            long_mem = self.long_mem
            if long_mem.size >= self.max_long_elements - self.num_prototypes:
                long_mem.remove_obsolete_features(self.max_long_elements - self.num_prototypes)
            self.compress_features()

    def create_hidden_state(self, n: int, sample_key: Tensor) -> None:
        """Make the hidden state hold ``n`` objects (zeros for new ones); sample_key gives h, w, device."""
        h, w = sample_key.shape[-2:]
        if self.hidden is None:
            self.hidden = torch.zeros((1, n, self.hidden_dim, h, w), device=sample_key.device)
        elif self.hidden.shape[1] != n:
            extra = torch.zeros(
                (1, n - self.hidden.shape[1], self.hidden_dim, h, w), device=sample_key.device
            )
            self.hidden = torch.cat([self.hidden, extra], 1)
        if self.hidden.shape[1] != n:
            raise ValueError(f"hidden state holds {self.hidden.shape[1]} objects, expected {n}")

    def set_hidden(self, hidden: Tensor | None) -> None:
        self.hidden = hidden

    def get_hidden(self) -> Tensor | None:
        return self.hidden

    # ------------------------------------------------------------------ consolidation

    def compress_features(self) -> None:
        """Move working-memory frames 1 .. (T - min_mid_term_frames) into long-term prototypes."""
        hw = self.HW
        keep = -self.min_work_elements + hw  # end of the consolidated range (negative: from the end)
        total = self.work_mem.size
        candidate_values: list[Tensor | None] = []
        for gv in self.work_mem.values:
            size = gv.shape[-1]
            if size == total or size > self.min_work_elements + hw:
                # (the official slice, including its behaviour when ``keep`` is 0)
                candidate_values.append(gv[:, :, hw:keep])
            else:
                candidate_values.append(None)  # a late group too young to consolidate

        prototype_key, prototype_value, prototype_shrinkage = self.consolidation(
            *self.work_mem.get_all_sliced(hw, keep), candidate_values
        )
        self.work_mem.sieve_by_range(hw, keep, min_size=self.min_work_elements + hw)
        self.long_mem.add(prototype_key, prototype_value, prototype_shrinkage, selection=None, objects=None)
        self.consolidations += 1

    def consolidation(
        self,
        candidate_key: Tensor,
        candidate_shrinkage: Tensor | None,
        candidate_selection: Tensor | None,
        usage: Tensor,
        candidate_values: list[Tensor | None],
    ) -> tuple[Tensor, list[Tensor | None], Tensor | None]:
        """Pick the most used candidates as prototypes and read their values (memory potentiation).

        candidate_key (1, CK, N), usage (1, 1, N), candidate_values[g] (objects, CV, N_g) or None.
        """
        n = candidate_key.shape[-1]
        k = min(self.num_prototypes, n)  # the official code raises when fewer candidates exist
        _, max_usage_indices = torch.topk(usage, k=k, dim=-1, sorted=True)
        prototype_indices = max_usage_indices.flatten()

        # A prototype is valid for a group only if the group has a value at that key.
        validity = [
            prototype_indices >= (n - gv.shape[2]) if gv is not None else None for gv in candidate_values
        ]

        prototype_key = candidate_key[:, :, prototype_indices]
        prototype_selection = (
            candidate_selection[:, :, prototype_indices] if candidate_selection is not None else None
        )
        similarity = get_similarity(candidate_key, candidate_shrinkage, prototype_key, prototype_selection)

        # Group by group: each group's softmax runs over its own candidates and valid prototypes.
        affinity: list[Tensor | None] = []
        for gi, gv in enumerate(candidate_values):
            if gv is None:
                affinity.append(None)
                continue
            aff = full_softmax(similarity[:, -gv.shape[2] :, validity[gi]])
            affinity.append(aff if aff.shape[-1] > 0 else None)

        prototype_value = [
            gv @ aff if aff is not None else None for gv, aff in zip(candidate_values, affinity)
        ]
        prototype_shrinkage = candidate_shrinkage @ affinity[0] if candidate_shrinkage is not None else None
        return prototype_key, prototype_value, prototype_shrinkage

"""Speed of our XMem inference core (paper step 3b) on the CPU at 480p, random weights.

Prints ms/frame for:

- ``ours``: the default core (in-place similarity, sparse top-k readout, the image half of the
  fusion convolutions shared by all objects);
- ``official-path``: the same network run the way the official code runs it, written here from
  the official arithmetic: the out-of-place similarity expression, the dense N x HW top-k affinity
  and its dense matmul readout, and the per-object fusion convolutions.

and the largest difference between their probabilities (float rounding only). Usage::

    python bench/bench_xmem.py [--frames 16] [--objects 2] [--height 480] [--width 854]
                               [--mem-every 1] [--threads 2] [--modes ours,official-path]

``--mem-every 1`` (default) fills the working memory within ten frames and consolidates into the
long-term memory from then on, i.e. the steady state of a long video; ``--mem-every 5`` is the
official default cadence (memory grows 5x slower).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videoseg.propagation.xmem import InferenceCore, XMem
from videoseg.propagation.xmem import memory as xmem_memory


def official_similarity(mk, ms, qk, qe):
    """The official similarity expression, evaluated out of place (five N x HW temporaries)."""
    ck = mk.shape[1]
    mk = mk.flatten(start_dim=2)
    ms = ms.flatten(start_dim=1).unsqueeze(2) if ms is not None else None
    qk = qk.flatten(start_dim=2)
    qe = qe.flatten(start_dim=2) if qe is not None else None
    if qe is not None:
        mk = mk.transpose(1, 2)
        a_sq = mk.pow(2) @ qe
        two_ab = 2 * (mk @ (qk * qe))
        b_sq = (qe * qk.pow(2)).sum(1, keepdim=True)
        similarity = -a_sq + two_ab - b_sq
    else:
        a_sq = mk.pow(2).sum(1).unsqueeze(2)
        similarity = -a_sq + 2 * (mk.transpose(1, 2) @ qk)
    if ms is not None:
        return similarity * ms / math.sqrt(ck)
    return similarity / math.sqrt(ck)


@contextmanager
def official_path(net: XMem):
    """Run the network / memory the official way for the duration of the block."""
    fast_similarity = xmem_memory.get_similarity
    xmem_memory.get_similarity = official_similarity
    net.set_shared_image_conv(False)
    try:
        yield {"fast_readout": False}
    finally:
        xmem_memory.get_similarity = fast_similarity
        net.set_shared_image_conv(True)


@contextmanager
def our_path(net: XMem):
    yield {"fast_readout": True}


def random_net(seed: int = 0) -> XMem:
    torch.manual_seed(seed)
    net = XMem().eval()  # the released widths: 62 M parameters
    with torch.no_grad():
        # keep similarities in the range where the (max-free) top-k softmax does not underflow
        net.key_proj.key_proj.weight.mul_(0.05)
        net.key_proj.d_proj.weight.mul_(0.01)
    return net


def run(net, frames, masks, config, mode):
    context = official_path(net) if mode == "official-path" else our_path(net)
    with context as extra:
        core = InferenceCore(net, {**config, **extra})
        core.set_all_labels(range(1, masks.shape[0] + 1))
        probs, times = [], []
        for t in range(len(frames)):
            start = time.perf_counter()
            prob = core.step(frames[t], masks if t == 0 else None, end=(t == len(frames) - 1))
            times.append(time.perf_counter() - start)
            probs.append(prob)
    long_size = core.memory.long_mem.size if core.memory.long_mem is not None else 0
    return probs, times, core.memory.work_mem.size, long_size


def bench_memory_read(objects: int, hw: int, work_frames: int, long_elements: int, repeats: int = 3) -> None:
    """Time one memory read (similarity, top-k, readout, usage) at a given memory size, both ways."""
    from videoseg.propagation.xmem.memory import MemoryManager

    g = torch.Generator()
    config = {
        "hidden_dim": 64,
        "top_k": 30,
        "enable_long_term": True,
        "enable_long_term_count_usage": True,
        "max_mid_term_frames": work_frames + 1,
        "min_mid_term_frames": 2,
        "num_prototypes": 128,
        "max_long_term_elements": long_elements + 128,
    }

    def rand(*shape, low=0.0):
        return torch.rand(*shape, generator=g) * 0.5 + low

    def filled(fast: bool) -> MemoryManager:
        g.manual_seed(2)  # the same memory contents for both modes
        mem = MemoryManager({**config, "fast_readout": fast})
        h, w = 1, hw
        for _ in range(work_frames):
            mem.add_memory(
                rand(1, 64, h, w),
                rand(1, 1, h, w, low=1),
                rand(1, objects, 512, h, w),
                list(range(1, objects + 1)),
                rand(1, 64, h, w),
            )
        if long_elements:
            mem.long_mem.add(
                rand(1, 64, long_elements),
                [rand(objects, 512, long_elements)],
                rand(1, 1, long_elements, low=1),
                None,
                None,
            )
        return mem

    g.manual_seed(3)
    query, selection = rand(1, 64, 1, hw), rand(1, 64, 1, hw)
    print(
        f"memory read only: {objects} object(s), {hw} queries, working memory {work_frames * hw} + "
        f"long-term {long_elements} elements"
    )
    outputs = {}
    for mode in ("ours", "official-path"):
        mem = filled(mode == "ours")
        fast_similarity = xmem_memory.get_similarity
        if mode == "official-path":
            xmem_memory.get_similarity = official_similarity
        try:
            with torch.inference_mode():
                mem.match_memory(query, selection)
                start = time.perf_counter()
                for _ in range(repeats):
                    outputs[mode] = mem.match_memory(query, selection)
                elapsed = (time.perf_counter() - start) / repeats
        finally:
            xmem_memory.get_similarity = fast_similarity
        print(f"  {mode:<14} {1000 * elapsed:8.0f} ms/read")
    diff = (outputs["ours"] - outputs["official-path"]).abs().max().item()
    print(f"  max |ours - official-path| readout difference: {diff:.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--mem-every", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default="ours,official-path")
    parser.add_argument("--per-frame", action="store_true", help="also print every frame's time")
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="time only a memory read at the official steady-state size (10 frames + 10000 long-term)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_only:
        hw = ((args.height + 15) // 16) * ((args.width + 15) // 16)
        bench_memory_read(args.objects, hw, work_frames=10, long_elements=10000)
        return

    net = random_net()
    g = torch.Generator().manual_seed(1)
    frames = torch.randn(args.frames, 3, args.height, args.width, generator=g)
    masks = torch.zeros(args.objects, args.height, args.width)
    for k in range(args.objects):
        top = args.height // 8 + k * args.height // (2 * args.objects)
        masks[k, top : top + args.height // 4, args.width // 8 * (k + 1) : args.width // 8 * (k + 3)] = 1
    config = {"mem_every": args.mem_every}

    print(
        f"XMem core, CPU x{args.threads} threads, {args.width}x{args.height}, {args.objects} object(s), "
        f"{args.frames} frames, mem_every={args.mem_every}, torch {torch.__version__}"
    )
    run(net, frames[:2], masks, config, "ours")  # warm-up: oneDNN builds its kernels on first use
    results = {}
    for mode in args.modes.split(","):
        probs, times, work, long = run(net, frames, masks, config, mode)
        results[mode] = probs
        later = times[1:]
        print(
            f"  {mode:<14} {1000 * sum(later) / len(later):8.0f} ms/frame (frames 1..{len(times) - 1}), "
            f"last frame {1000 * times[-1]:.0f} ms, working memory {work} / long-term {long} elements"
        )
        if args.per_frame:
            print("    per frame (ms):", " ".join(f"{1000 * t:.0f}" for t in times))
    if "ours" in results and "official-path" in results:
        diff = max((a - b).abs().max().item() for a, b in zip(results["ours"], results["official-path"]))
        print(f"  max |ours - official-path| over all probabilities: {diff:.2e}")


if __name__ == "__main__":
    main()

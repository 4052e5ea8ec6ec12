"""Benchmark runs over a released split, in one process or sharded over many, scored once (paper:
Experiments, the Tables 1-3 protocol). The command line is :mod:`videoseg.cli.benchmark`.

For every expression of the split (or of ``--videos`` / the first ``--limit``), the three stages run
on the video's JPEG frames (:class:`videoseg.eval.datasets.FrameFolder`) and the union of the
predicted targets is written where the benchmark's scoring script or server reads it:
``<out>/Annotations/<video>/<exp_id>/<frame>.png``, single-channel 0 / 255 PNGs (MeViS and ReVOS read
them as grayscale, non-zero = foreground; Ref-YouTube-VOS's server takes a zip of that
``Annotations`` folder, written to ``<out>/submission.zip`` once every expression of the split has
its masks).

**Sharding.** Under ``torchrun`` / ``accelerate launch`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in
the environment) or with ``--shard I/N``, the chosen expressions are split by :func:`plan_shards`
into N deterministic shares balanced by cost (a video's frame count plus a fixed per-expression
cost), a video's expressions kept together and run back to back, so each process decodes a video's
frames once (a per-video frame cache) and loads its models once (the per-process model cache of
:mod:`videoseg.runtime.loading`), on the GPU of its ``LOCAL_RANK``. No collective is used: shards
talk through files in ``<out>/shards/`` (a heartbeat ``<i>-of-<n>.alive`` touched while a shard
works, a marker ``<i>-of-<n>.json`` written when it ends, saying done or failed and naming its
unfinished expressions). Shard 0 (rank 0), or a later ``benchmark --merge``, waits for the others,
scores every expression once from the PNGs on disk and writes the same ``--json``, ``results.json``
and ``results.md`` as a one-process run: the scores depend only on the masks, never on which
process made them. A shard that crashed or shows no heartbeat for ``--wait-timeout`` seconds is
named with its unfinished expressions; re-running the same command redoes only what is missing
(the share of each shard is the same for the same N, and finished expressions are resumed).

**Results a person reads** (:func:`write_results`): ``results.md`` (per preset and subset J, F, J&F,
R where the benchmark defines it, failed runs; the worst expressions linked to their traces),
``results.json`` (every row and the aggregates) and ``results.html`` (per-expression J&F sorted,
:func:`videoseg.viz.curves.benchmark_jf_figure`); the explorer's Inspect tab opens ``results.json``
or a zip of the folder (:func:`inspect_view`).

**Scores** (where ground truth is released: MeViS valid_u / train, ReVOS, Ref-DAVIS17): per expression
J and F over all its frames against the union of its objects (:func:`videoseg.eval.metrics.
expression_scores`), then the mean over expressions (MeViS); ReVOS adds the referring and reasoning
subsets, overall = their mean, and robustness R from ``mask_dict_foreground.json`` (type 2
expressions are scored but counted in neither subset, as its script does); Ref-DAVIS17 adds the mean
of each of the four annotator sets.

A run that ends in an error counts as empty masks, as a benchmark would score a missing answer, and
is reported (and retried by the next run). Each expression's masks are written to a staging folder
first and moved into place when complete, so Ctrl-C or a crash leaves only finished expressions on
disk. ``benchmark_runs*.jsonl`` logs each run (one file per shard, so no two processes append to
one file); ``benchmark.json`` records layout, split and preset, and a run with another preset into
the same folder is refused (its masks would be mixed in).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import socket
import threading
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videoseg.eval.datasets import BenchExpression, Benchmark, DatasetError, FrameFolder

RUN_LOG = "benchmark_runs.jsonl"  # the one-process log; shard i of n writes benchmark_runs.<i>-of-<n>.jsonl
META_FILE = "benchmark.json"
SUBMISSION = "submission.zip"
SHARD_DIR = "shards"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
RESULTS_HTML = "results.html"
# Files the benchmark writes at the top of --out (a --json path may not be one of them).
WRITTEN_FILES = (META_FILE, RUN_LOG, SUBMISSION, RESULTS_JSON, RESULTS_MD, RESULTS_HTML)
WRITTEN_FOLDERS = ("Annotations", "traces", SHARD_DIR)

# One expression's HTFS and reasoning calls cost about as much as propagating this many frames
# (an assumption, not a measurement: on a GPU a 7B model's few generate calls take seconds, XMem
# tens of frames per second). It only sets how shares are balanced, never what is computed.
FIXED_COST_FRAMES = 100
HEARTBEAT_S = 10.0  # how often a working shard touches its heartbeat file
DEFAULT_WAIT_TIMEOUT_S = 900.0  # give up on a shard whose heartbeat is older than this
DEFAULT_FRAME_CACHE_MB = 2048  # decoded frames of the current video kept for its next expressions
# A marker written up to this long before the waiting shard began still counts as this launch's:
# the processes of one launch start within seconds of each other, and each removes its own old
# marker when it starts.
LAUNCH_SLACK_S = 60.0


# ---------------------------------------------------------------------------------- selection


def select(bench: Benchmark, videos: str = "", limit: int | None = None) -> list[BenchExpression]:
    """The expressions to run: of ``videos`` (comma-separated names, all if empty), the first ``limit``."""
    names = [v.strip() for v in videos.split(",") if v.strip()]
    known = {v.name for v in bench.videos}
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(sorted(known)[:5]) + (", ..." if len(known) > 5 else "")
        raise ValueError(f"--videos: no video {unknown[0]!r} in {bench.name} (videos: {listed})")
    chosen = [e for e in bench.expressions() if not names or e.video in names]
    return chosen[:limit] if limit is not None else chosen


def prediction_dir(out: Path, expr: BenchExpression) -> Path:
    return out / "Annotations" / expr.video / expr.exp_id


def is_complete(out: Path, expr: BenchExpression, frames: list[str]) -> bool:
    folder = prediction_dir(out, expr)
    return folder.is_dir() and all((folder / f"{name}.png").is_file() for name in frames)


def trace_path(out: Path, expr: BenchExpression) -> Path:
    return out / "traces" / expr.video / f"{expr.exp_id}.jsonl"


# ----------------------------------------------------------------------------------- sharding


@dataclass(frozen=True)
class ShardSpec:
    """Which share of the expressions this process runs: ``index`` of ``count`` (from 0, like RANK)."""

    index: int = 0
    count: int = 1
    local_rank: int | None = None  # LOCAL_RANK: which GPU of the node this process takes
    source: str = ""  # "launcher" (RANK / WORLD_SIZE), "--shard", or "" (one process)

    @property
    def label(self) -> str:
        return f"{self.index}-of-{self.count}"

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"


def _env_int(env: Mapping[str, str], name: str, minimum: int) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"environment variable {name}={raw!r} must be at least {minimum}")
    return value


def shard_spec(arg: str | None, env: Mapping[str, str] | None = None) -> ShardSpec:
    """This process's share: ``--shard I/N`` when given, else the launcher's ``RANK`` / ``WORLD_SIZE``
    (torchrun and accelerate launch set both, and ``LOCAL_RANK``), else the whole set.

    Raises ValueError naming the bad argument or variable.
    """
    env = os.environ if env is None else env
    local = _env_int(env, "LOCAL_RANK", 0)
    world = _env_int(env, "WORLD_SIZE", 1)
    if arg is not None:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", arg)
        if match is None:
            raise ValueError(f"--shard must look like I/N, e.g. 0/4 (I counts from 0), got {arg!r}")
        index, count = int(match[1]), int(match[2])
        if count < 1 or index >= count:
            raise ValueError(f"--shard {arg}: I must be 0..N-1 (I counts from 0, like RANK)")
        if world is not None and world > 1:
            raise ValueError(
                f"--shard {arg} given to a process started by a launcher (WORLD_SIZE={world}): the "
                "launcher already splits the work; drop --shard"
            )
        return ShardSpec(index, count, local, "--shard")
    if world is None or world == 1:
        return ShardSpec(0, 1, local, "")
    rank = _env_int(env, "RANK", 0)
    if rank is None:
        raise ValueError(f"WORLD_SIZE={world} is set but RANK is not; start the processes with torchrun")
    if rank >= world:
        raise ValueError(f"RANK={rank} must be below WORLD_SIZE={world}")
    return ShardSpec(rank, world, local, "launcher")


def shard_device(device: str, local_rank: int | None, cuda_count: int) -> tuple[str | None, str | None]:
    """(the device this process should use instead of the configured one, a note), or (None, None).

    A process with a ``LOCAL_RANK`` whose configuration says ``auto`` / ``cuda`` takes
    ``cuda:<LOCAL_RANK>``. When fewer GPUs are visible than ranks on the node (a scheduler that gives
    each process its own ``CUDA_VISIBLE_DEVICES``, or more processes than GPUs), ranks wrap around.
    """
    name = (device or "auto").strip().lower()
    if local_rank is None or cuda_count < 1 or name not in ("auto", "cuda"):
        return None, None
    index = local_rank % cuda_count
    note = None
    if local_rank >= cuda_count and cuda_count > 1:
        note = f"LOCAL_RANK {local_rank} but {cuda_count} GPUs are visible: sharing cuda:{index}"
    return f"cuda:{index}", note


@dataclass
class _Unit:
    cost: int
    first: int
    positions: list[int] = field(default_factory=list)


def expression_cost(frames: int) -> int:
    """What one expression of a ``frames``-frame video costs, in frames (see FIXED_COST_FRAMES)."""
    return int(frames) + FIXED_COST_FRAMES


def plan_shards(
    expressions: Sequence[BenchExpression], frame_counts: Mapping[str, int], count: int
) -> list[list[BenchExpression]]:
    """Split ``expressions`` into ``count`` shares of about equal cost, deterministically.

    The expressions of a video form one unit (so a shard decodes each of its videos once), unless
    the unit alone costs more than an even share: then it is cut into contiguous pieces of at most
    about a share. Units are dealt longest first to the least loaded shard (ties: lowest index), and
    each share keeps the input order, so a video's expressions run back to back. The plan depends
    only on the expression list, the frame counts and ``count`` (integer arithmetic): every process
    of a launch computes the same plan, and a re-run with the same N gives each shard the same share.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    by_video: dict[str, list[int]] = {}
    for pos, expr in enumerate(expressions):
        by_video.setdefault(expr.video, []).append(pos)
    total = sum(expression_cost(frame_counts[e.video]) for e in expressions)
    units: list[_Unit] = []
    for video, positions in by_video.items():
        each = expression_cost(frame_counts[video])
        cost = each * len(positions)
        pieces = 1 if total == 0 else max(1, min(len(positions), -(-cost * count // total)))
        for k in range(pieces):  # contiguous, sizes differ by at most one
            lo = k * len(positions) // pieces
            hi = (k + 1) * len(positions) // pieces
            part = positions[lo:hi]
            units.append(_Unit(each * len(part), part[0], list(part)))
    units.sort(key=lambda u: (-u.cost, u.first))
    loads = [0] * count
    members: list[list[int]] = [[] for _ in range(count)]
    for unit in units:
        k = min(range(count), key=lambda i: (loads[i], i))
        loads[k] += unit.cost
        members[k].extend(unit.positions)
    return [[expressions[p] for p in sorted(m)] for m in members]


# ----------------------------------------------------------------------- shard files (markers)


def shard_dir(out: Path) -> Path:
    return out / SHARD_DIR


def run_log_path(out: Path, spec: ShardSpec) -> Path:
    return out / (RUN_LOG if not spec.sharded else f"benchmark_runs.{spec.label}.jsonl")


def marker_path(out: Path, label: str) -> Path:
    return shard_dir(out) / f"{label}.json"


def heartbeat_path(out: Path, label: str) -> Path:
    return shard_dir(out) / f"{label}.alive"


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write ``path`` whole or not at all (readers in other processes never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}.partial")
    partial.write_text(json.dumps(data, indent=1, default=_json_default) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


class Heartbeat:
    """``<out>/shards/<label>.alive``, touched every :data:`HEARTBEAT_S` seconds from a thread while
    the shard works (model loading included), holding which expressions the shard owns. A waiting
    shard compares its age with the file system's clock (the mtime of a file it touches itself), so
    machines whose clocks differ still agree on it."""

    def __init__(
        self, out: Path, spec: ShardSpec, keys: Sequence[str], interval: float = HEARTBEAT_S
    ) -> None:
        self.path = heartbeat_path(out, spec.label)
        self.interval = interval
        content = {
            "shard": spec.index,
            "of": spec.count,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "expressions": list(keys),
        }
        _write_json_atomic(self.path, content)
        self.started = self.beat()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{spec.label}", daemon=True)
        self._thread.start()

    def beat(self) -> float:
        """Touch the file; returns its new mtime (the file system's "now")."""
        with contextlib.suppress(OSError):
            os.utime(self.path)
        return _mtime(self.path) or time.time()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self._stop.set()


def write_meta(out: Path, meta: Mapping[str, Any]) -> None:
    """``<out>/benchmark.json``: layout, split, preset, root and the last selection (every process
    of a launch writes the same content, each whole)."""
    _write_json_atomic(out / META_FILE, dict(meta))


def shard_count(out: Path) -> int:
    """How many shards the latest sharded launch into ``out`` had (1 when none)."""
    counts = []
    for path in shard_dir(out).glob("*.alive"):
        match = re.fullmatch(r"(\d+)-of-(\d+)", path.stem)
        if match:
            counts.append((_mtime(path) or 0.0, int(match[2])))
    return max(counts)[1] if counts else 1


def missing_by_shard(out: Path, missing: Sequence[str]) -> list[str]:
    """For ``--merge``: which shard owned each expression without predictions, and how it ended
    (its marker's status and error, or no marker: killed or still running)."""
    left = set(missing)
    said = []
    for path in sorted(shard_dir(out).glob("*.alive"), key=lambda p: -(_mtime(p) or 0.0)):
        content = _read_json(path)
        if not isinstance(content, dict) or not left:
            continue
        owned = [k for k in content.get("expressions") or [] if k in left]
        if not owned:
            continue
        left -= set(owned)
        marker = _read_json(marker_path(out, path.stem))
        if isinstance(marker, dict) and marker.get("status") == "failed":
            how = f"failed: {marker.get('error') or 'no reason given'}"
        elif isinstance(marker, dict):
            how = "ended"
        else:
            how = f"ended without a marker (killed?) on {content.get('host', '?')}, pid {content.get('pid', '?')}"
        shard = path.stem.replace("-of-", " of ")
        said.append(
            f"shard {shard} {how}; its expressions without predictions ({len(owned)}): {names(owned)}"
        )
    if left:
        said.append(f"{len(left)} expressions were never run: {names(sorted(left))}")
    return said


def write_marker(out: Path, spec: ShardSpec, status: str, unfinished: Sequence[str], **extra: Any) -> None:
    """``<out>/shards/<label>.json``: this shard ended (``done`` or ``failed``), and what it left."""
    _write_json_atomic(
        marker_path(out, spec.label),
        {
            "shard": spec.index,
            "of": spec.count,
            "status": status,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "unfinished": list(unfinished),
            **extra,
        },
    )


# ------------------------------------------------------------------------------------ run logs


def earlier_runs(out: Path) -> dict[str, dict[str, Any]]:
    """The latest log record of each expression over every run log in ``out`` (all shards)."""
    entries: list[tuple[float, str, int, str, dict[str, Any]]] = []
    for path in sorted(out.glob("benchmark_runs*.jsonl")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for n, line in enumerate(lines):
            try:
                rec = json.loads(line)
                key = f"{rec['video']}/{rec['exp_id']}"
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
            stamp = rec.get("time")
            when = float(stamp) if isinstance(stamp, (int, float)) and not isinstance(stamp, bool) else 0.0
            entries.append((when, path.name, n, key, rec))
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    return {key: rec for _, _, _, key, rec in entries}


def settled(
    out: Path, bench: Benchmark, expr: BenchExpression, records: Mapping[str, Mapping[str, Any]]
) -> bool:
    """Finished for good: its masks are all on disk and its last run did not fail (a failed one
    is retried by the next run of its shard)."""
    rec = records.get(expr.key)
    return is_complete(out, expr, bench.video(expr.video).frames) and not (
        rec and rec.get("status") == "error"
    )


# ----------------------------------------------------------------------------------- running


def run_expression(
    bench: Benchmark,
    expr: BenchExpression,
    video: Any,
    config: Any,
    preset: str,
    out: Path,
    trace_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the pipeline for one expression and write its masks; returns the log record."""
    from videoseg.core.state import RunState
    from videoseg.io.export import write_benchmark_pngs
    from videoseg.io.outputs import staging_folder
    from videoseg.pipeline import orchestrator

    start = time.perf_counter()
    reset_random_state(config)
    events: Any = orchestrator.run(video, expr.text, config, preset=preset)
    if trace_dir is not None:
        from videoseg.core.trace import tee

        trace = trace_dir / expr.video / f"{expr.exp_id}.jsonl"
        trace.parent.mkdir(parents=True, exist_ok=True)
        events = tee(events, trace)
    state = RunState()
    for event in events:
        state.apply(event)
    frames = bench.video(expr.video).frames
    width, height = video.size
    target = prediction_dir(out, expr)
    with staging_folder(out) as staging:
        # The union of the targets as 0 / 255 PNGs: written by the one export (videoseg.io.export).
        write_benchmark_pngs(staging, state.masks, frames, (width, height))
        target.mkdir(parents=True, exist_ok=True)
        for name in frames:  # each move is atomic: an interrupted one leaves the folder incomplete
            os.replace(staging / f"{name}.png", target / f"{name}.png")
    errors = [f"[{e.for_stage}] {e.message}" for e in state.errors]
    return {
        "video": expr.video,
        "exp_id": expr.exp_id,
        "preset": preset,
        "status": "error" if state.status != "finished" else "finished",
        "errors": errors,
        "target_frame": state.keyframe,
        "frames_decoded": state.frames_decoded,
        "seconds": round(time.perf_counter() - start, 3),
    }


def reset_random_state(config: Any) -> None:
    """Start an expression from the same random state whichever process runs it and whatever ran
    before it there, so one process and N shards write identical masks. OpenCV's GrabCut draws its
    initial clusters from ``cv::theRNG()``, a per-thread generator that otherwise carries over from
    the previous expression (measured: the masks of a video changed with the videos run before it)."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - opencv is a dependency; nothing to reset without it
        return
    cv2.setRNGSeed(int(getattr(config, "seed", 0) or 0))


@dataclass
class ShardOutcome:
    """What one process did with its share."""

    ran: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def run_shard(
    bench: Benchmark,
    mine: Sequence[BenchExpression],
    *,
    out: Path,
    config: Any,
    preset: str,
    fps: float,
    spec: ShardSpec,
    trace_dir: Path | None = None,
    frame_cache_mb: float = DEFAULT_FRAME_CACHE_MB,
    echo: Callable[[str], None] = print,
    outcome: ShardOutcome | None = None,
) -> ShardOutcome:
    """Run (or resume) this process's expressions, in order; one video open at a time, its decoded
    frames cached for its next expressions. Fills and returns ``outcome`` (given, it holds what was
    done even when an exception or Ctrl-C stops the loop)."""
    outcome = outcome if outcome is not None else ShardOutcome()
    earlier = earlier_runs(out)
    prefix = f"[{spec}] " if spec.sharded else ""
    opened: dict[str, FrameFolder] = {}
    cache_bytes = int(max(frame_cache_mb, 0) * 2**20)
    with run_log_path(out, spec).open("a", encoding="utf-8") as log:
        for n, expr in enumerate(mine, 1):
            tag = f"{prefix}[{n}/{len(mine)}] {expr.key}"
            if settled(out, bench, expr, earlier):
                outcome.resumed.append(expr.key)
                echo(f"{tag} resumed (predictions already complete)")
                continue
            if expr.video not in opened:  # one video at a time: its cache is freed with it
                opened.clear()
                opened[expr.video] = bench.open_video(expr.video, fps, cache_bytes=cache_bytes)
            record = run_expression(bench, expr, opened[expr.video], config, preset, out, trace_dir)
            record.update(time=time.time(), shard=spec.label)
            log.write(json.dumps(record, default=_json_default) + "\n")
            log.flush()
            outcome.ran.append(expr.key)
            if record["status"] == "error":
                outcome.failed.append(expr.key)
            echo(f"{tag} {expr.type:<9} ran in {record['seconds']:.1f} s  {expr.text!r}")
            for error in record["errors"]:
                echo(f"  error {error} -> scored as empty masks")
    return outcome


# ---------------------------------------------------------------------------------- waiting


def names(keys: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(keys[:most])
    return shown + (f" and {len(keys) - most} more" if len(keys) > most else "")


def wait_for_shards(
    bench: Benchmark,
    plan: Sequence[Sequence[BenchExpression]],
    out: Path,
    me: ShardSpec,
    started: float,
    *,
    timeout: float = DEFAULT_WAIT_TIMEOUT_S,
    poll: float = 2.0,
    echo: Callable[[str], None] = print,
    now: Callable[[], float] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[str], list[str]]:
    """Wait until every other shard of ``plan`` has ended; returns (what went wrong, empty when all
    ended well; the expressions the other shards ran in this launch, from their markers).

    Shard j has ended when its marker was written during this launch (mtime not older than
    ``started``, the file-system time this process began), or when all its expressions are settled
    on disk (then it has nothing to redo, whether or not it is running). A failed marker ends the
    wait for that shard at once. A shard with neither, whose heartbeat is older than ``timeout``
    seconds (or that never beat since the wait began), is given up on.
    """
    clock = now or (lambda: _fs_now(out))
    began = clock()
    problems: list[str] = []
    ran: list[str] = []
    pending = [j for j in range(len(plan)) if j != me.index]
    last_said = began
    while pending:
        records = earlier_runs(out)
        still = []
        for j in pending:
            label = f"{j}-of-{len(plan)}"
            marker = _read_json(marker_path(out, label))
            fresh = isinstance(marker, dict) and (_mtime(marker_path(out, label)) or 0) >= started
            if fresh:
                ran += [k for k in marker.get("ran") or [] if isinstance(k, str)]
            if fresh and marker.get("status") == "failed":
                left = [e.key for e in plan[j] if not settled(out, bench, e, records)]
                problems.append(
                    f"shard {j} of {len(plan)} failed on {marker.get('host', '?')}: "
                    f"{marker.get('error') or 'no reason given'}; its unfinished expressions "
                    f"({len(left)}): {names(left)}"
                )
                continue
            if fresh or all(settled(out, bench, e, records) for e in plan[j]):
                continue
            still.append(j)
        pending = still
        if not pending:
            break
        t = clock()
        for j in list(pending):
            beat = _mtime(heartbeat_path(out, f"{j}-of-{len(plan)}")) or 0.0
            if t - max(beat, began) > timeout:
                left = [e.key for e in plan[j] if not settled(out, bench, e, records)]
                problems.append(
                    f"shard {j} of {len(plan)} has shown no sign of life for {timeout:g} s (no heartbeat "
                    f"in {heartbeat_path(out, f'{j}-of-{len(plan)}')}); its unfinished expressions "
                    f"({len(left)}): {names(left)}"
                )
                pending.remove(j)
        if pending and t - last_said >= 60:
            last_said = t
            echo(f"waiting for shard(s) {', '.join(str(j) for j in pending)} of {len(plan)} ...")
        if pending:
            sleep(poll)
    return problems, ran


def wait_for_live_shards(
    bench: Benchmark,
    chosen: Sequence[BenchExpression],
    out: Path,
    *,
    timeout: float = DEFAULT_WAIT_TIMEOUT_S,
    poll: float = 2.0,
    echo: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """``--merge``: wait while an expression without predictions belongs to a shard whose heartbeat
    is younger than ``timeout`` (that shard is still working on it)."""
    last_said = None
    while True:
        missing = {e.key for e in chosen if not is_complete(out, e, bench.video(e.video).frames)}
        if not missing:
            return
        t = _fs_now(out)
        live = []
        for path in sorted(shard_dir(out).glob("*.alive")):
            content = _read_json(path)
            beat = _mtime(path)
            if not isinstance(content, dict) or beat is None or t - beat > timeout:
                continue
            owned = missing & set(content.get("expressions") or [])
            if owned:
                live.append((path.stem, len(owned)))
        if not live:
            return
        if last_said is None or t - last_said >= 60:
            last_said = t
            echo("waiting for " + ", ".join(f"shard {name} ({n} expressions left)" for name, n in live))
        sleep(poll)


def _fs_now(out: Path) -> float:
    """The file system's clock: the mtime of a file touched now (shards on several machines share
    the file system, not necessarily a clock)."""
    probe = shard_dir(out) / f".clock.{socket.gethostname()}-{os.getpid()}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.touch()
        now = probe.stat().st_mtime
        probe.unlink()
        return now
    except OSError:
        return time.time()


# ----------------------------------------------------------------------------------- scoring


def read_prediction(out: Path, expr: BenchExpression, frames: list[str], size: tuple[int, int]) -> np.ndarray:
    """(T, H, W) bool of the expression's PNGs, read as the MeViS / ReVOS scripts read them
    (grayscale, non-zero = foreground)."""
    from PIL import Image

    width, height = size
    pred = np.zeros((len(frames), height, width), dtype=bool)
    for i, name in enumerate(frames):
        path = prediction_dir(out, expr) / f"{name}.png"
        with Image.open(path) as image:
            values = np.asarray(image.convert("L"))
        if values.shape != (height, width):
            raise DatasetError(
                f"prediction {path} is {values.shape[1]}x{values.shape[0]}, the frames {width}x{height}"
            )
        pred[i] = values != 0
    return pred


def score_expression(bench: Benchmark, expr: BenchExpression, out: Path, size: tuple[int, int]) -> Any:
    """Score the masks on disk against the ground truth (an ExpressionResult)."""
    from videoseg.eval.metrics import expression_scores

    truth = bench.ground_truth(expr, size)
    pred = read_prediction(out, expr, bench.video(expr.video).frames, size)
    return expression_scores(
        pred,
        truth.labels,
        truth.obj_ids,
        expr_id=expr.key,
        # ReVOS type 2 is scored like any expression and left out of both subsets afterwards.
        expr_type=expr.type if expr.type in ("referring", "reasoning") else "referring",
        void_label=truth.void_label,
    )


def summarize(bench: Benchmark, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate the scored rows the benchmark's way (see the module docstring)."""
    from videoseg.eval.metrics import aggregate_expressions

    scored = [r for r in rows if r.get("J") is not None]
    summary: dict[str, Any] = {"scored": len(scored)}
    counted = [r for r in scored if r["type"] in ("referring", "reasoning")]
    if not counted:
        return summary
    agg = aggregate_expressions(
        [{"id": r["key"], "type": r["type"], "J": r["J"], "F": r["F"], "R": r.get("R")} for r in counted]
    )
    summary["overall"] = agg["overall"]
    if bench.layout == "revos":
        summary.update(referring=agg["referring"], reasoning=agg["reasoning"], revos=agg["revos"])
    else:  # R is a ReVOS score; elsewhere the ground truth holds no foreground file to compute it from
        summary["overall"] = {k: v for k, v in agg["overall"].items() if k != "R"}
    sets: dict[str, list[dict[str, Any]]] = {}
    for r in counted:
        if r.get("annotator"):
            sets.setdefault(r["annotator"], []).append(r)
    if sets:
        per_set = {}
        for name, members in sorted(sets.items()):
            j = float(np.mean([m["J"] for m in members]))
            f = float(np.mean([m["F"] for m in members]))
            per_set[name] = {"J": j, "F": f, "J&F": (j + f) / 2, "count": len(members)}
        summary["annotator_sets"] = per_set
        j = float(np.mean([s["J"] for s in per_set.values()]))
        f = float(np.mean([s["F"] for s in per_set.values()]))
        summary["annotator_mean"] = {"J": j, "F": f, "J&F": (j + f) / 2, "sets": len(per_set)}
    return summary


def merge(
    bench: Benchmark,
    chosen: Sequence[BenchExpression],
    out: Path,
    meta: Mapping[str, Any],
    *,
    ran: Sequence[str] = (),
    shards: int = 1,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score every chosen expression once from the PNGs on disk and build the result (the same for
    one process and for any number of shards: rows in the split's order, scores from the masks)."""
    records = earlier_runs(out)
    ran_here = set(ran)
    rows: list[dict[str, Any]] = []
    counts = {"run": len(ran_here), "skipped": 0, "failed": 0, "unscored": 0, "missing": 0}
    sizes: dict[str, tuple[int, int]] = {}
    for n, expr in enumerate(chosen, 1):
        frames = bench.video(expr.video).frames
        rec = records.get(expr.key) or {}
        row: dict[str, Any] = {
            "key": expr.key,
            "video": expr.video,
            "exp_id": expr.exp_id,
            "type": expr.type,
            "text": expr.text,
            "annotator": expr.annotator,
            "frames": len(frames),
            "status": "missing",
            "errors": [],
            "resumed": expr.key not in ran_here,
            "target_frame": None,
            "seconds": None,
            "trace": None,
            "J": None,
            "F": None,
            "J&F": None,
        }
        if bench.layout == "revos":
            row["R"] = None
        rows.append(row)
        if trace_path(out, expr).is_file():
            row["trace"] = trace_path(out, expr).relative_to(out).as_posix()
        if not is_complete(out, expr, frames):
            counts["missing"] += 1
            continue
        row.update(
            status=rec.get("status") or "finished",
            errors=list(rec.get("errors") or []),
            target_frame=rec.get("target_frame"),
            seconds=rec.get("seconds"),
        )
        counts["skipped"] += expr.key not in ran_here
        counts["failed"] += row["status"] == "error"
        score_text = "no ground truth"
        if bench.has_ground_truth(expr):
            if expr.video not in sizes:
                sizes[expr.video] = bench.open_video(expr.video, 1.0).size
            result = score_expression(bench, expr, out, sizes[expr.video])
            row.update(J=result.j_mean, F=result.f_mean, **{"J&F": result.jf_mean})
            score_text = f"J&F {result.jf_mean:.3f} (J {result.j_mean:.3f}, F {result.f_mean:.3f})"
            if bench.layout == "revos":
                row["R"] = result.r_mean
                score_text += f" R {result.r_mean:.3f}"
        else:
            counts["unscored"] += 1
        failed = " (run failed: scored as empty masks)" if row["status"] == "error" else ""
        echo(f"[{n}/{len(chosen)}] {expr.key} {expr.type:<9} {score_text}{failed}  {expr.text!r}")
    summary = summarize(bench, rows)
    missing = [r["key"] for r in rows if r["status"] == "missing"]
    return {
        **meta,
        "name": bench.name,
        "complete": not missing,
        "missing": missing,
        "shards": shards,
        "per_expression": rows,
        **summary,
        "counts": counts,
    }


# ----------------------------------------------------------------------------------- summary


def _format_scores(s: Mapping[str, Any], with_r: bool) -> str:
    text = f"J&F {s['J&F']:.4f} (J {s['J']:.4f}, F {s['F']:.4f})"
    if with_r and s.get("R") is not None and not math.isnan(s["R"]):
        text += f", R {s['R']:.4f}"
    return text


def print_summary(bench: Benchmark, result: Mapping[str, Any], echo: Callable[[str], None] = print) -> None:
    counts = result["counts"]
    echo(
        f"{bench.name}: {counts['run']} run, {counts['skipped']} resumed from disk, "
        f"{counts['failed']} failed (scored as empty masks), {counts['unscored']} without ground truth"
        + (f", {counts['missing']} without predictions (not scored)" if counts.get("missing") else "")
    )
    if "overall" not in result:
        return
    if bench.layout == "revos":
        for key in ("referring", "reasoning"):
            if result.get(key):
                echo(
                    f"  {key:<10} {_format_scores(result[key], True)} over {result[key]['count']} expressions"
                )
        if result.get("revos"):
            echo(f"  overall    {_format_scores(result['revos'], True)} (mean of the two subsets)")
        else:
            echo("  overall    needs both referring and reasoning expressions (only one subset was scored)")
    else:
        echo(
            f"  overall {_format_scores(result['overall'], False)} over {result['overall']['count']} expressions"
        )
    for name, s in (result.get("annotator_sets") or {}).items():
        echo(f"  {name:<19} {_format_scores(s, False)} over {s['count']} expressions")
    if result.get("annotator_mean"):
        echo(f"  mean of the annotator sets {_format_scores(result['annotator_mean'], False)}")


# ------------------------------------------------------------------------- readable results


def subset_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The table rows of one result: per subset its expression count, J, F, J&F, R (ReVOS only)
    and failed runs. ReVOS: referring, reasoning, overall (their mean); Ref-DAVIS17: overall, each
    annotator set, the mean of the sets; otherwise overall."""
    rows_in = result.get("per_expression") or []

    def failed(kind: str | None = None, annotator: str | None = None) -> int:
        return sum(
            1
            for r in rows_in
            if r.get("status") == "error"
            and (kind is None or r.get("type") == kind)
            and (annotator is None or r.get("annotator") == annotator)
        )

    def row(
        subset: str, s: Mapping[str, Any] | None, count: Any, n_failed: int, with_r: bool
    ) -> dict[str, Any]:
        s = s or {}
        r_value = s.get("R") if with_r else None
        if isinstance(r_value, float) and math.isnan(r_value):
            r_value = None
        return {
            "subset": subset,
            "expressions": count,
            "J": s.get("J"),
            "F": s.get("F"),
            "J&F": s.get("J&F"),
            "R": r_value,
            "failed": n_failed,
        }

    out: list[dict[str, Any]] = []
    if result.get("layout") == "revos":
        for kind in ("referring", "reasoning"):
            if result.get(kind):
                out.append(row(kind, result[kind], result[kind].get("count"), failed(kind), True))
        if result.get("revos"):
            total = sum((result.get(k) or {}).get("count", 0) for k in ("referring", "reasoning"))
            out.append(row("overall (mean of the subsets)", result["revos"], total, failed(), True))
        return out
    if result.get("overall"):
        out.append(row("overall", result["overall"], result["overall"].get("count"), failed(), False))
    for name, s in (result.get("annotator_sets") or {}).items():
        out.append(row(name, s, s.get("count"), failed(annotator=name), False))
    if result.get("annotator_mean"):
        out.append(row("mean of the annotator sets", result["annotator_mean"], "", 0, False))
    return out


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _md(text: Any) -> str:
    """A table cell as text: Markdown's own characters escaped (expression texts are data)."""
    return re.sub(r"([\\`*_\[\]<>|~])", r"\\\1", str(text)).replace("\n", " ")


def results_markdown(results: Sequence[Mapping[str, Any]], worst: int = 10) -> str:
    """A table per preset (J, F, J&F per subset, R where defined, failed runs), then each result's
    worst expressions with a link to their trace when one was recorded."""
    lines = ["# Benchmark results", ""]
    lines += [
        "| preset | benchmark | subset | expressions | J | F | J&F | R | failed runs |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        name = _md(result.get("name", "?"))
        preset = _md(result.get("preset", "?"))
        subsets = subset_rows(result)
        if not subsets:
            lines.append(f"| {preset} | {name} | (no scored expression) | – | – | – | – | – | – |")
        for s in subsets:
            cells = [_cell(s[k]) for k in ("expressions", "J", "F", "J&F", "R", "failed")]
            lines.append(f"| {preset} | {name} | {_md(s['subset'])} | " + " | ".join(cells) + " |")
    for result in results:
        counts = result.get("counts") or {}
        lines += ["", f"## {_md(result.get('preset', '?'))} on {_md(result.get('name', '?'))}", ""]
        lines.append(
            f"{len(result.get('per_expression') or [])} expressions; {counts.get('failed', 0)} runs failed "
            f"(scored as empty masks); {counts.get('unscored', 0)} without ground truth; "
            f"{counts.get('missing', 0)} without predictions"
            + ("" if result.get("complete", True) else " (**incomplete**: re-run the command to finish)")
            + "."
        )
        scored = sorted(
            (r for r in result.get("per_expression") or [] if r.get("J&F") is not None),
            key=lambda r: (r["J&F"], r["key"]),
        )
        if scored:
            lines += [
                "",
                f"Worst {min(worst, len(scored))} expressions (per-expression J&F sorted: {RESULTS_HTML}):",
                "",
                "| rank | expression | type | J&F | J | F | text | trace |",
                "|---:|---|---|---:|---:|---:|---|---|",
            ]
            for i, r in enumerate(scored[:worst], 1):
                trace = f"[trace]({r['trace']})" if r.get("trace") else "–"
                status = " (run failed)" if r.get("status") == "error" else ""
                lines.append(
                    f"| {i} | {_md(r['key'])}{status} | {_md(r['type'])} | {r['J&F']:.4f} | {r['J']:.4f} | "
                    f"{r['F']:.4f} | {_md(r['text'])} | {trace} |"
                )
        if result.get("missing"):
            lines += ["", f"Without predictions: {_md(names(list(result['missing']), 20))}."]
    return "\n".join(lines) + "\n"


def write_results(out: Path, result: Mapping[str, Any], json_path: Path | None = None) -> list[Path]:
    """``results.json`` (every row and the aggregates), ``results.md`` (the table) and
    ``results.html`` (per-expression J&F sorted, the worst linked to their traces) in ``out``, and
    the same JSON at ``json_path``. Returns the paths written."""
    written = []
    _write_json_atomic(out / RESULTS_JSON, result)
    written.append(out / RESULTS_JSON)
    (out / RESULTS_MD).write_text(results_markdown([result]), encoding="utf-8")
    written.append(out / RESULTS_MD)
    try:
        from videoseg.viz.curves import benchmark_jf_figure

        fig = benchmark_jf_figure(result.get("per_expression") or [], title=_plot_title(result), links=True)
        fig.write_html(out / RESULTS_HTML, include_plotlyjs=True, full_html=True)
        written.append(out / RESULTS_HTML)
    except ImportError:  # plotly is a dependency of the explorer; the command works without it
        pass
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1, default=_json_default) + "\n", encoding="utf-8")
        written.append(json_path)
    return written


def _plot_title(result: Mapping[str, Any]) -> str:
    return f"{result.get('preset', '?')} on {result.get('name', '?')}: per-expression J&F, worst first"


def write_submission(bench: Benchmark, out: Path, echo: Callable[[str], None] = print) -> None:
    """``<out>/submission.zip`` with ``Annotations/<video>/<exp_id>/<frame>.png`` once the whole split
    is predicted (the Ref-YouTube-VOS server scores only a complete split)."""
    missing = [e for e in bench.expressions() if not is_complete(out, e, bench.video(e.video).frames)]
    if missing:
        echo(
            f"{len(missing)} of {len(bench.expressions())} expressions of {bench.name} have no predictions yet; "
            f"{SUBMISSION} is written once all have"
        )
        return
    partial = out / f".{SUBMISSION}.partial"
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for expr in bench.expressions():
            for name in bench.video(expr.video).frames:
                path = prediction_dir(out, expr) / f"{name}.png"
                archive.write(path, arcname=f"Annotations/{expr.video}/{expr.exp_id}/{name}.png")
    os.replace(partial, out / SUBMISSION)
    echo(f"wrote {out / SUBMISSION} (upload it to the Ref-YouTube-VOS evaluation server)")


# ------------------------------------------------------------------------ opening in Inspect


def is_result(data: Any) -> bool:
    """Whether ``data`` (parsed JSON) is a benchmark result (``results.json`` / ``--json``)."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("per_expression"), list)
        and isinstance(data.get("layout"), str)
        and isinstance(data.get("preset"), str)
    )


def find_result(root: Path) -> Path | None:
    """The ``results.json`` of a benchmark result folder at or below ``root`` (the shallowest), or
    ``root`` itself when it is such a file."""
    if root.is_file():
        return root if is_result(_read_json(root)) else None
    for path in sorted(root.rglob(RESULTS_JSON), key=lambda p: (len(p.parts), str(p))):
        if is_result(_read_json(path)):
            return path
    return None


def load_result(path: Path) -> dict[str, Any]:
    """A benchmark result, checked: raises ValueError saying what is wrong."""
    data = _read_json(path)
    if not is_result(data):
        raise ValueError(f"{path.name} is not a benchmark result (no per_expression rows, layout and preset)")
    rows = []
    for i, r in enumerate(data["per_expression"]):
        if not isinstance(r, dict) or not isinstance(r.get("key"), str):
            raise ValueError(f"{path.name}: per_expression[{i}] is not an expression row")
        for k in ("J", "F", "J&F", "R"):
            v = r.get(k)
            if v is not None and (
                isinstance(v, bool) or not isinstance(v, (int, float)) or not -1e-9 <= v <= 1 + 1e-9
            ):
                raise ValueError(f"{path.name}: per_expression[{i}].{k} is not a score in [0, 1]")
        rows.append(r)
    return data


def inspect_view(path: Path) -> tuple[str, list[list[Any]], Any]:
    """What the explorer's Inspect tab shows for a benchmark result (``results.json`` or ``--json``):
    (Markdown: the per-preset table and what the result covers; the expressions worst first as rows
    [rank, video, expression, J&F, J, F, target frame, stage at fault, why]; the sorted J&F figure).
    Raises ValueError when the file is not a readable result."""
    from videoseg.viz.curves import benchmark_jf_figure

    result = load_result(path)
    table = results_markdown([result], worst=0).split("\n## ")[0].replace("# Benchmark results\n", "")
    rows_in = [r for r in result["per_expression"] if isinstance(r.get("J&F"), (int, float))]
    rows_in.sort(key=lambda r: (r["J&F"], str(r["key"])))
    traced = sum(1 for r in rows_in if r.get("trace"))
    counts = result.get("counts") or {}
    lines = [
        f"### Benchmark result: {_md(result.get('preset'))} on {_md(result.get('name', '?'))}",
        table.strip(),
        f"{len(result['per_expression'])} expressions, {counts.get('failed', 0)} runs failed (scored as empty "
        f"masks), {counts.get('missing', 0)} without predictions"
        + ("" if result.get("complete", True) else " (**incomplete**)")
        + ". Ranked below, worst first"
        + (
            f"; {traced} have a recorded trace (`traces/<video>/<id>.jsonl` in the result folder: open "
            "one in *Replay a trace*)."
            if traced
            else "."
        ),
    ]
    ranking = []
    for i, r in enumerate(rows_in, 1):
        errors = [str(e) for e in r.get("errors") or []]
        stage = re.match(r"\[(\w+)\]", errors[0]) if errors else None
        why = errors[0] if errors else (f"trace: {r['trace']}" if r.get("trace") else "")
        ranking.append(
            [
                i,
                str(r.get("video", "")),
                str(r.get("text", "")),
                round(float(r["J&F"]), 3),
                round(float(r.get("J") or 0.0), 3),
                round(float(r.get("F") or 0.0), 3),
                r.get("target_frame"),
                (stage[1] if stage else "run failed") if r.get("status") == "error" else "",
                why,
            ]
        )
    figure = benchmark_jf_figure(result["per_expression"], title=_plot_title(result))
    return "\n\n".join(lines), ranking, figure


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


__all__ = [
    "DEFAULT_FRAME_CACHE_MB",
    "DEFAULT_WAIT_TIMEOUT_S",
    "Heartbeat",
    "ShardOutcome",
    "ShardSpec",
    "earlier_runs",
    "find_result",
    "inspect_view",
    "load_result",
    "merge",
    "missing_by_shard",
    "names",
    "plan_shards",
    "prediction_dir",
    "print_summary",
    "read_prediction",
    "results_markdown",
    "run_expression",
    "run_shard",
    "score_expression",
    "select",
    "shard_device",
    "shard_spec",
    "subset_rows",
    "summarize",
    "wait_for_live_shards",
    "wait_for_shards",
    "write_marker",
    "write_meta",
    "write_results",
    "write_submission",
]

"""Speed and correctness of fetching scattered frames: ``videoseg.io.video`` vs a full decode vs decord.

For each clip (default: vtest.avi, 795 frames at 768x576; Megamind.avi and box.mp4 are where decord
goes wrong) it fetches 32 scattered frames (random order, with a duplicate) and prints milliseconds
(best of ``--repeats``) for:

* ``ours, open``: ``open_video`` (the one-time counting decode pass, no pixel conversion);
* ``ours, cold``: ``frames(indices)`` on a freshly opened video;
* ``ours, warm``: ``frames(indices)`` again on the same video (the cursor is somewhere in the middle);
* ``ours, seek=False``: the purely sequential path;
* ``full sequential``: one plain PyAV decode of the whole clip, converting only the wanted frames;
* ``decord``: ``VideoReader.get_batch(indices)``.

The last column counts frames that differ from the plain sequential decode (the definition of
"frame i"). Run: ``python bench/bench_video.py [--clips vtest.avi box.mp4] [--repeats 3]``.
Needs apt access the first time (tests/support/realdata.py fetches the clips).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.realdata import opencv_clip
from videoseg.io.video import open_video


def best_ms(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000, result


def full_sequential(path: Path, indices: list[int]) -> np.ndarray:
    wanted = set(indices)
    found: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                found[i] = frame.to_ndarray(format="rgb24")
    return np.stack([found[i] for i in indices])


def decord_batch(path: Path, indices: list[int]) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    return reader.get_batch(indices).asnumpy()


def thumbnails(path: Path, indices: list[int], radius: int) -> dict[int, np.ndarray]:
    """Small grey versions of the reference frames within ``radius`` of each index."""
    wanted = {j for i in indices for j in range(i - radius, i + radius + 1)}
    out: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")[::4, ::4].mean(axis=2)
    return out


def wrong_frames(got: np.ndarray, reference: np.ndarray, indices: list[int], thumbs: dict) -> str:
    """'pixels differ / wrong frame': exact-pixel mismatches, and returns of a *neighbouring* frame.

    A frame counts as wrong when a neighbour (within the thumbnail radius) of the asked index is
    closer to it than the asked frame itself; colour-conversion noise alone does not make it wrong.
    """
    if got.shape != reference.shape:
        return f"shape {got.shape}"
    differ = sum(not np.array_equal(a, b) for a, b in zip(got, reference))
    wrong = 0
    for frame, i in zip(got, indices):
        small = frame[::4, ::4].mean(axis=2)
        distance = {j: np.abs(small - t).mean() for j, t in thumbs.items() if abs(j - i) <= 2}
        wrong += min(distance, key=distance.get) != i
    return f"{differ} / {wrong}"


def bench_clip(name: str, count: int, repeats: int, seed: int) -> None:
    path = opencv_clip(name)
    open_ms, video = best_ms(lambda: open_video(path), repeats)
    n_frames = len(video)
    rng = np.random.default_rng(seed)
    indices = [int(i) for i in rng.choice(n_frames, size=count - 1, replace=False)]
    indices.append(indices[0])  # a duplicate
    reference = full_sequential(path, indices)
    last = [n_frames - 1]
    last_reference = full_sequential(path, last)
    thumbs = thumbnails(path, [*indices, *last], radius=2)

    rows: list[tuple[str, float, str]] = [("ours, open (count pass)", open_ms, "-")]
    cold_ms, got = best_ms(lambda: open_video(path).frames(indices), 1)
    rows.append(("ours, cold frames()", cold_ms, wrong_frames(got, reference, indices, thumbs)))
    warm_ms, got = best_ms(lambda: video.frames(indices), repeats)
    rows.append(("ours, warm frames()", warm_ms, wrong_frames(got, reference, indices, thumbs)))
    with open_video(path, seek=False) as sequential:
        seq_ms, got = best_ms(lambda: sequential.frames(indices), repeats)
    rows.append(("ours, seek=False", seq_ms, wrong_frames(got, reference, indices, thumbs)))
    # Only the last frame, on a freshly opened video: what seeking saves over decoding everything.
    with open_video(path) as fresh:
        last_ms, got = best_ms(lambda: fresh.frames(last), 1)
    rows.append(("ours, last frame only", last_ms, wrong_frames(got, last_reference, last, thumbs)))
    full_ms, got = best_ms(lambda: full_sequential(path, indices), repeats)
    rows.append(("full sequential decode", full_ms, wrong_frames(got, reference, indices, thumbs)))
    try:
        decord_ms, got = best_ms(lambda: decord_batch(path, indices), repeats)
        rows.append(("decord get_batch", decord_ms, wrong_frames(got, reference, indices, thumbs)))
    except Exception as exc:  # decord ships x86_64 wheels only
        rows.append((f"decord unavailable ({type(exc).__name__})", float("nan"), "-"))

    print(
        f"\n{name}: {n_frames} frames, {video.size[0]}x{video.size[1]}, {count} scattered frames, "
        f"seekable={video.seekable}, keyframes={len(video.keyframes)}"
    )
    print(f"  {'method':<28}{'ms':>10}  pixels differ / wrong frame (of {count})")
    for label, ms, wrong in rows:
        print(f"  {label:<28}{ms:>10.1f}  {wrong}")
    print(f"  (cold frames() includes its own open; stats of the warm video: {video.stats})")
    video.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=["vtest.avi", "Megamind.avi", "box.mp4"])
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.clips:
        bench_clip(name, args.count, args.repeats, args.seed)


if __name__ == "__main__":
    main()

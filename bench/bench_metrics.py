"""Speed of ``videoseg.eval.metrics`` J and F against the DAVIS toolkit's algorithm (tests/davis_reference.py).

Scores 100 frames of random blobs at 480x854 (DAVIS 480p), prediction = ground truth disturbed by
shifted and extra blobs, and prints seconds per call, the speed-up, and the largest difference from the
reference (it must be 0 at the printed precision). Run: ``python bench/bench_metrics.py [--frames N]``.
Needs scikit-image (dev requirement) for the reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import davis_reference as ref
from videoseg.eval.metrics import boundary_f, jaccard


def random_blobs(rng: np.random.Generator, frames: int, height: int, width: int, blobs: int) -> np.ndarray:
    """(T, H, W) bool: a few filled rotated ellipses per frame."""
    out = np.zeros((frames, height, width), dtype=np.uint8)
    for frame in out:
        for _ in range(blobs):
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            axes = (int(rng.integers(5, width // 5)), int(rng.integers(5, height // 5)))
            cv2.ellipse(frame, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return out.astype(bool)


def best_of(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    best = float("inf")
    result = np.empty(0)
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, np.asarray(result, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--repeats", type=int, default=3, help="best of N for ours (the reference runs once)")
    parser.add_argument("--threads", type=int, default=2, help="cv2.setNumThreads")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)

    rng = np.random.default_rng(0)
    gt = random_blobs(rng, args.frames, args.height, args.width, blobs=4)
    pred = np.roll(gt, shift=(3, -5), axis=(1, 2)) | random_blobs(
        rng, args.frames, args.height, args.width, 1
    )
    print(f"{args.frames} frames of {args.height}x{args.width}, cv2 threads {args.threads}")

    rows = [
        ("J", lambda: ref.db_eval_iou(gt, pred), lambda: jaccard(pred, gt)),
        ("F", lambda: ref.db_eval_boundary(gt, pred), lambda: boundary_f(pred, gt)),
    ]
    for name, reference_fn, ours_fn in rows:
        t_ref, v_ref = best_of(reference_fn, 1)
        t_ours, v_ours = best_of(ours_fn, args.repeats)
        diff = float(np.max(np.abs(v_ref - v_ours)))
        print(
            f"{name}: reference {t_ref:7.3f} s   ours {t_ours:7.3f} s   speed-up x{t_ref / t_ours:6.1f}   "
            f"max |diff| {diff:.1e}   mean {v_ours.mean():.4f}"
        )


if __name__ == "__main__":
    main()

"""Benchmark of the weights-free pipeline (all three paper steps on the CPU); prints figures, asserts nothing.

1. Propagation speed at 480p: a shapes-world video rendered at 854x480 and encoded to H.264, then
   GrabCut keyframe + optical-flow propagation of its first expression, decoding included
   (``video.iter_frames``), reported as propagated frames per second. Goal: 25+ frames/s on 2 cores.
2. HTFS decoding share on a long video (the shapes ``long`` family, 2000+ frames): distinct frames the
   sampler and reasoner decode, as a share of the video. Goal: a few percent.
3. The whole ``shapes`` preset on the 480p video, per stage.

Run: ``python bench/bench_pipeline.py [--threads 2]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: python bench/...

import cv2


def _propagation_fps(video_path: Path, query: str) -> None:
    from videoseg.core.config import preset
    from videoseg.core.state import RunState
    from videoseg.pipeline.orchestrator import run

    state = RunState.from_events(run(video_path, query, preset("shapes")))
    if state.status != "finished":
        print(f"  run failed: {state.errors}")
        return
    frames = state.num_frames
    prop = state.timings["propagator"]
    print(
        f"  video {state.video['width']}x{state.video['height']}, {frames} frames, {state.num_targets} target(s)"
    )
    print(
        f"  propagation (decode + flow + re-segmentation + RLE): {prop:.2f} s -> {(frames - 1) / prop:.1f} frames/s"
    )
    for stage, seconds in state.timings.items():
        print(f"    {stage:<11} {seconds:7.3f} s")


def _flow_only_fps(video_path: Path) -> None:
    """The propagator alone on an in-memory 480p clip (no decoding, no RLE)."""
    import numpy as np

    from videoseg.core.config import PipelineConfig
    from videoseg.io.video import ArrayVideo, open_video
    from videoseg.propagation.flow import FlowPropagator

    with open_video(video_path) as video:
        frames = video.frames(list(range(min(len(video), 200))))
        fps = video.fps
    mask = np.zeros((1, *frames.shape[1:3]), dtype=bool)
    h, w = frames.shape[1:3]
    mask[0, h // 3 : h // 2, w // 3 : w // 2] = True
    array = ArrayVideo(frames, fps)
    start = time.perf_counter()
    count = sum(1 for _ in FlowPropagator(PipelineConfig()).propagate(array, 0, mask))
    seconds = time.perf_counter() - start
    print(
        f"  flow propagator alone, frames in memory: {count} frames in {seconds:.2f} s -> {count / seconds:.1f} frames/s"
    )


def _htfs_share() -> None:
    import numpy as np

    from videoseg.core.config import preset
    from videoseg.core.state import RunState
    from videoseg.io.video import ArrayVideo
    from videoseg.pipeline.orchestrator import run
    from videoseg.shapes import generate

    try:
        scenario = generate(0, "long")
        frames = scenario.frames
    except (RuntimeError, ValueError) as exc:
        # Stand-in when the long family cannot be built: a short scenario played 30 times over.
        print(f"  (shapes 'long' family unavailable: {exc}; looping a short scenario instead)")
        scenario = generate(0, "turn", size=(192, 144))
        frames = np.concatenate([scenario.frames] * max(1, -(-2000 // len(scenario.frames))))
    video = ArrayVideo(frames, scenario.fps)
    for expression in scenario.expressions[:3]:
        state = RunState()
        for event in run(video, expression.text, preset("shapes")):
            state.apply(event)
            if event.type == "sampler_result":
                break  # only the sampler matters here
        decoded = state.frames_decoded
        result = state.sampler_result
        print(
            f"  {len(video)} frames, query {expression.text!r}: {len(state.sampler_levels)} level(s), "
            f"decoded {decoded} distinct frames = {100 * decoded / len(video):.2f} % "
            f"(target frame {result.target_frame if result else '?'}, key segment {result.key_segment if result else '?'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=2, help="OpenCV threads (the CI machines have 2 cores)"
    )
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)

    from videoseg.shapes import generate

    with tempfile.TemporaryDirectory() as tmp:
        scenario = generate(1, "turn", size=(854, 480), frames=150)
        scenario.save(tmp)
        path = Path(tmp) / "video.mp4"
        query = scenario.expressions[0].text
        print(f"[1] weights-free pipeline at 480p ({args.threads} OpenCV threads), query {query!r}")
        _propagation_fps(path, query)
        _flow_only_fps(path)
    print("[2] HTFS decoding share on a long video")
    _htfs_share()


if __name__ == "__main__":
    main()

"""Writing a long run's outputs costs no more than the run itself (issue 14 item 6; paper step 3b's output).

A synthetic long clip (default: 10 minutes of 1080p at 25 fps): a shapes-world scenario rendered at
480x270, played forwards and backwards until it lasts ``--minutes``, upscaled to ``--height`` and
encoded with x264 ``ultrafast`` (cached in ``--workdir``). On it, the weights-free ``shapes`` preset
runs twice, the way ``python -m videoseg run`` runs it:

1. **pipeline only**: the events are folded into a RunState, nothing is written;
2. **pipeline + outputs**: the same, with :class:`videoseg.io.export.RunExport` streaming the mask
   PNGs and the overlay while the run propagates, then switching them into ``--out``.

It prints the two wall times, their difference (what writing costs on top of the pipeline), the
seconds the writer threads were busy, how long writing went on after the run's last event, and the
peak resident memory. ``--batch`` also times the old way (everything written after the run, in one
pass: :func:`videoseg.io.export.export_run` on the finished state). Usage::

    python bench/bench_writing.py [--minutes 10] [--height 1080] [--fps 25] [--workdir /tmp/bench-writing]
                                  [--batch] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_clip(path: Path, minutes: float, height: int, fps: float, seed: int = 1) -> str:
    """Write the synthetic clip (unless it exists) and return the query that names its target."""
    import av
    import cv2

    from videoseg.shapes import generate

    scenario = generate(seed, "multi_target", frames=240, size=(480, 270))
    query = scenario.expressions[0].text
    if path.exists():
        return query
    width = round(height * 16 / 9 / 2) * 2
    total = round(minutes * 60 * fps)
    tmp = path.with_suffix(".partial.mp4")
    loop = np.concatenate([np.arange(len(scenario.frames)), np.arange(len(scenario.frames) - 2, 0, -1)])
    start = time.perf_counter()
    with av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(total):
            small = scenario.frames[loop[i % len(loop)]]
            big = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
            for packet in stream.encode(av.VideoFrame.from_ndarray(big, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(path)
    print(
        f"clip: {total} frames of {width}x{height} at {fps} fps written in {time.perf_counter() - start:.0f} s"
    )
    return query


def run_once(video: object, query: str, out: Path | None) -> dict[str, float]:
    """One shapes-preset run; with ``out``, its outputs streamed and switched in as the CLI does."""
    from videoseg.core import events as ev
    from videoseg.core.config import preset
    from videoseg.core.state import RunState
    from videoseg.io.export import RunExport
    from videoseg.pipeline import run

    state = RunState()
    export = RunExport(out, video=video) if out is not None else None
    start = time.perf_counter()
    last_event = start
    for event in run(video, query, preset("shapes"), preset="shapes"):
        state.apply(event)
        if export is not None:
            export.feed(event)
        if isinstance(event, ev.RunFinished):
            last_event = time.perf_counter()
    if state.status != "finished":
        raise SystemExit(f"the run failed: {state.errors}")
    result = {"wall": 0.0, "after_run": 0.0, "writers": 0.0, "frames": float(state.num_frames)}
    if export is not None:
        export.finish(state)
        result["writers"] = export.writer_seconds
    end = time.perf_counter()
    result["wall"] = end - start
    result["after_run"] = end - last_event
    result["state"] = state  # type: ignore[assignment]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=float, default=25.0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-writing"))
    parser.add_argument("--batch", action="store_true", help="also time writing everything after the run")
    parser.add_argument("--threads", type=int, default=None, help="torch / OpenCV threads (default: theirs)")
    args = parser.parse_args()
    if args.threads:
        import cv2
        import torch

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)

    from videoseg.io.export import export_run
    from videoseg.io.video import VideoCaps, open_video

    args.workdir.mkdir(parents=True, exist_ok=True)
    clip = args.workdir / f"clip-{args.minutes:g}min-{args.height}p-{args.fps:g}fps.mp4"
    query = make_clip(clip, args.minutes, args.height, args.fps)
    video = open_video(clip, VideoCaps(max_duration_s=None))
    print(f"clip {clip.name}: {len(video)} frames {video.size[0]}x{video.size[1]}; query {query!r}")

    alone = run_once(video, query, None)
    print(
        f"pipeline only:      {alone['wall']:7.1f} s ({1000 * alone['wall'] / alone['frames']:.1f} ms/frame)"
    )
    out = args.workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    both = run_once(video, query, out)
    extra = both["wall"] - alone["wall"]
    print(
        f"pipeline + outputs: {both['wall']:7.1f} s -> writing costs {extra:.1f} s on top of the pipeline "
        f"({extra / alone['wall']:.2f} x the pipeline time); writer threads busy {both['writers']:.1f} s "
        f"(in parallel); writing after the run's last event {both['after_run']:.1f} s"
    )
    if args.batch:
        batch_out = args.workdir / "out-batch"
        shutil.rmtree(batch_out, ignore_errors=True)
        start = time.perf_counter()
        export_run(alone["state"], batch_out, video=video)  # type: ignore[arg-type]
        print(f"batch writing after the run (the old way): {time.perf_counter() - start:.1f} s")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory {peak_mb:.0f} MB")
    video.close()


if __name__ == "__main__":
    main()

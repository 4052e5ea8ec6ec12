"""Per-stage time and peak memory of the real-model backends (Qwen2.5-VL, SAM2, SAM2 video).

Runs each stage of the paper's pipeline once through the same backend classes the app uses
(:class:`~videoseg.reasoning.qwen.QwenVideoQA`, :class:`~videoseg.segmentation.sam2.Sam2Segmenter`,
:class:`~videoseg.propagation.sam2_video.Sam2VideoPropagator`) on a synthetic clip, and prints one row
per stage: seconds, peak GPU memory (CUDA) or the process's peak RSS (CPU), and a rate where it means
something (generated tokens / s, frames / s).

    # GPU, full-size models (downloads the weights):
    python bench/bench_models.py --vlm Qwen/Qwen2.5-VL-7B-Instruct --sam2 facebook/sam2.1-hiera-large
    # GPU, full-size architectures with random weights (downloads only configs and processor files):
    python bench/bench_models.py --vlm Qwen/Qwen2.5-VL-7B-Instruct --sam2 facebook/sam2.1-hiera-large \
        --random-weights
    # anywhere, tiny random models built on the spot (CPU, seconds; proves the script runs):
    python bench/bench_models.py --tiny

Random weights are built with ``from_config`` and placed in the per-process model cache
(:mod:`videoseg.models`) under the real id, so the backends then run exactly as with downloaded weights;
a random VLM rarely stops early, so its generation runs to ``--max-new-tokens`` (the worst case).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from videoseg import models  # noqa: E402
from videoseg.config import PipelineConfig  # noqa: E402
from videoseg.cues import TargetCues  # noqa: E402
from videoseg.stages import Clip, ReasonRequest  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class Recorder:
    """Times a stage and reads its peak memory; collects one row per stage."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.rows: list[dict[str, Any]] = []

    def measure(
        self, stage: str, fn: Callable[[], Any], rate: Callable[[Any, float], str] | None = None
    ) -> Any:
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        result = fn()
        if cuda:
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        row: dict[str, Any] = {"stage": stage, "seconds": round(seconds, 4)}
        if cuda:
            row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        row["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        if rate is not None:
            row["rate"] = rate(result, seconds)
        self.rows.append(row)
        print(_format_row(row), flush=True)
        return result


def _format_row(row: dict[str, Any]) -> str:
    gpu = f"{row['peak_gpu_mb']:>12.1f}" if "peak_gpu_mb" in row else f"{'-':>12}"
    return f"{row['stage']:<22}{row['seconds']:>10.3f}{gpu}{row['peak_rss_mb']:>12.1f}  {row.get('rate', '')}"


# --------------------------------------------------------------------------- random weights


def _inject_random(kind: str, model_id: str, device: torch.device, dtype: torch.dtype) -> None:
    """Build ``model_id``'s architecture with random weights and cache it under the real id."""
    from transformers import (
        AutoConfig,
        AutoProcessor,
        Qwen2_5_VLForConditionalGeneration,
        Sam2Model,
        Sam2Processor,
        Sam2VideoModel,
        Sam2VideoProcessor,
    )

    model_cls, processor_cls = {
        "qwen2.5-vl": (Qwen2_5_VLForConditionalGeneration, AutoProcessor),
        "sam2-image": (Sam2Model, Sam2Processor),
        "sam2-video": (Sam2VideoModel, Sam2VideoProcessor),
    }[kind]

    def build() -> tuple[Any, Any]:
        config = AutoConfig.from_pretrained(model_id)
        with torch.device(device):
            model = model_cls._from_config(config, dtype=dtype)
        return model.eval(), processor_cls.from_pretrained(model_id)

    models.cached_model(kind, model_id, device, dtype, build)


# --------------------------------------------------------------------------- stages


def bench_vlm(rec: Recorder, config: PipelineConfig, frames: np.ndarray, fps: float, max_new: int) -> None:
    from videoseg.reasoning.qwen import QwenVideoQA

    qa = rec.measure("vlm load", lambda: QwenVideoQA(config))
    n = len(frames)
    step = max(1, n // config.frames_per_question)
    idx = list(range(0, n, step))[: config.frames_per_question]
    clip = Clip(frames=frames[idx], frame_indices=idx, fps=fps, window=(0, n - 1))
    query = "the person who walks to the left after the car stops"

    def tokens_per_s(_: Any, seconds: float) -> str:
        return f"{qa.last_generation.num_tokens} tokens, {qa.last_generation.num_tokens / seconds:.1f} tok/s"

    rec.measure(f"interval ({len(idx)} fr)", lambda: qa.answer_interval(clip, query, 0), tokens_per_s)
    rec.measure(f"percentage ({len(idx)} fr)", lambda: qa.answer_percentage(clip, query, 0), tokens_per_s)
    rec.measure("difficulty", lambda: qa.rate_difficulty(clip, query), tokens_per_s)
    key_idx = idx[: config.num_key_frames]
    ref_idx = idx[:: max(1, len(idx) // max(1, config.num_reference_frames))][: config.num_reference_frames]
    request = ReasonRequest(
        query=query,
        key_clip=Clip(
            frames=frames[key_idx], frame_indices=key_idx, fps=fps, window=(key_idx[0], key_idx[-1])
        ),
        target_frame=frames[key_idx[len(key_idx) // 2]],
        target_index=key_idx[len(key_idx) // 2],
        reference_clip=Clip(frames=frames[ref_idx], frame_indices=ref_idx, fps=fps, window=(0, n - 1))
        if ref_idx
        else None,
        max_new_tokens=max_new,
        budget=256,
        cue_kinds=tuple(config.cues),
    )
    rec.measure("reason (streamed)", lambda: "".join(qa.reason(request)), tokens_per_s)


def bench_sam2(
    rec: Recorder, config: PipelineConfig, frames: np.ndarray, fps: float, official: str | None
) -> None:
    from videoseg.propagation.sam2_video import Sam2VideoPropagator
    from videoseg.segmentation.sam2 import OfficialSam2Segmenter, Sam2Segmenter
    from videoseg.video import ArrayVideo

    h, w = frames.shape[1:3]
    cues = TargetCues(
        box=[w * 0.3, h * 0.3, w * 0.6, h * 0.7], point=[w * 0.45, h * 0.5], negatives=[[w * 0.1, h * 0.1]]
    )
    segmenter = rec.measure("sam2 load", lambda: Sam2Segmenter(config))
    mask, _ = rec.measure("sam2 segment", lambda: segmenter.segment(frames[len(frames) // 2], cues))
    if official:
        off_config = config.replace(sam2_model=official, segmenter="sam2-official")
        off = rec.measure("sam2-official load", lambda: OfficialSam2Segmenter(off_config))
        rec.measure("sam2-official segment", lambda: off.segment(frames[len(frames) // 2], cues))
    propagator = rec.measure("sam2-video load", lambda: Sam2VideoPropagator(config))
    if not mask.any():  # random weights may give an empty mask; track the box region instead
        mask = np.zeros((h, w), dtype=bool)
        mask[int(h * 0.3) : int(h * 0.7), int(w * 0.3) : int(w * 0.6)] = True
    video = ArrayVideo(frames, fps=fps)
    n = len(frames)
    rec.measure(
        f"sam2-video ({n - 1} fr)",
        lambda: sum(1 for _ in propagator.propagate(video, n // 2, mask[None])),
        lambda count, s: f"{count / s:.2f} frames/s",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vlm", default="Qwen/Qwen2.5-VL-7B-Instruct", help="Qwen2.5-VL hub id or path")
    parser.add_argument("--sam2", default="facebook/sam2.1-hiera-large", help="SAM2 hub id or path")
    parser.add_argument(
        "--random-weights", action="store_true", help="from_config: random weights, no download"
    )
    parser.add_argument("--tiny", action="store_true", help="build tiny random models here (CPU smoke run)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--frames", type=int, default=32, help="frames of the synthetic clip")
    parser.add_argument("--size", default="854x480", help="WxH of the synthetic clip")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--skip-vlm", action="store_true")
    parser.add_argument("--skip-sam2", action="store_true")
    parser.add_argument("--official", action="store_true", help="also time the official sam2 package")
    parser.add_argument("--official-sam2", help="official SAM2 hub id / checkpoint (default: --sam2)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    width, height = (int(v) for v in args.size.lower().split("x"))
    tmp = None
    if args.tiny:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny_models import build_tiny_official_sam2, build_tiny_qwen, build_tiny_sam2_video

        tmp = tempfile.TemporaryDirectory(prefix="bench-tiny-")
        args.vlm = str(build_tiny_qwen(Path(tmp.name) / "qwen"))
        args.sam2 = str(build_tiny_sam2_video(Path(tmp.name) / "sam2"))
        args.official_sam2 = str(build_tiny_official_sam2(Path(tmp.name) / "official"))
        args.device = "cpu"
    config = PipelineConfig(
        vlm=args.vlm,
        sam2_model=args.sam2,
        segmenter="sam2",
        propagator="sam2",
        device=args.device,
        dtype=args.dtype,
    )
    device = models.resolve_device(config.device)
    dtype = models.resolve_dtype(config.dtype, device)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"dtype {models.dtype_name(dtype)}, vlm {config.vlm}, sam2 {config.sam2_model}, "
        f"clip {args.frames} x {width}x{height}, random weights: {args.random_weights or args.tiny}"
    )
    if args.random_weights and not args.tiny:
        if not args.skip_vlm:
            _inject_random("qwen2.5-vl", config.vlm, device, dtype)
        if not args.skip_sam2:
            _inject_random("sam2-image", config.sam2_model, device, dtype)
            _inject_random("sam2-video", config.sam2_model, device, dtype)

    frames = np.random.default_rng(0).integers(0, 256, (args.frames, height, width, 3), dtype=np.uint8)
    fps = 10.0
    rec = Recorder(device)
    print(f"{'stage':<22}{'seconds':>10}{'peak GPU MB':>12}{'peak RSS MB':>12}  rate")
    with torch.inference_mode():
        if not args.skip_vlm:
            bench_vlm(rec, config, frames, fps, args.max_new_tokens)
        if not args.skip_sam2:
            bench_sam2(
                rec, config, frames, fps, (args.official_sam2 or config.sam2_model) if args.official else None
            )
    if args.json:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rec.rows}, indent=1)
        )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

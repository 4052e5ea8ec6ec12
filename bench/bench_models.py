"""Per-stage time and peak memory of the real-model backends (Qwen2.5-VL, SAM2, SAM2 video, XMem).

Runs each stage of the paper's pipeline once through the same backend classes the app uses
(:class:`~videoseg.reasoning.qwen.QwenVideoQA`, :class:`~videoseg.segmentation.sam2.Sam2Segmenter`,
:class:`~videoseg.propagation.sam2_video.Sam2VideoPropagator`,
:class:`~videoseg.propagation.xmem.propagator.XMemPropagator`) on a synthetic clip (10 s at 24 fps,
854x480 by default), and prints one row per stage: seconds, peak GPU memory (CUDA) or the process's
peak RSS (CPU), and a rate where it means something (generated tokens / s, frames / s). The last line
sums one query of the paper's configuration: K interval answers per HTFS level, M percentage answers,
the difficulty rating, the reasoning, the keyframe mask and XMem propagation.

    # GPU, full-size models (downloads the weights):
    python bench/bench_models.py --vlm Qwen/Qwen2.5-VL-7B-Instruct --sam2 facebook/sam2.1-hiera-large
    # GPU, full-size architectures with random weights, no network (bench/device_models.sh runs both sizes):
    python bench/bench_models.py --vlm Qwen/Qwen2.5-VL-7B-Instruct --sam2 facebook/sam2.1-hiera-large \
        --random-weights
    # anywhere, tiny random models built on the spot (CPU, seconds; proves the script runs):
    python bench/bench_models.py --tiny

Random weights are built with ``from_config`` and placed in the per-process model cache
(:mod:`videoseg.runtime.loading`) under the real id, so the backends then run exactly as with downloaded weights.
The paper's ids (Qwen2.5-VL 3B / 7B, VisionReasoner-7B, Seg-Zero-7B, the SAM2 / SAM2.1 sizes) are
described in :mod:`bench.architectures` and need no network; other ids fetch their config from the hub.
A random VLM rarely stops early, so its generation runs to the token cap (the worst case); its text is
tokenized byte by byte (see :mod:`bench.architectures`), which lengthens the text part of each prompt.
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

from bench import architectures  # noqa: E402
from videoseg.core.config import PipelineConfig  # noqa: E402
from videoseg.core.cues import TargetCues  # noqa: E402
from videoseg.core.interfaces import CallSettings, Clip, ReasonRequest  # noqa: E402
from videoseg.runtime import loading as models  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class Recorder:
    """Times a stage and reads its peak memory; collects one row per stage."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.rows: list[dict[str, Any]] = []
        self.seconds: dict[str, float] = {}  # by stage key, for the per-query estimate

    def measure(
        self,
        stage: str,
        fn: Callable[[], Any],
        rate: Callable[[Any, float], str] | None = None,
        key: str | None = None,
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
        self.seconds[key or stage] = seconds
        print(_format_row(row), flush=True)
        return result


def _format_row(row: dict[str, Any]) -> str:
    gpu = f"{row['peak_gpu_mb']:>12.1f}" if "peak_gpu_mb" in row else f"{'-':>12}"
    return f"{row['stage']:<22}{row['seconds']:>10.3f}{gpu}{row['peak_rss_mb']:>12.1f}  {row.get('rate', '')}"


# --------------------------------------------------------------------------- random weights


def _inject_random(kind: str, model_id: str, device: torch.device, dtype: torch.dtype) -> str:
    """Build ``model_id``'s architecture with random weights and cache it under the real id.

    The paper's ids are described in :mod:`architectures` (no network needed, as on a lent GPU machine);
    any other id has its config and processor files fetched from the hub. Returns where they came from.
    """
    if architectures.known(model_id):
        models.cached_model(
            kind, model_id, device, dtype, lambda: architectures.build(model_id, kind, dtype, device)
        )
        return "bench/architectures.py"
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
    return "hub config"


# --------------------------------------------------------------------------- stages


def bench_vlm(rec: Recorder, config: PipelineConfig, frames: np.ndarray, fps: float, max_new: int) -> None:
    """The model calls of one query as the pipeline makes them: K interval answers in one generate,
    M percentage answers in one, the difficulty rating, the streamed reasoning. Each row also gives the
    call's figures (sequences, prompt / vision tokens, new tokens, the call's own peak GPU memory)."""
    from videoseg.reasoning.qwen import QwenVideoQA

    qa = rec.measure("vlm load", lambda: QwenVideoQA(config.vlm, config.device, config.dtype))
    n = len(frames)
    step = max(1, n // config.frames_per_question)
    idx = list(range(0, n, step))[: config.frames_per_question]
    clip = Clip(frames=frames[idx], frame_indices=idx, fps=fps, window=(0, n - 1))
    query = "the person who walks to the left after the car stops"
    settings = CallSettings.from_config(config, max_new_tokens=max_new)

    def figures(answer: Any, seconds: float) -> str:
        usage = answer.usage
        new = sum(usage.new_tokens)
        return (
            f"{usage.num_sequences} seq, {usage.prompt_tokens} prompt tok ({usage.vision_tokens} vision), "
            f"{new} new tok, {new / seconds:.1f} tok/s"
        )

    def call(label: str, fn: Any, key: str) -> None:
        result = rec.measure(label, fn, figures, key)
        rec.rows[-1].update(model_call_row(result.usage))  # the row just written gets the call's figures

    k, m = config.num_interval_answers, config.num_percent_answers
    call(f"interval K={k} ({len(idx)} fr)", lambda: qa.answer_intervals(clip, query, k, settings), "interval")
    call(
        f"percentage M={m} ({len(idx)} fr)",
        lambda: qa.answer_percentages(clip, query, m, settings),
        "percentage",
    )
    call("difficulty", lambda: qa.rate_difficulty(clip, query, settings), "difficulty")
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
        budget=config.hard_budget,
        cue_kinds=tuple(config.cues),
    )

    def reason() -> Any:
        call = qa.start_reasoning(request, settings)
        "".join(call.stream())
        return call

    call("reason (streamed)", reason, "reason")


def model_call_row(usage: Any) -> dict[str, Any]:
    """The per-call figures a ``model_call`` event carries, for a bench row."""
    return {
        "num_sequences": usage.num_sequences,
        "prompt_tokens": usage.prompt_tokens,
        "vision_tokens": usage.vision_tokens,
        "new_tokens": list(usage.new_tokens),
        "truncated": sum(bool(t) for t in usage.truncated),
        "call_peak_gpu_mb": None if usage.peak_cuda_mb is None else round(usage.peak_cuda_mb, 1),
    }


def bench_sam2(
    rec: Recorder, config: PipelineConfig, frames: np.ndarray, fps: float, official: str | None
) -> np.ndarray:
    """Keyframe mask with SAM2 (and the official package); returns a mask to propagate."""
    from videoseg.segmentation.sam2 import OfficialSam2Segmenter, Sam2Segmenter

    h, w = frames.shape[1:3]
    cues = TargetCues(
        box=[w * 0.3, h * 0.3, w * 0.6, h * 0.7], point=[w * 0.45, h * 0.5], negatives=[[w * 0.1, h * 0.1]]
    )
    segmenter = rec.measure("sam2 load", lambda: Sam2Segmenter(config))
    mask, _ = rec.measure(
        "sam2 segment", lambda: segmenter.segment(frames[len(frames) // 2], cues), key="segment"
    )
    if official:
        off_config = config.replace(sam2_model=official, segmenter="sam2-official")
        off = rec.measure("sam2-official load", lambda: OfficialSam2Segmenter(off_config))
        rec.measure("sam2-official segment", lambda: off.segment(frames[len(frames) // 2], cues))
    if not mask.any():  # random weights may give an empty mask; track the box region instead
        mask = np.zeros((h, w), dtype=bool)
        mask[int(h * 0.3) : int(h * 0.7), int(w * 0.3) : int(w * 0.6)] = True
    return mask


def bench_propagation(
    rec: Recorder, name: str, propagator: Any, frames: np.ndarray, fps: float, mask: np.ndarray
) -> None:
    """Propagate ``mask`` from the middle frame both ways through the whole clip (one call per way)."""
    from videoseg.io.video import ArrayVideo

    video = ArrayVideo(frames, fps=fps)
    n = len(frames)

    def both_ways() -> int:
        return sum(
            1
            for direction in ("forward", "backward")
            for _ in propagator.propagate(video, n // 2, mask[None], direction)
        )

    rec.measure(
        f"{name} ({n - 1} fr)",
        both_ways,
        lambda count, s: f"{count / s:.2f} frames/s",
        key=f"propagate-{name}",
    )


def bench_propagators(
    rec: Recorder, config: PipelineConfig, frames: np.ndarray, fps: float, mask: np.ndarray, which: list[str]
) -> None:
    """SAM2 video propagation and / or XMem (the paper's propagator, random weights in a temp file)."""
    if "sam2" in which:
        from videoseg.propagation.sam2_video import Sam2VideoPropagator

        propagator = rec.measure("sam2-video load", lambda: Sam2VideoPropagator(config))
        bench_propagation(rec, "sam2-video", propagator, frames, fps, mask)
    if "xmem" in which:
        from videoseg.propagation.xmem import XMem
        from videoseg.propagation.xmem.propagator import XMemPropagator

        with tempfile.TemporaryDirectory(prefix="bench-xmem-") as tmp:
            checkpoint = Path(tmp) / "XMem-random.pth"
            torch.manual_seed(0)
            torch.save(XMem().state_dict(), checkpoint)  # the released widths, random weights
            propagator = XMemPropagator(config.replace(xmem_checkpoint=str(checkpoint)))
            rec.measure("xmem load", lambda: propagator.load_network())
            bench_propagation(rec, "xmem", propagator, frames, fps, mask)


def per_query_seconds(seconds: dict[str, float], config: PipelineConfig, levels: int) -> float | None:
    """Model time of one query under ``config``: ``levels`` HTFS levels (one generate of K interval
    answers each), one generate of M percentage answers, the difficulty rating, the reasoning, one
    keyframe mask and the propagation.

    None when a stage was not measured (skipped)."""
    propagate = seconds.get(f"propagate-{config.propagator}")
    needed = ("interval", "percentage", "difficulty", "reason", "segment")
    if propagate is None or any(k not in seconds for k in needed):
        return None
    return (
        levels * seconds["interval"]
        + seconds["percentage"]
        + (seconds["difficulty"] if config.rate_difficulty else 0.0)
        + seconds["reason"]
        + seconds["segment"]
        + propagate
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
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic clip")
    parser.add_argument("--fps", type=float, default=24.0, help="frame rate of the synthetic clip")
    parser.add_argument("--frames", type=int, help="frames of the synthetic clip (default: seconds x fps)")
    parser.add_argument("--size", default="854x480", help="WxH of the synthetic clip")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        help="reasoning token cap (default: the qwen2.5-vl profile's; a random model runs to the cap)",
    )
    parser.add_argument("--levels", type=int, default=1, help="HTFS coarse levels in the per-query sum")
    parser.add_argument(
        "--propagators", default="xmem,sam2", help="comma list of propagators to time: xmem, sam2"
    )
    parser.add_argument("--skip-vlm", action="store_true")
    parser.add_argument("--skip-sam2", action="store_true")
    parser.add_argument("--official", action="store_true", help="also time the official sam2 package")
    parser.add_argument("--official-sam2", help="official SAM2 hub id / checkpoint (default: --sam2)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    width, height = (int(v) for v in args.size.lower().split("x"))
    num_frames = args.frames or max(2, round(args.seconds * args.fps))
    tmp = None
    if args.tiny:
        sys.path.insert(0, str(ROOT))
        from tests.support.tiny_models import build_tiny_official_sam2, build_tiny_qwen, build_tiny_sam2_video

        tmp = tempfile.TemporaryDirectory(prefix="bench-tiny-")
        args.vlm = str(build_tiny_qwen(Path(tmp.name) / "qwen"))
        args.sam2 = str(build_tiny_sam2_video(Path(tmp.name) / "sam2"))
        args.official_sam2 = str(build_tiny_official_sam2(Path(tmp.name) / "official"))
        args.device = "cpu"
    config = PipelineConfig(
        vlm=args.vlm,
        sam2_model=args.sam2,
        segmenter="sam2",
        propagator="xmem",  # the paper's; the per-query estimate uses it
        device=args.device,
        dtype=args.dtype,
    )
    device = models.resolve_device(config.device)
    dtype = models.resolve_dtype(config.dtype, device)
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
        f"dtype {models.dtype_name(dtype)}, vlm {config.vlm}, sam2 {config.sam2_model}, "
        f"clip {num_frames} frames x {width}x{height} at {args.fps:g} fps, "
        f"random weights: {args.random_weights or args.tiny}"
    )
    if args.random_weights and not args.tiny:
        if not args.skip_vlm:
            print("vlm architecture from", _inject_random("qwen2.5-vl", config.vlm, device, dtype))
        if not args.skip_sam2:
            print("sam2 architecture from", _inject_random("sam2-image", config.sam2_model, device, dtype))
            _inject_random("sam2-video", config.sam2_model, device, dtype)

    frames = np.random.default_rng(0).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    fps = args.fps
    from videoseg.reasoning.difficulty import max_new_tokens_for

    max_new = args.max_new_tokens or max_new_tokens_for(None, config)
    rec = Recorder(device)
    print(f"{'stage':<22}{'seconds':>10}{'peak GPU MB':>12}{'peak RSS MB':>12}  rate")
    # no_grad, not inference_mode: a model loaded under inference_mode holds inference tensors, which
    # XMem's weight-change check (tensor versions) cannot read.
    with torch.no_grad():
        if not args.skip_vlm:
            bench_vlm(rec, config, frames, fps, max_new)
        if not args.skip_sam2:
            mask = bench_sam2(
                rec, config, frames, fps, (args.official_sam2 or config.sam2_model) if args.official else None
            )
            bench_propagators(rec, config, frames, fps, mask, args.propagators.split(","))
    total = per_query_seconds(rec.seconds, config, args.levels)
    if total is not None:
        print(
            f"one query ({args.levels} level(s) of K={config.num_interval_answers} in one call each, "
            f"M={config.num_percent_answers} in one call, difficulty, reasoning, mask, XMem propagation): "
            f"{total:.1f} s"
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

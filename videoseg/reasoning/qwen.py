"""Qwen2.5-VL as the paper's video LLM: HTFS questions (step 1), difficulty rating and reasoner (step 2).

:class:`QwenVideoQA` implements :class:`videoseg.core.interfaces.VideoQA` for any Qwen2.5-VL checkpoint, by hub id
or local path: the paper's ``Qwen/Qwen2.5-VL-7B-Instruct`` / ``-3B-Instruct`` and the closest released
GRPO checkpoints ``Ricky06662/VisionReasoner-7B`` / ``Ricky06662/Seg-Zero-7B``. One loaded instance per
``(id, device, dtype)`` is shared by every caller in the process (:mod:`videoseg.runtime.loading`), so stages 1
and 2 share the model when their ids match.

How frames reach the model (the choices, and why):

- **Sampler / difficulty clips are given as one video** with the frame times also written in the
  prompt. Qwen2.5-VL encodes absolute time in its M-RoPE positions for videos (from the frame rate we
  pass in the video metadata) and was trained on temporal grounding with video input, so it answers
  "when" questions best that way; writing the times in the text makes the seconds explicit even
  though frames are merged in pairs (temporal patch size 2) and covers a non-integer frame rate.
- **Reasoner**: the key segment as a video (same reason), the reference frames as separate small
  images each labelled with its time (they are spread over the whole video, so they are not a video
  with a meaningful frame rate), and the target frame last, as a larger image whose pixel size is
  written in the prompt; the answer's coordinates are in that image's pixels.
- Every frame is resized here to multiples of the model's patch factor (28) within a pixel budget and
  the processor is told not to resize again, so the size the model sees is known exactly.

``answer_space(w, h)``: base Qwen2.5-VL checkpoints ground in the pixels of their smart-resized input
(multiples of 28, within [min_pixels, max_pixels] of the checkpoint's processor, capped here at
:data:`TARGET_MAX_PIXELS`); VisionReasoner / Seg-Zero resize every image to 840 x 840 in training and
answer in that space, so for checkpoints whose id or folder name contains ``visionreasoner`` or
``seg-zero`` (or ``segzero``) the target image is resized to 840 x 840. Cues map back with
``TargetCues.from_model_space(answer_space(W, H), (W, H))``.

Sampler answers are sampled (``config.temperature``) with a seed derived from ``config.seed``, the
question and ``sample``, so the K / M answers differ from each other but a run is reproducible; the
reasoner and the difficulty rating are greedy. The reasoner streams its text token by token from a
generation thread; an exception in that thread is re-raised in the caller.
"""

from __future__ import annotations

import logging
import math
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from videoseg.core.config import PipelineConfig
from videoseg.core.interfaces import BackendDescription, Clip, ReasonRequest, VideoQAPrompts
from videoseg.reasoning import prompts
from videoseg.runtime.loading import cached_model, dtype_name, hub_offline, resolve_device, resolve_dtype

log = logging.getLogger(__name__)

# Pixel budgets per image (before the patch factor rounding). A 448 x 448 frame costs 256 tokens; a
# video costs half that per frame (pairs of frames share tokens).
CLIP_FRAME_MAX_PIXELS = 448 * 448
REFERENCE_MAX_PIXELS = 448 * 448
# The target frame carries the answer, so it is larger: ~1024 visual tokens (close to the 840 x 840 of
# VisionReasoner), instead of the up to 16k tokens of Qwen's own default for a 4K frame.
TARGET_MAX_PIXELS = 1024 * 28 * 28
# Answer space of VisionReasoner / Seg-Zero (they resize every image to 840 x 840).
FIXED_REASONER_SIZE = (840, 840)
FIXED_SIZE_NAMES = ("visionreasoner", "seg-zero", "segzero", "seg_zero")

INTERVAL_MAX_NEW_TOKENS = 40
PERCENT_MAX_NEW_TOKENS = 24
DIFFICULTY_MAX_NEW_TOKENS = 96

_SEED_SALT = {"interval": 1, "percentage": 2}


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """(height, width) rounded to multiples of ``factor`` with an area in [min_pixels, max_pixels].

    Qwen2.5-VL's own resizing rule (same result as the processor's), kept here so ``answer_space`` can
    be computed without a processor call and tested as a pure function.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio above 200 is not supported by Qwen2.5-VL: {width} x {height}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / scale / factor) * factor)
        w_bar = max(factor, math.floor(width / scale / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * scale / factor) * factor
        w_bar = math.ceil(width * scale / factor) * factor
    return h_bar, w_bar


def uses_fixed_answer_size(model_id: str) -> bool:
    """True for VisionReasoner / Seg-Zero checkpoints (by hub id or folder name), which answer in 840x840."""
    name = Path(str(model_id).rstrip("/")).name.lower() + " " + str(model_id).lower()
    return any(tag in name for tag in FIXED_SIZE_NAMES)


def qwen_answer_space(
    width: int,
    height: int,
    *,
    factor: int,
    min_pixels: int,
    max_pixels: int,
    fixed: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """(width, height) of the target image as the model sees it: ``fixed`` if given, else smart_resize."""
    if fixed is not None:
        return fixed
    h, w = smart_resize(height, width, factor, min_pixels, min(max_pixels, TARGET_MAX_PIXELS))
    return w, h


@dataclass
class GenerationRecord:
    """What the last generation produced (for token counts and truncation in events and tests)."""

    purpose: str = ""
    token_ids: list[int] = field(default_factory=list)
    think_tokens: int | None = None  # tokens until "</think>" was complete (reasoner only)
    text: str = ""
    max_new_tokens: int = 0
    stopped_by_eos: bool = False

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def truncated(self) -> bool:
        """Generation hit ``max_new_tokens`` before the model ended its answer."""
        return not self.stopped_by_eos and self.num_tokens >= self.max_new_tokens


@dataclass
class _Prepared:
    """A chat prompt with its visual inputs, ready for the processor."""

    content: list[dict[str, Any]]
    images: list[np.ndarray]
    videos: list[np.ndarray]
    video_fps: list[float]
    text: str = ""

    def add_text(self, text: str) -> None:
        # One line per part: the chat template joins the items with nothing in between.
        if self.content and self.content[-1]["type"] != "text":
            text = "\n" + text
        self.content.append({"type": "text", "text": text})

    def add_image(self, image: np.ndarray) -> None:
        self.content.append({"type": "image"})
        self.images.append(image)

    def add_video(self, frames: np.ndarray, fps: float) -> None:
        self.content.append({"type": "video"})
        self.videos.append(frames)
        self.video_fps.append(fps)


def _load_qwen(model_id: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    local = hub_offline(model_id)
    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": local}
    if device.type == "cuda":
        kwargs["device_map"] = {"": str(device)}  # load shards straight onto the GPU
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_id, **kwargs)
    if device.type != "cuda":
        model = model.to(device)
    model.eval()
    processor = AutoProcessor.from_pretrained(model_id, local_files_only=local)
    for part in ("tokenizer", "image_processor", "video_processor"):
        if getattr(processor, part, None) is None:
            raise ValueError(f"{model_id!r} has no {part}: not a Qwen2.5-VL processor")
    return model, processor


def _pixel_limits(part: Any) -> tuple[int, int]:
    """(min_pixels, max_pixels) of a Qwen image / video processor, across transformers versions."""
    size = getattr(part, "size", None) or {}
    get = size.get if isinstance(size, dict) else (lambda k, d=None: getattr(size, k, d))
    lo = get("shortest_edge") or getattr(part, "min_pixels", None) or 56 * 56
    hi = get("longest_edge") or getattr(part, "max_pixels", None) or 28 * 28 * 1280
    return int(lo), int(hi)


class TokenStreamer(TextIteratorStreamer):
    """Yields the decoded text token by token (a ``TextIteratorStreamer`` that flushes every token).

    ``TextIteratorStreamer`` only flushes at spaces; the explorer shows each token as it comes, so this
    subclass flushes whatever new text the last token completed, holding back only an unfinished UTF-8
    sequence (decoded as U+FFFD until its last byte arrives). The concatenation of the pieces equals the
    decoded text of all generated tokens. It also keeps the generated ids and when ``</think>`` closed.
    """

    def __init__(self, tokenizer: Any) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.token_ids: list[int] = []
        self.think_tokens: int | None = None  # tokens up to and including "</think>"
        self.ended = False

    def put(self, value: torch.Tensor) -> None:
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        ids = value.reshape(-1).tolist()
        self.token_ids.extend(ids)
        self.token_cache.extend(ids)
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        if self.think_tokens is None and "</think>" in text:
            self.think_tokens = len(self.token_ids)
        if text.endswith("\ufffd"):
            return
        piece = text[self.print_len :]
        self.print_len = len(text)
        if piece:
            self.on_finalized_text(piece)

    def end(self) -> None:
        self.ended = True
        super().end()


class _StopOnEvent(StoppingCriteria):
    """Stops generation at the next token once ``event`` is set (the consumer closed the stream)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class QwenVideoQA:
    """Qwen2.5-VL answering the sampler's and reasoner's questions (see the module docstring)."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.model_id = config.vlm
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.model, self.processor = cached_model(
            "qwen2.5-vl",
            self.model_id,
            self.device,
            self.dtype,
            lambda: _load_qwen(self.model_id, self.device, self.dtype),
        )
        image_proc = self.processor.image_processor
        self.factor = int(image_proc.patch_size) * int(image_proc.merge_size)
        self.image_pixels = _pixel_limits(image_proc)
        self.video_pixels = _pixel_limits(self.processor.video_processor)
        self.fixed_size = FIXED_REASONER_SIZE if uses_fixed_answer_size(self.model_id) else None
        space = "840x840 (VisionReasoner-style)" if self.fixed_size else "smart-resized pixels"
        self.info = BackendDescription(
            name="qwen2.5-vl",
            weights_free=False,
            description=(
                f"Qwen2.5-VL checkpoint {self.model_id} on {self.device} ({dtype_name(self.dtype)}); "
                f"answers in {space}"
            ),
            model_id=self.model_id,
        )
        self.last_prompts = VideoQAPrompts()
        self.last_generation = GenerationRecord()

    # ------------------------------------------------------------------ VideoQA protocol

    def answer_interval(self, clip: Clip, query: str, sample: int) -> str:
        prepared = self._clip_prompt(
            clip, prompts.clip_question(prompts.INTERVAL_QUESTION, **_clip_args(clip, query))
        )
        self.last_prompts.interval = prepared.text
        return self._generate_text(prepared, "interval", INTERVAL_MAX_NEW_TOKENS, sample=sample)

    def answer_percentage(self, clip: Clip, query: str, sample: int) -> str:
        prepared = self._clip_prompt(
            clip, prompts.clip_question(prompts.PERCENT_QUESTION, **_clip_args(clip, query))
        )
        self.last_prompts.percentage = prepared.text
        return self._generate_text(prepared, "percentage", PERCENT_MAX_NEW_TOKENS, sample=sample)

    def rate_difficulty(self, clip: Clip, query: str) -> str:
        prepared = self._clip_prompt(
            clip, prompts.clip_question(prompts.DIFFICULTY_QUESTION, **_clip_args(clip, query))
        )
        self.last_prompts.difficulty = prepared.text
        return self._generate_text(prepared, "difficulty", DIFFICULTY_MAX_NEW_TOKENS, sample=None)

    def answer_space(self, width: int, height: int) -> tuple[int, int]:
        lo, hi = self.image_pixels
        return qwen_answer_space(
            width, height, factor=self.factor, min_pixels=lo, max_pixels=hi, fixed=self.fixed_size
        )

    def reason(self, request: ReasonRequest) -> Iterator[str]:
        """Stream the reasoner's text token by token (greedy, at most ``request.max_new_tokens``)."""
        prepared = self._reason_prompt(request)
        self.last_prompts.reason = prepared.text
        inputs = self._inputs(prepared)
        streamer = TokenStreamer(self.processor.tokenizer)
        stop = threading.Event()
        failure: list[BaseException] = []
        record = GenerationRecord(purpose="reason", max_new_tokens=int(request.max_new_tokens))
        self.last_generation = record

        def work() -> None:
            try:
                out = self._run_generate(
                    inputs, record.max_new_tokens, sample=None, streamer=streamer, stop=stop
                )
                record.stopped_by_eos = self._ended_by_eos(out, inputs)
            except BaseException as exc:  # re-raised in the consumer below
                failure.append(exc)
                if not streamer.ended:
                    streamer.end()

        thread = threading.Thread(target=work, name="qwen-reason", daemon=True)
        thread.start()
        pieces: list[str] = []
        try:
            for piece in streamer:
                if piece:
                    pieces.append(piece)
                    yield piece
        finally:
            # Also reached when the consumer stops early (cancel): stop generating at the next token.
            stop.set()
            thread.join()
        record.token_ids = list(streamer.token_ids)
        record.think_tokens = streamer.think_tokens
        record.text = "".join(pieces)
        if failure:
            raise failure[0]

    @property
    def last_usage(self) -> dict[str, int]:
        """Token counts of the last generation, read by the pipeline for ``ReasoningDone``.

        ``think_tokens`` counts the tokens up to the end of ``</think>`` (all tokens when it never came).
        """
        record = self.last_generation
        think = record.think_tokens if record.think_tokens is not None else record.num_tokens
        return {"num_tokens": record.num_tokens, "think_tokens": think}

    # ------------------------------------------------------------------ prompts

    def _fit(self, frame: np.ndarray, max_pixels: int, limits: tuple[int, int]) -> np.ndarray:
        """Resize an (H, W, 3) frame to multiples of the patch factor within the pixel budget."""
        lo, hi = limits
        h, w = smart_resize(frame.shape[0], frame.shape[1], self.factor, lo, max(lo, min(hi, max_pixels)))
        return _resize(frame, w, h)

    def _clip_video(self, clip: Clip) -> tuple[np.ndarray, float]:
        if len(clip.frames) == 0:
            raise ValueError("the clip has no frames")
        frames = np.stack([self._fit(f, CLIP_FRAME_MAX_PIXELS, self.video_pixels) for f in clip.frames])
        # Frames sample the window uniformly, so their rate is their count over the window's length.
        fps = len(clip.frames) / max(clip.duration, 1e-6)
        return frames, fps

    def _clip_prompt(self, clip: Clip, question: str) -> _Prepared:
        prepared = _Prepared(content=[], images=[], videos=[], video_fps=[])
        prepared.add_video(*self._clip_video(clip))
        prepared.add_text(question)
        return self._render(prepared)

    def _reason_prompt(self, request: ReasonRequest) -> _Prepared:
        prepared = _Prepared(content=[], images=[], videos=[], video_fps=[])
        key = request.key_clip
        fps = key.fps
        if len(key.frames):
            video, rate = self._clip_video(key)
            header = prompts.KEY_SEGMENT_HEADER.format(
                num_frames=len(key.frames),
                start=key.window[0] / fps,
                end=key.window[1] / fps,
                times=prompts.format_times([i / fps for i in key.frame_indices]),
            )
            prepared.add_text(header)
            prepared.add_video(video, rate)
        ref = request.reference_clip
        if ref is not None and len(ref.frames):
            ref_times = [i / ref.fps for i in ref.frame_indices]
            prepared.add_text(prompts.REFERENCE_HEADER.format(times=prompts.format_times(ref_times)))
            for frame, t in zip(ref.frames, ref_times):
                prepared.add_text(prompts.FRAME_LABEL.format(time=t))
                prepared.add_image(self._fit(frame, REFERENCE_MAX_PIXELS, self.image_pixels))
        target = np.asarray(request.target_frame)
        if target.ndim != 3 or target.shape[2] != 3:
            raise ValueError(f"target frame must be (H, W, 3), got shape {target.shape}")
        width, height = self.answer_space(target.shape[1], target.shape[0])
        prepared.add_text(
            prompts.TARGET_HEADER.format(time=request.target_index / fps, width=width, height=height)
        )
        prepared.add_image(_resize(target, width, height))
        prepared.add_text(prompts.reason_instructions(request.query, request.cue_kinds, request.budget))
        return self._render(prepared)

    def _render(self, prepared: _Prepared) -> _Prepared:
        messages = [{"role": "user", "content": prepared.content}]
        prepared.text = self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return prepared

    # ------------------------------------------------------------------ generation

    def _inputs(self, prepared: _Prepared) -> Any:
        kwargs: dict[str, Any] = {"text": [prepared.text], "return_tensors": "pt", "do_resize": False}
        if prepared.images:
            kwargs["images"] = prepared.images
        if prepared.videos:
            kwargs["videos"] = prepared.videos
            kwargs["video_metadata"] = [
                {"total_num_frames": len(v), "fps": fps, "frames_indices": list(range(len(v)))}
                for v, fps in zip(prepared.videos, prepared.video_fps)
            ]
            kwargs["cap_pixels_per_frame"] = False  # frames are already within our budget
        inputs = self.processor(**kwargs)
        inputs = inputs.to(self.device)
        for name in ("pixel_values", "pixel_values_videos"):
            if name in inputs:
                inputs[name] = inputs[name].to(self.dtype)
        return inputs

    def _seed(self, purpose: str, sample: int) -> int:
        # Stable across processes (no hash randomisation): seed, question kind and sample number.
        return zlib.crc32(f"{self.config.seed}:{_SEED_SALT.get(purpose, 0)}:{sample}".encode())

    def _run_generate(
        self,
        inputs: Any,
        max_new_tokens: int,
        *,
        sample: int | None,
        streamer: Any = None,
        stop: threading.Event | None = None,
        purpose: str = "",
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {"max_new_tokens": max(1, int(max_new_tokens)), "streamer": streamer}
        if sample is None or self.config.temperature <= 0:
            # Greedy; checkpoints ship sampling defaults (Qwen: temperature 0.1, top_k 1), override them.
            kwargs.update(do_sample=False, temperature=1.0, top_k=50, top_p=1.0)
        else:
            # Qwen's shipped top_k=1 / top_p=0.001 would make every sample identical: open them up.
            kwargs.update(do_sample=True, temperature=float(self.config.temperature), top_k=0, top_p=1.0)
        if stop is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnEvent(stop)])
        with torch.inference_mode():
            if sample is None or not kwargs["do_sample"]:
                return self.model.generate(**inputs, **kwargs)
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self._seed(purpose, sample))
                return self.model.generate(**inputs, **kwargs)

    def _ended_by_eos(self, out: torch.Tensor, inputs: Any) -> bool:
        new = out[0, inputs["input_ids"].shape[1] :].tolist()
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        return bool(new) and new[-1] in eos_ids

    def _generate_text(
        self, prepared: _Prepared, purpose: str, max_new_tokens: int, sample: int | None
    ) -> str:
        inputs = self._inputs(prepared)
        out = self._run_generate(inputs, max_new_tokens, sample=sample, purpose=purpose)
        new = out[0, inputs["input_ids"].shape[1] :]
        text = self.processor.tokenizer.decode(new, skip_special_tokens=True)
        self.last_generation = GenerationRecord(
            purpose=purpose,
            token_ids=new.tolist(),
            text=text,
            max_new_tokens=max_new_tokens,
            stopped_by_eos=self._ended_by_eos(out, inputs),
        )
        return text.strip()


def _clip_args(clip: Clip, query: str) -> dict[str, Any]:
    return {"query": query, "times": clip.times(), "duration": clip.duration}


def _resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    shrink = width * height < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


__all__ = [
    "FIXED_REASONER_SIZE",
    "TARGET_MAX_PIXELS",
    "GenerationRecord",
    "QwenVideoQA",
    "qwen_answer_space",
    "smart_resize",
    "uses_fixed_answer_size",
]

"""Qwen2.5-VL as the paper's video LLM: HTFS questions (step 1), difficulty rating and reasoner (step 2).

:class:`QwenVideoQA` implements :class:`videoseg.core.interfaces.VideoQA` for any Qwen2.5-VL checkpoint,
by hub id or local path: the paper's ``Qwen/Qwen2.5-VL-7B-Instruct`` / ``-3B-Instruct`` and the closest
released GRPO checkpoints ``Ricky06662/VisionReasoner-7B`` / ``Ricky06662/Seg-Zero-7B``. One loaded
instance per ``(id, device, dtype)`` is shared by every caller in the process
(:mod:`videoseg.runtime.loading`), so it holds weights and processors only: every call takes the run's
:class:`~videoseg.core.interfaces.CallSettings` and returns its texts, exact prompt and
:class:`~videoseg.core.interfaces.Usage`. Two runs with different presets may use one instance at once.

How frames reach the model (the choices, and why):

- **Sampler / difficulty clips are given as one video** with the frame times also written in the
  prompt. Qwen2.5-VL encodes absolute time in its M-RoPE positions for videos (from the frame rate we
  pass in the video metadata) and was trained on temporal grounding with video input, so it answers
  "when" questions best that way; writing the times in the text makes the seconds explicit even
  though frames are merged in pairs (temporal patch size 2) and covers a non-integer frame rate.
- **The K interval answers of an HTFS level are ONE generate** with ``num_return_sequences=K``: the
  frames are encoded and prefilled once and K continuations are sampled from that cache (the M
  percentage answers likewise). Sampling draws from a generator private to the call (seeded by the
  run's seed, the question and the level), never from torch's global RNG, so concurrent runs neither
  disturb each other nor lose reproducibility.
- **Reasoner**: the run's profile (:mod:`videoseg.reasoning.profiles`) builds the chat messages (our
  layout: key segment as a video, reference frames as small labelled images, the target frame last;
  VisionReasoner / Seg-Zero: one 840 x 840 image and their own template) and says the pixel space of
  the answer (``answer_size``). Frames go to the processor already at their final size (multiples of
  the 28 px patch factor) with resizing switched off, so the size the model sees is known exactly.
- **Generation finishes**: the reasoning cap is the profile's ``max_new_tokens`` (at least the
  reference implementations'); a reasoning budget only shapes the prompt. A sequence cut at the cap is
  reported in ``Usage.truncated``.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from videoseg.core.interfaces import (
    BackendDescription,
    CallSettings,
    Clip,
    ModelAnswer,
    ReasonRequest,
    Usage,
)
from videoseg.reasoning import prompts
from videoseg.reasoning.profiles import smart_resize
from videoseg.runtime.loading import cached_model, dtype_name, hub_offline, resolve_device, resolve_dtype

log = logging.getLogger(__name__)

# Pixel budgets per image (before the patch factor rounding). A 448 x 448 frame costs 256 tokens; a
# video costs half that per frame (pairs of frames share tokens).
CLIP_FRAME_MAX_PIXELS = 448 * 448
REFERENCE_MAX_PIXELS = 448 * 448
# The target frame carries the answer, so it is larger: ~1024 visual tokens (close to the 840 x 840 of
# VisionReasoner), instead of the up to 16k tokens of Qwen's own default for a 4K frame.
TARGET_MAX_PIXELS = 1024 * 28 * 28

# Caps of the short sampler answers ("From 2.0 to 5.5 seconds.", "40%", a five-key JSON): generous, so
# a model that adds a sentence still finishes; a cut answer is reported like any other.
QUESTION_MAX_NEW_TOKENS = {"interval": 48, "percentage": 32, "difficulty": 128}
_QUESTION_TEMPLATES = {
    "interval": "INTERVAL_QUESTION",
    "percentage": "PERCENT_QUESTION",
    "difficulty": "DIFFICULTY_QUESTION",
}
_SEED_SALT = {"interval": 1, "percentage": 2}


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


def sampling_seed(seed: int, purpose: str, level: int) -> int:
    """Seed of one sampled call: stable across processes (no hash randomisation)."""
    return zlib.crc32(f"{int(seed)}:{_SEED_SALT.get(purpose, 0)}:{int(level)}".encode())


@dataclass
class _Prepared:
    """A chat prompt with its visual inputs, ready for the processor."""

    content: list[dict[str, Any]] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    videos: list[np.ndarray] = field(default_factory=list)
    video_fps: list[float] = field(default_factory=list)
    messages: list[dict[str, Any]] | None = None  # whole conversation (profiles); else one user turn
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


def _model_class(model_type: str) -> Any:
    """The generation class of a Qwen VLM checkpoint by its config's ``model_type`` (Qwen2.5-VL by default)."""
    import transformers

    classes = {"qwen3_vl": "Qwen3VLForConditionalGeneration"}
    return getattr(transformers, classes.get(model_type, "Qwen2_5_VLForConditionalGeneration"))


def _load_qwen(model_id: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoConfig, AutoProcessor

    local = hub_offline(model_id)
    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": local}
    if device.type == "cuda":
        kwargs["device_map"] = {"": str(device)}  # load shards straight onto the GPU
    model_type = AutoConfig.from_pretrained(model_id, local_files_only=local).model_type
    model = _model_class(model_type).from_pretrained(model_id, **kwargs)
    if device.type != "cuda":
        model = model.to(device)
    model.eval()
    processor = AutoProcessor.from_pretrained(model_id, local_files_only=local)
    for part in ("tokenizer", "image_processor", "video_processor"):
        if getattr(processor, part, None) is None:
            raise ValueError(f"{model_id!r} has no {part}: not a Qwen2.5-VL / Qwen3-VL processor")
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


class SeededSampler(LogitsProcessor):
    """Temperature sampling from a generator private to one call (Gumbel-max), thread-safe.

    ``argmax(logits / T + Gumbel noise)`` is a draw from ``softmax(logits / T)``. The chosen token is
    returned as the only finite logit, so ``generate``'s own multinomial draw (which reads torch's
    global RNG, shared by every thread) can only pick it: the draw is fixed by this call's seed alone.
    Each of the ``num_return_sequences`` rows gets its own noise.
    """

    def __init__(self, seed: int, temperature: float, device: torch.device) -> None:
        if temperature <= 0:
            raise ValueError("sampling needs a positive temperature")
        self.temperature = float(temperature)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(seed))

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logits = scores.float() / self.temperature
        u = torch.rand(logits.shape, generator=self.generator, device=logits.device, dtype=torch.float32)
        gumbel = -torch.log(-torch.log(u.clamp(1e-12, 1.0 - 1e-7)))
        choice = torch.argmax(logits + gumbel, dim=-1, keepdim=True)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, choice, 0.0)


class _Measure:
    """Wall time and (on CUDA) peak allocated memory of one model call."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.seconds = 0.0
        self.peak_mb: float | None = None

    def __enter__(self) -> _Measure:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        self.seconds = time.perf_counter() - self._start


class QwenVideoQA:
    """Qwen2.5-VL answering the sampler's and reasoner's questions (see the module docstring)."""

    def __init__(self, model: Any, device: str = "auto", dtype: str = "auto") -> None:
        # A PipelineConfig is accepted for convenience; only its weights settings are read.
        if not isinstance(model, str):
            model, device, dtype = model.vlm, model.device, model.dtype
        self.model_id = str(model)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model, self.processor = cached_model(
            "qwen2.5-vl",
            self.model_id,
            self.device,
            self.dtype,
            lambda: _load_qwen(self.model_id, self.device, self.dtype),
        )
        image_proc = self.processor.image_processor
        self.merge = int(image_proc.merge_size)
        self.factor = int(image_proc.patch_size) * self.merge
        self.image_pixels = _pixel_limits(image_proc)
        self.video_pixels = _pixel_limits(self.processor.video_processor)
        self.info = BackendDescription(
            name="qwen2.5-vl",
            weights_free=False,
            description=f"Qwen2.5-VL checkpoint {self.model_id} on {self.device} ({dtype_name(self.dtype)})",
            model_id=self.model_id,
        )

    def profile(self, name: str) -> Any:
        """The named profile with this checkpoint's processor facts (patch factor, pixel limits)."""
        from videoseg.reasoning.profiles import get_profile

        return get_profile(name).for_processor(self.factor, *self.image_pixels)

    # ------------------------------------------------------------------ VideoQA: questions

    def question_prompt(
        self, purpose: str, clip: Clip, query: str, settings: CallSettings | None = None
    ) -> str:
        return self._question(purpose, clip, query, pixels=False).text

    def answer_intervals(self, clip: Clip, query: str, num: int, settings: CallSettings) -> ModelAnswer:
        return self._ask("interval", clip, query, num, settings)

    def answer_percentages(self, clip: Clip, query: str, num: int, settings: CallSettings) -> ModelAnswer:
        return self._ask("percentage", clip, query, num, settings)

    def rate_difficulty(self, clip: Clip, query: str, settings: CallSettings) -> ModelAnswer:
        return self._ask("difficulty", clip, query, 1, settings)

    def _question(self, purpose: str, clip: Clip, query: str, pixels: bool = True) -> _Prepared:
        """The question's chat prompt; ``pixels=False`` leaves the frames out (the text is the same:
        the template shows a video as one placeholder), for showing the prompt before asking."""
        if purpose not in _QUESTION_TEMPLATES:
            raise ValueError(f"unknown question {purpose!r}; one of {', '.join(_QUESTION_TEMPLATES)}")
        template = getattr(prompts, _QUESTION_TEMPLATES[purpose])
        question = prompts.clip_question(template, query=query, times=clip.times(), duration=clip.duration)
        if len(clip.frames) == 0:
            raise ValueError("the clip has no frames")
        prepared = _Prepared()
        prepared.add_video(*(self._clip_video(clip) if pixels else (clip.frames[:0], 1.0)))
        prepared.add_text(question)
        return self._render(prepared)

    def _ask(self, purpose: str, clip: Clip, query: str, num: int, settings: CallSettings) -> ModelAnswer:
        num = int(num)
        if num < 1:
            raise ValueError(f"at least one answer must be asked for, got {num}")
        prepared = self._question(purpose, clip, query)
        inputs = self._inputs(prepared)
        cap = QUESTION_MAX_NEW_TOKENS[purpose]
        sampled = purpose in _SEED_SALT and settings.temperature > 0
        sampler = None
        if sampled:
            seed = sampling_seed(settings.seed, purpose, settings.level)
            sampler = SeededSampler(seed, settings.temperature, self.device)
        # Greedy answers are all the same: one sequence is generated and repeated.
        sequences = num if sampled else 1
        with _Measure(self.device) as cost:
            out = self._run_generate(inputs, cap, num=sequences, sampler=sampler)
        new = out[:, inputs["input_ids"].shape[1] :]
        counts, cut = self._lengths(new, cap)
        texts = [
            self.processor.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
            for row, n in zip(new, counts)
        ]
        if not sampled:
            texts = texts * num
        usage = Usage(
            prompt_tokens=int(inputs["input_ids"].shape[1]),
            vision_tokens=self._vision_tokens(inputs),
            new_tokens=counts,
            truncated=cut,
            max_new_tokens=cap,
            seconds=cost.seconds,
            peak_cuda_mb=cost.peak_mb,
        )
        return ModelAnswer(texts=texts, prompt=prepared.text, usage=usage)

    # ------------------------------------------------------------------ VideoQA: reasoning

    def start_reasoning(self, request: ReasonRequest, settings: CallSettings) -> QwenReasoning:
        """Build the profile's prompt now (``.prompt``); generation starts when ``.stream()`` is read."""
        profile = self.profile(settings.profile)
        prepared, answer_size = self._reason_prompt(request, profile)
        cap = int(settings.max_new_tokens or profile.max_new_tokens)
        return QwenReasoning(self, prepared, answer_size, cap)

    def answer_space(self, width: int, height: int, profile: str = "qwen2.5-vl") -> tuple[int, int]:
        """(width, height) the answer's coordinates refer to, for a frame of this size."""
        size = self.profile(profile).answer_size(int(width), int(height))
        return int(size[0]), int(size[1])

    def _reason_prompt(self, request: ReasonRequest, profile: Any) -> tuple[_Prepared, tuple[int, int]]:
        target = np.asarray(request.target_frame)
        if target.ndim != 3 or target.shape[2] != 3:
            raise ValueError(f"target frame must be (H, W, 3), got shape {target.shape}")
        height, width = target.shape[:2]
        answer_size = tuple(int(v) for v in profile.answer_size(width, height))
        prepared = self._from_messages(profile.reason_messages(request))
        if not prepared.images:
            raise ValueError(f"profile {profile.name!r} shows no target image to the reasoner")
        seen = prepared.images[-1].shape[1], prepared.images[-1].shape[0]
        shown = tuple(int(v) for v in profile.shown_size(width, height))
        if seen != shown:
            raise ValueError(
                f"profile {profile.name!r} says its target image is {shown[0]} x {shown[1]} pixels "
                f"but the image given is {seen[0]} x {seen[1]}"
            )
        return prepared, answer_size  # type: ignore[return-value]

    def _from_messages(self, messages: list[dict[str, Any]]) -> _Prepared:
        """Chat messages holding images / videos -> the text template input plus the pixel lists.

        Images keep their size when it already is a multiple of the patch factor (the profile sized
        them: the target image's size is the answer space); other images and video frames are fitted
        to our pixel budgets.
        """
        prepared = _Prepared(messages=[])
        for message in messages:
            content = message.get("content")
            if isinstance(content, str):
                prepared.messages.append({"role": message["role"], "content": content})
                continue
            items: list[dict[str, Any]] = []
            for item in content or []:
                kind = item.get("type")
                if kind == "text":
                    items.append({"type": "text", "text": str(item.get("text", ""))})
                elif kind == "image":
                    image = _rgb(item.get("image"))
                    if image.shape[0] % self.factor or image.shape[1] % self.factor:
                        image = self._fit(image, REFERENCE_MAX_PIXELS, self.image_pixels)
                    items.append({"type": "image"})
                    prepared.images.append(image)
                elif kind == "video":
                    frames = [_rgb(f) for f in item.get("video", [])]
                    if not frames:
                        raise ValueError("a video item in the prompt has no frames")
                    video = np.stack([self._fit(f, CLIP_FRAME_MAX_PIXELS, self.video_pixels) for f in frames])
                    items.append({"type": "video"})
                    prepared.videos.append(video)
                    prepared.video_fps.append(float(item.get("fps") or 2.0))
                else:
                    raise ValueError(f"unknown message item type {kind!r}")
            prepared.messages.append({"role": message["role"], "content": items})
        return self._render(prepared)

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

    def _render(self, prepared: _Prepared) -> _Prepared:
        messages = prepared.messages or [{"role": "user", "content": prepared.content}]
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

    def _vision_tokens(self, inputs: Any) -> int:
        total = 0
        for name in ("image_grid_thw", "video_grid_thw"):
            if name in inputs:
                total += int(inputs[name].prod(dim=-1).sum()) // (self.merge * self.merge)
        return total

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        return {int(i) for i in ids}

    def _lengths(self, new: torch.Tensor, cap: int) -> tuple[list[int], list[bool]]:
        """Tokens of each generated row up to and including its end token, and whether it was cut."""
        eos = self._eos_ids()
        counts, cut = [], []
        for row in new.tolist():
            end = next((i + 1 for i, t in enumerate(row) if t in eos), None)
            counts.append(end if end is not None else len(row))
            cut.append(end is None and len(row) >= cap)
        return counts, cut

    def _run_generate(
        self,
        inputs: Any,
        max_new_tokens: int,
        *,
        num: int = 1,
        sampler: SeededSampler | None = None,
        streamer: Any = None,
        stop: threading.Event | None = None,
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {"max_new_tokens": max(1, int(max_new_tokens)), "streamer": streamer}
        if sampler is None:
            # Greedy; checkpoints ship sampling defaults (Qwen: temperature 0.1, top_k 1), override them.
            kwargs.update(do_sample=False, temperature=1.0, top_k=50, top_p=1.0)
        else:
            # The SeededSampler draws; generate's own warpers are switched off (T = 1, no top-k / top-p)
            # so its multinomial step only sees the one token left finite.
            kwargs.update(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, min_p=None)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
        if num > 1:
            kwargs["num_return_sequences"] = int(num)
        if stop is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([_StopOnEvent(stop)])
        with torch.inference_mode():
            return self.model.generate(**inputs, **kwargs)


class QwenReasoning:
    """One reasoning call (:class:`~videoseg.core.interfaces.ReasoningCall`): the prompt is ready at
    once; :meth:`stream` generates greedily in a thread and yields the text token by token; an
    exception in that thread is re-raised in the consumer; closing the stream stops generation."""

    def __init__(self, qa: QwenVideoQA, prepared: _Prepared, answer_size: tuple[int, int], cap: int) -> None:
        self._qa = qa
        self._prepared = prepared
        self.prompt = prepared.text
        self.answer_size = answer_size
        self.usage = Usage(max_new_tokens=cap)
        self._stop = threading.Event()

    def close(self) -> None:
        self._stop.set()

    def stream(self) -> Iterator[str]:
        qa = self._qa
        inputs = qa._inputs(self._prepared)
        self.usage.prompt_tokens = int(inputs["input_ids"].shape[1])
        self.usage.vision_tokens = qa._vision_tokens(inputs)
        streamer = TokenStreamer(qa.processor.tokenizer)
        failure: list[BaseException] = []
        cost = _Measure(qa.device)

        def work() -> None:
            try:
                with cost:
                    qa._run_generate(inputs, self.usage.max_new_tokens, streamer=streamer, stop=self._stop)
            except BaseException as exc:  # re-raised in the consumer below
                failure.append(exc)
                if not streamer.ended:
                    streamer.end()

        thread = threading.Thread(target=work, name="qwen-reason", daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            # Also reached when the consumer stops early (cancel): stop generating at the next token.
            self._stop.set()
            thread.join()
            ids = list(streamer.token_ids)
            ended = bool(ids) and ids[-1] in qa._eos_ids()
            n = len(ids)
            self.usage.new_tokens = [n]
            self.usage.truncated = [not ended and n >= self.usage.max_new_tokens]
            self.usage.think_tokens = streamer.think_tokens if streamer.think_tokens is not None else n
            self.usage.seconds = cost.seconds
            self.usage.peak_cuda_mb = cost.peak_mb
        if failure:
            raise failure[0]


def _rgb(image: Any) -> np.ndarray:
    """A PIL image or an (H, W, 3) array as a contiguous uint8 RGB array."""
    if hasattr(image, "convert"):
        image = image.convert("RGB")
    array = np.array(image, dtype=np.uint8)  # a writable copy (a PIL view is read-only)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"an image in the prompt must be RGB (H, W, 3), got shape {array.shape}")
    return np.ascontiguousarray(array)


def _resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    shrink = width * height < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


__all__ = [
    "QUESTION_MAX_NEW_TOKENS",
    "TARGET_MAX_PIXELS",
    "QwenReasoning",
    "QwenVideoQA",
    "SeededSampler",
    "qwen_answer_space",
    "sampling_seed",
    "smart_resize",
]

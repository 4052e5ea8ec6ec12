"""Model profiles (paper step 2): how each reasoner family is asked and how it answers.

A checkpoint answers well only when it is prompted the way it was trained. A profile says, per reasoner
family, which frames it is shown and how (layout, image size), with which template, in which pixel space
its coordinates are (:meth:`Profile.answer_size`), in which schema it answers, how long it may generate
and whether its negative points can be trusted. The profile is chosen by name (a preset names one,
``--profile`` overrides it); it is never guessed from a checkpoint's folder name, and ``--vlm PATH``
replaces only the weights.

- ``qwen2.5-vl``: base Qwen2.5-VL with our VideoSeg-R1 prompt (:mod:`videoseg.reasoning.prompts`): the
  key segment as a video, the reference frames as small images each labelled with its time, the target
  frame last at a size written in the prompt; box + centre + negative point per target. Qwen2.5-VL
  grounds in the absolute pixels of its (smart-resized) input, so the answer space is that size.
  It was not trained to give negative points, so those inside the target's box are dropped.
- ``qwen3-vl``: a Qwen3-VL Instruct checkpoint with the same VideoSeg-R1 prompt and layout (key segment
  as a video, which Qwen3-VL's processor interleaves with per-frame timestamps; reference frames; the
  target frame last). Qwen3-VL grounds in coordinates *relative* to the image, 0..1000 on each axis
  (QwenLM/Qwen3-VL cookbooks/2d_grounding.ipynb), so the prompt asks for that grid and
  :meth:`Profile.answer_size` is 1000 x 1000 whatever the frame (:meth:`Profile.shown_size` is the
  image it sees: 32-px patches, not 28).
- ``videoseg-r1``: a checkpoint trained by our GRPO trainer, which builds its prompts with this profile's
  :meth:`Profile.reason_messages`, so inference asks exactly what training asked; the same prompt as
  ``qwen2.5-vl`` but every frame an image (layout ``images``: the key-segment frames each labelled with
  its time, as TRL's GRPOTrainer takes images only); it answers in our schema and its negative points
  are kept.
- ``visionreasoner`` / ``seg-zero``: the released GRPO checkpoints, asked as their inference code asks
  (dvlab-research/VisionReasoner ``vision_reasoner/models/vision_reasoner_model.py``,
  dvlab-research/Seg-Zero ``inference_scripts/infer.py``): one image resized to 840 x 840 (PIL bilinear),
  their own template, greedy decoding, at most 2048 / 1024 new tokens; coordinates in the 840 x 840
  space. They see the target frame only (no video, no reference frames) and cannot answer the HTFS
  interval / percentage / difficulty questions (``grounding_only``).

Message format returned by :meth:`Profile.reason_messages` (Qwen chat messages, one user turn): items
``{"type": "text", "text": str}``, ``{"type": "image", "image": PIL.Image}`` and
``{"type": "video", "video": [PIL.Image, ...], "fps": float}``. Every image and video frame is already at
the exact size the model must see (multiples of ``patch_factor`` within the pixel budget, or the fixed
``image_size``): the processor must not resize them again (``do_resize=False``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
from PIL import Image

from videoseg.core.cues import TargetCues, drop_negatives_inside_box
from videoseg.core.interfaces import Clip, ReasonRequest
from videoseg.reasoning import prompts

# Qwen2.5-VL vision facts: 14-px patches merged 2 x 2 -> one token per 28 x 28 px; its processor's
# default pixel limits are 56*56 .. 16384*28*28 (transformers Qwen2VLImageProcessor).
QWEN_PATCH_FACTOR = 28
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 16384 * 28 * 28
# Our budgets per image (before the patch-factor rounding). A 448 x 448 frame costs 256 tokens; a video
# costs half that per frame (pairs of frames share tokens).
CLIP_FRAME_MAX_PIXELS = 448 * 448
REFERENCE_MAX_PIXELS = 448 * 448
# The target frame carries the answer, so it is larger: ~1024 visual tokens (close to the 840 x 840 of
# VisionReasoner) instead of the up to 16k tokens of Qwen's own default for a 4K frame.
TARGET_MAX_PIXELS = 1024 * 28 * 28
# VisionReasoner and Seg-Zero resize every image to 840 x 840 (resize_size = 840 in their inference).
FIXED_REASONER_SIZE = (840, 840)

# Qwen3-VL vision facts: 16-px patches merged 2 x 2 -> one token per 32 x 32 px; its released
# preprocessor_config.json sets size shortest_edge 65536, longest_edge 16777216 (256^2 .. 4096^2 px).
QWEN3_PATCH_FACTOR = 32
QWEN3_MIN_PIXELS = 65536
QWEN3_MAX_PIXELS = 16777216
# Qwen3-VL grounds in coordinates relative to the image, 0..1000 on each axis, whatever its size
# (QwenLM/Qwen3-VL cookbooks/2d_grounding.ipynb: "relative coordinates ranging from 0 to 1000";
# the cookbook maps back with pixel = value / 1000 * side). Qwen2.5-VL used its input's pixels.
RELATIVE_GRID = 1000

LAYOUTS = ("video+images", "images", "single-image")
COORDINATES = ("pixels", "relative-1000")
ANSWER_SCHEMAS = ("videoseg", "visionreasoner", "seg-zero")


class UnknownProfileError(ValueError):
    """A profile name that is not in :data:`PROFILES`; the message lists the known names."""


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN_PATCH_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """(height, width) rounded to multiples of ``factor`` with an area in [min_pixels, max_pixels].

    Qwen2.5-VL's resizing rule (same result as its processor), as a pure function so the answer space
    is known without loading a processor.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {width} x {height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio above 200 is not supported by Qwen2.5-VL: {width} x {height}")
    # The transformers processor's rule (Qwen2VLImageProcessor's smart_resize), which is what resizes
    # images at inference; tests/reasoning/test_qwen.py compares the two on a table of sizes.
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


@dataclass(frozen=True)
class Profile:
    """How one reasoner family is asked and how it answers (see the module docstring).

    name, layout ("video+images" | "images" | "single-image"), image_size (fixed (width, height) of the image the
    model answers on, or None for Qwen's smart resize), answer_schema ("videoseg" | "visionreasoner" |
    "seg-zero"), max_new_tokens (generation cap, at least the reference code's), gives_negatives
    (trained to give negative points), grounding_only (cannot answer the HTFS interval / percentage /
    difficulty questions). patch_factor, min_pixels and max_pixels are the vision processor's; a
    backend whose processor differs uses :meth:`for_processor`. greedy: the reasoner decodes greedily.
    source: where the facts come from.
    """

    name: str
    layout: str
    image_size: tuple[int, int] | None
    answer_schema: str
    max_new_tokens: int
    gives_negatives: bool
    grounding_only: bool
    patch_factor: int = QWEN_PATCH_FACTOR
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS
    greedy: bool = True
    source: str = ""
    coordinates: str = "pixels"  # "pixels" of the image as shown, or "relative-1000" (Qwen3-VL)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"profile {self.name!r}: layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.answer_schema not in ANSWER_SCHEMAS:
            raise ValueError(f"profile {self.name!r}: unknown answer schema {self.answer_schema!r}")
        if self.coordinates not in COORDINATES:
            raise ValueError(f"profile {self.name!r}: coordinates must be one of {COORDINATES}")
        if self.max_new_tokens < 1 or self.patch_factor < 1 or not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"profile {self.name!r}: token cap and pixel limits must be positive")

    # ------------------------------------------------------------------ public API

    def for_processor(self, patch_factor: int, min_pixels: int, max_pixels: int) -> Profile:
        """This profile with a loaded processor's patch factor and pixel limits (same prompts)."""
        return replace(
            self, patch_factor=int(patch_factor), min_pixels=int(min_pixels), max_pixels=int(max_pixels)
        )

    def answer_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the answer's coordinate space for a frame of this size: the target image as
        the model sees it, or the 1000 x 1000 grid of a profile with relative coordinates (Qwen3-VL;
        then x_frame = x * W / 1000 exactly, as ``TargetCues.from_model_space`` maps)."""
        if self.coordinates == "relative-1000":
            return RELATIVE_GRID, RELATIVE_GRID
        return self.shown_size(width, height)

    def shown_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the target image as the model sees it."""
        if self.image_size is not None:
            return self.image_size
        h, w = smart_resize(
            int(height),
            int(width),
            self.patch_factor,
            self.min_pixels,
            max(self.min_pixels, min(self.max_pixels, TARGET_MAX_PIXELS)),
        )
        return w, h

    def reason_messages(self, request: ReasonRequest) -> list[dict[str, Any]]:
        """The chat messages of the reasoning call for ``request`` (format: module docstring)."""
        target = _check_frame(request.target_frame, "target frame")
        if self.layout == "single-image":
            content = self._single_image_content(request, target)
        else:
            content = self._video_images_content(request, target)
        return [{"role": "user", "content": content}]

    def prompt_text(self, request: ReasonRequest) -> str:
        """The text parts of :meth:`reason_messages` joined, frames shown as ``<image>`` / ``<video>``
        (for events and logs; the backend shows the rendered chat template instead when it has one)."""
        parts = []
        for item in self.reason_messages(request)[0]["content"]:
            parts.append(item["text"] if item["type"] == "text" else f"<{item['type']}>")
        return "".join(parts)

    def screen_negatives(self, cues: TargetCues) -> tuple[TargetCues, str | None]:
        """Cues with untrusted negative points removed, and a warning naming them (None if none was).

        For profiles not trained to give negatives, a negative point inside the target's own box is
        dropped (:func:`videoseg.core.cues.drop_negatives_inside_box`); ``videoseg-r1`` keeps them all.
        Call it on frame-pixel cues before the segmenter sees them.
        """
        if self.gives_negatives:
            return cues, None
        kept, dropped = drop_negatives_inside_box(cues)
        if not dropped:
            return cues, None
        where = ", ".join(f"({p[0]:.0f}, {p[1]:.0f})" for p in dropped)
        noun = "point" if len(dropped) == 1 else "points"
        return kept, (
            f"target {cues.obj_id}: negative {noun} {where} inside the target's box dropped "
            f"(the {self.name} profile is not trained to give negative points)"
        )

    # ------------------------------------------------------------------ layouts

    def _single_image_content(self, request: ReasonRequest, target: np.ndarray) -> list[dict[str, Any]]:
        width, height = self.shown_size(target.shape[1], target.shape[0])
        # Their inference resizes with PIL bilinear to exactly 840 x 840 (aspect ratio not kept).
        image = Image.fromarray(target).resize((width, height), Image.BILINEAR)
        if self.answer_schema == "seg-zero":
            text = prompts.seg_zero_question(request.query)
        else:
            text = prompts.visionreasoner_question(request.query)
        return [{"type": "image", "image": image}, {"type": "text", "text": text}]

    def _video_images_content(self, request: ReasonRequest, target: np.ndarray) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []

        def add_text(text: str) -> None:
            # One line per part: the chat template joins the items with nothing in between.
            if content and content[-1]["type"] != "text":
                text = "\n" + text
            content.append({"type": "text", "text": text})

        key = request.key_clip
        fps = key.fps
        if len(key.frames):
            frames, rate = self._clip_video(key)
            add_text(
                prompts.KEY_SEGMENT_HEADER.format(
                    num_frames=len(key.frames),
                    start=key.window[0] / fps,
                    end=key.window[1] / fps,
                    times=prompts.format_times([i / fps for i in key.frame_indices]),
                )
            )
            if self.layout == "images":
                # TRL's GRPOTrainer passes images only, so a trained checkpoint sees the key segment as
                # labelled images, in training and (through this same profile) at inference.
                for frame, i in zip(frames, key.frame_indices):
                    add_text(prompts.FRAME_LABEL.format(time=i / fps))
                    content.append({"type": "image", "image": frame})
            else:
                content.append({"type": "video", "video": frames, "fps": rate})
        ref = request.reference_clip
        if ref is not None and len(ref.frames):
            ref_times = [i / ref.fps for i in ref.frame_indices]
            add_text(prompts.REFERENCE_HEADER.format(times=prompts.format_times(ref_times)))
            for frame, t in zip(ref.frames, ref_times):
                add_text(prompts.FRAME_LABEL.format(time=t))
                content.append({"type": "image", "image": self._fit(frame, REFERENCE_MAX_PIXELS)})
        width, height = self.shown_size(target.shape[1], target.shape[0])
        time = request.target_index / fps
        if self.coordinates == "relative-1000":
            add_text(prompts.TARGET_HEADER_RELATIVE.format(time=time, grid=RELATIVE_GRID))
        else:
            add_text(prompts.TARGET_HEADER.format(time=time, width=width, height=height))
        content.append({"type": "image", "image": Image.fromarray(resize_frame(target, width, height))})
        add_text(prompts.reason_instructions(request.query, request.cue_kinds, request.budget))
        return content

    def _fit(self, frame: np.ndarray, budget: int) -> Image.Image:
        """A frame resized to multiples of the patch factor within ``budget`` pixels, as PIL."""
        frame = _check_frame(frame, "frame")
        h, w = smart_resize(
            frame.shape[0],
            frame.shape[1],
            self.patch_factor,
            self.min_pixels,
            max(self.min_pixels, min(self.max_pixels, budget)),
        )
        return Image.fromarray(resize_frame(frame, w, h))

    def _clip_video(self, clip: Clip) -> tuple[list[Image.Image], float]:
        frames = [self._fit(f, CLIP_FRAME_MAX_PIXELS) for f in clip.frames]
        # Frames sample the window uniformly, so their rate is their count over the window's length.
        return frames, len(clip.frames) / max(clip.duration, 1e-6)


def resize_frame(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 resized to (height, width): area when shrinking, cubic when enlarging."""
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    shrink = width * height < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def _check_frame(frame: Any, what: str) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"the {what} must be an (H, W, 3) RGB image, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="qwen2.5-vl",
            layout="video+images",
            image_size=None,
            answer_schema="videoseg",
            max_new_tokens=1024,
            gives_negatives=False,
            grounding_only=False,
            source="our prompt (videoseg/reasoning/prompts.py); Qwen2.5-VL grounds in its resized input's pixels",
        ),
        Profile(
            name="videoseg-r1",
            layout="images",
            image_size=None,
            answer_schema="videoseg",
            max_new_tokens=1024,
            gives_negatives=True,
            grounding_only=False,
            source="our prompt, the one our GRPO trainer trains with",
        ),
        Profile(
            name="qwen3-vl",
            layout="video+images",
            image_size=None,
            answer_schema="videoseg",
            max_new_tokens=1024,
            gives_negatives=False,
            grounding_only=False,
            patch_factor=QWEN3_PATCH_FACTOR,
            min_pixels=QWEN3_MIN_PIXELS,
            max_pixels=QWEN3_MAX_PIXELS,
            coordinates="relative-1000",
            source="our prompt; Qwen3-VL grounds in 0..1000 relative coordinates (QwenLM/Qwen3-VL "
            "cookbooks/2d_grounding.ipynb) and reads a video with per-frame timestamps",
        ),
        Profile(
            name="visionreasoner",
            layout="single-image",
            image_size=FIXED_REASONER_SIZE,
            answer_schema="visionreasoner",
            max_new_tokens=2048,
            gives_negatives=False,
            grounding_only=True,
            source="dvlab-research/VisionReasoner vision_reasoner/models/vision_reasoner_model.py",
        ),
        Profile(
            name="seg-zero",
            layout="single-image",
            image_size=FIXED_REASONER_SIZE,
            answer_schema="seg-zero",
            max_new_tokens=1024,
            gives_negatives=False,
            grounding_only=True,
            source="dvlab-research/Seg-Zero inference_scripts/infer.py (single-object version)",
        ),
    )
}


def profile_names() -> list[str]:
    return list(PROFILES)


def get_profile(name: str) -> Profile:
    """The profile called ``name``; :class:`UnknownProfileError` (a ValueError) listing the names."""
    key = str(name).strip().lower() if isinstance(name, str) else name
    if key not in PROFILES:
        raise UnknownProfileError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")
    return PROFILES[key]

"""SAM-family video trackers from transformers as one-direction propagators (paper step 3b, beyond the paper).

The paper propagates the keyframe masks with XMem. Since then, promptable video trackers built on
SAM 2's memory design track far better or faster (EdgeTAM, the SAM 3 tracker); transformers ships them
with the same processor / inference-session API as ``Sam2VideoModel``. :class:`TrackerPropagator`
runs any of them on the pipeline's contract (:class:`~videoseg.core.interfaces.Propagator`): from
frame ``start`` whose masks are given, one direction per call, each frame yielded once, in order.

A call is a fresh *streaming* session whose frame 0 is the start frame with the prompts, followed by
the frames of the direction in order (start+1, +2, ... or start-1, -2, ...): backward tracking is
forward tracking on the reversed frames, as the paper runs XMem.

Prompts (``config.tracker_prompt``): ``"mask"`` (default) gives each target's keyframe mask, exactly
what stage 3a produced; ``"cues"`` gives the reasoner's box, positive point (label 1) and negative
points (label 0) instead, so the tracker decodes its own start mask from the cues. The processors take
one prompt kind for all objects of a frame (a mask and points cannot be mixed, and a second call for
other objects breaks the session), so cues are used only when every tracked target has them alike;
otherwise the masks are used.

Bounded memory: frames are decoded :data:`READ_CHUNK` at a time and fed one by one; the session keeps
the vision features of one frame (``max_vision_features_cache_size=1``); after each frame the stored
pixels of earlier frames and the per-frame outputs older than the model's memory reach (``num_maskmem
- 1`` frames for the memory bank, ``max_object_pointers_in_encoder - 1`` for object pointers) are
dropped, since the model never reads them again. A test checks the pruning changes no output.

Targets whose start mask is empty are not tracked: their masks stay empty on every frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.interfaces import BackendDescription, VideoSource
from videoseg.propagation.stage import DIRECTIONS, check_start
from videoseg.runtime.loading import cached_model, dtype_name, hub_offline, resolve_device, resolve_dtype

READ_CHUNK = 8  # frames decoded per read


@dataclass(frozen=True)
class TrackerSpec:
    """Which transformers classes a tracker uses and where its checkpoint id lives in the config."""

    name: str  # backend name (config.propagator) and model-cache kind
    title: str  # shown in the backend description
    model_class: str  # transformers model class, e.g. "EdgeTamVideoModel"
    processor_class: str  # transformers processor class, e.g. "Sam2VideoProcessor"
    config_field: str  # PipelineConfig field holding the hub id or local path


def load_tracker(
    spec: TrackerSpec, model_id: str, device: torch.device, dtype: torch.dtype
) -> tuple[Any, Any]:
    """(model, processor) of ``spec`` from ``model_id`` through ``from_pretrained`` (the hub's cache
    only when the hub cannot be reached)."""
    import transformers

    model_cls = getattr(transformers, spec.model_class)
    processor_cls = getattr(transformers, spec.processor_class)
    local = hub_offline(model_id)
    model = model_cls.from_pretrained(model_id, dtype=dtype, local_files_only=local).to(device).eval()
    processor = processor_cls.from_pretrained(model_id, local_files_only=local)
    return model, processor


def _read(video: VideoSource, order: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Frames of ``order`` (any order) in chunks, so only READ_CHUNK decoded frames live at once."""
    for first in range(0, len(order), READ_CHUNK):
        chunk = list(order[first : first + READ_CHUNK])
        yield from zip(chunk, video.frames(chunk))


def frame_order(start: int, num_frames: int, direction: str) -> range:
    """Frames a call yields: start+1 .. num_frames-1 forward, start-1 .. 0 backward."""
    if direction == "forward":
        return range(start + 1, num_frames)
    if direction == "backward":
        return range(start - 1, -1, -1)
    raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def cue_prompt(cues: TargetCues | None) -> dict[str, Any] | None:
    """SAM prompt of one target's cues: ``{"points": [[x, y], ...], "labels": [1, 0, ...], "box": [...]}``
    (positive centre label 1, negatives label 0; original-frame pixels), None without any cue."""
    if cues is None or cues.is_empty:
        return None
    points = ([cues.point] if cues.point is not None else []) + list(cues.negatives)
    labels = ([1] if cues.point is not None else []) + [0] * len(cues.negatives)
    if cues.box is None and 1 not in labels:
        return None  # negatives alone name no object: SAM would segment "anything but here"
    return {"points": points, "labels": labels, "box": cues.box}


class TrackerPropagator:
    """Start-frame masks -> masks on the frames of one direction with a SAM-family video tracker."""

    spec: ClassVar[TrackerSpec]

    def __init__(self, config: PipelineConfig, memory_window: int | Literal["auto"] | None = "auto") -> None:
        self.model_id = str(getattr(config, self.spec.config_field))
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        spec = self.spec
        self.model, self.processor = cached_model(
            spec.name,
            self.model_id,
            self.device,
            self.dtype,
            lambda: load_tracker(spec, self.model_id, self.device, self.dtype),
        )
        cfg = self.model.config
        reach = max(int(cfg.num_maskmem) - 1, int(cfg.max_object_pointers_in_encoder) - 1, 1)
        # How many past frames' outputs a session keeps: "auto" = the model's memory reach; None keeps
        # every output (the unbounded reference the tests compare against).
        self.memory_window: int | None = reach if memory_window == "auto" else memory_window
        self.prompt = getattr(config, "tracker_prompt", "mask")
        self.info = BackendDescription(
            name=spec.name,
            weights_free=False,
            description=(
                f"{spec.title} (transformers {spec.model_class}) {self.model_id} on {self.device} "
                f"({dtype_name(self.dtype)}), prompted with the keyframe "
                + ("cues (box + points)" if self.prompt == "cues" else "masks")
            ),
            model_id=self.model_id,
        )

    def propagate(
        self,
        video: VideoSource,
        start: int,
        masks: np.ndarray,
        direction: str,
        cues: Sequence[TargetCues] | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_idx, (K, H, W) bool)`` for each frame of ``direction`` from ``start``, in order."""
        masks = np.asarray(masks).astype(bool)
        check_start(video, start, masks, direction)  # the same checks as every propagator
        order = list(frame_order(start, len(video), direction))
        live = [k for k in range(len(masks)) if masks[k].any()]
        if not live:
            for frame_idx in order:
                yield frame_idx, np.zeros_like(masks)
            return
        yield from self._track(video, start, masks, live, order, cues)

    def _cue_prompts(self, live: list[int], cues: Sequence[TargetCues] | None) -> dict[str, Any] | None:
        """One prompt call's inputs for every live target from its cues, or None to prompt with masks.

        The processors take one prompt kind per call and refuse a second call for other objects on the
        same frame, so cues are used only when every live target has them and either all or none of
        the targets have a box (the cue ablation keeps or drops a kind for all targets alike)."""
        if self.prompt != "cues" or cues is None or len(cues) < max(live) + 1:
            return None
        prompts = [cue_prompt(cues[k]) for k in live]
        if any(p is None for p in prompts):
            return None
        with_box = [p["box"] is not None for p in prompts]
        with_points = [bool(p["points"]) for p in prompts]
        if len(set(with_box)) > 1 or len(set(with_points)) > 1:
            return None
        return {
            "input_points": [[p["points"] for p in prompts]] if with_points[0] else None,
            "input_labels": [[p["labels"] for p in prompts]] if with_points[0] else None,
            "input_boxes": [[p["box"] for p in prompts]] if with_box[0] else None,
        }

    @torch.inference_mode()
    def _track(
        self,
        video: VideoSource,
        start: int,
        masks: np.ndarray,
        live: list[int],
        order: list[int],
        cues: Sequence[TargetCues] | None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        if not order:
            return
        height, width = masks.shape[1:]
        session = self.processor.init_video_session(
            inference_device=self.device, dtype=self.dtype, max_vision_features_cache_size=1
        )
        # Object ids are 1-based target numbers; the start frame is the session's frame 0. All objects
        # go in one call (a second call for other objects breaks the session's conditioning outputs).
        obj_ids = [k + 1 for k in live]
        from_cues = self._cue_prompts(live, cues)
        if from_cues is None:
            self.processor.add_inputs_to_inference_session(
                session, frame_idx=0, obj_ids=obj_ids, input_masks=[masks[k] for k in live]
            )
        else:
            self.processor.add_inputs_to_inference_session(
                session, frame_idx=0, obj_ids=obj_ids, original_size=(height, width), **from_cues
            )
        for step, (frame_idx, frame) in enumerate(_read(video, [start, *order])):
            pixels = self.processor(images=frame, device=self.device, return_tensors="pt").pixel_values[0]
            out = self.model(inference_session=session, frame=pixels.to(self.dtype), frame_idx=step)
            self._forget(session, step)
            if step == 0:
                continue  # the start frame itself: its masks are the caller's
            tracked = self.processor.post_process_masks(
                [out.pred_masks.float()], original_sizes=[[height, width]], binarize=True
            )[0]  # (len(live), 1, H, W) bool, in session object order = sorted target order
            result = np.zeros_like(masks)
            result[live] = tracked[:, 0].cpu().numpy()
            yield frame_idx, result

    def _forget(self, session: Any, step: int) -> None:
        """Drop stored pixels of past frames and outputs beyond the memory reach (see module docstring)."""
        frames = session.processed_frames or {}
        for idx in [i for i in frames if i < step]:
            del frames[idx]
        if self.memory_window is None:
            return
        oldest = step - self.memory_window
        for per_obj in session.output_dict_per_obj.values():
            outputs = per_obj["non_cond_frame_outputs"]
            for idx in [i for i in outputs if i < oldest]:
                del outputs[idx]


__all__ = [
    "DIRECTIONS",
    "READ_CHUNK",
    "TrackerPropagator",
    "TrackerSpec",
    "cue_prompt",
    "frame_order",
    "load_tracker",
]

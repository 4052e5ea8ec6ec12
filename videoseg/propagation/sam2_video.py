"""SAM2's own video propagation (paper step 3b, the alternative to XMem the explorer compares against).

:class:`Sam2VideoPropagator` spreads the keyframe masks over the video with transformers'
``Sam2VideoModel`` + ``Sam2VideoProcessor`` and an inference session, following the paper's XMem
protocol: once forward over the frames after the keyframe, once backward over the frames before it.
Each direction is a fresh *streaming* session whose first frame is the keyframe with the masks as
input, followed by the frames in the direction's order (keyframe+1, +2, ... or keyframe-1, -2, ...), so
backward tracking is forward tracking on the reversed frames, exactly as the paper runs XMem.

Bounded memory (what the API allows): frames are read from the video in chunks of
:data:`READ_CHUNK` and fed one at a time; the session keeps the vision features of one frame only
(``max_vision_features_cache_size=1``); after each frame, the session's stored pixels of earlier
frames and the per-frame outputs older than the model's memory reach (``num_maskmem - 1`` frames for the
memory bank, ``max_object_pointers_in_encoder - 1`` for object pointers) are dropped, since the model
never reads them again. Memory therefore stays constant in the video length; what grows is only the
small per-frame bookkeeping dict of tracked frames. The pruning touches the session's documented
state dicts (``processed_frames``, ``output_dict_per_obj``); a test checks that it changes no output.

Targets whose keyframe mask is empty are not tracked: their masks stay empty on every frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch

from videoseg.core.config import PipelineConfig
from videoseg.core.cues import TargetCues
from videoseg.core.interfaces import BackendDescription, VideoSource
from videoseg.propagation.stage import check_start
from videoseg.runtime.loading import cached_model, dtype_name, hub_offline, resolve_device, resolve_dtype

READ_CHUNK = 8  # frames decoded per read


def _load_sam2_video(model_id: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import Sam2VideoModel, Sam2VideoProcessor

    local = hub_offline(model_id)
    model = Sam2VideoModel.from_pretrained(model_id, dtype=dtype, local_files_only=local).to(device).eval()
    processor = Sam2VideoProcessor.from_pretrained(model_id, local_files_only=local)
    return model, processor


def _read(video: VideoSource, order: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Frames of ``order`` (any order) in chunks, so only READ_CHUNK decoded frames live at once."""
    for start in range(0, len(order), READ_CHUNK):
        chunk = list(order[start : start + READ_CHUNK])
        yield from zip(chunk, video.frames(chunk))


class Sam2VideoPropagator:
    """Keyframe masks -> masks on every frame with SAM2 video tracking (see the module docstring)."""

    def __init__(self, config: PipelineConfig, memory_window: int | Literal["auto"] | None = "auto") -> None:
        self.model_id = config.sam2_model
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        self.model, self.processor = cached_model(
            "sam2-video",
            self.model_id,
            self.device,
            self.dtype,
            lambda: _load_sam2_video(self.model_id, self.device, self.dtype),
        )
        cfg = self.model.config
        reach = max(int(cfg.num_maskmem) - 1, int(cfg.max_object_pointers_in_encoder) - 1, 1)
        # How many past frames' outputs a session keeps: "auto" = the model's memory reach; None keeps
        # every output (the unbounded reference the tests compare against).
        self.memory_window: int | None = reach if memory_window == "auto" else memory_window
        self.info = BackendDescription(
            name="sam2-video",
            weights_free=False,
            description=(
                f"SAM2 video tracking (transformers) {self.model_id} on {self.device} ({dtype_name(self.dtype)}), "
                "forward then backward from the keyframe"
            ),
            model_id=self.model_id,
        )
        self.last_session: Any = None  # the last direction's session (inspected by tests)

    def propagate(
        self,
        video: VideoSource,
        start: int,
        masks: np.ndarray,
        direction: str,
        cues: Sequence[TargetCues] | None = None,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Carry the masks (K, H, W) bool of frame ``start`` one way, prompted by the masks (as the
        paper prompts XMem); cues are not used."""
        masks = np.asarray(masks).astype(bool)
        check_start(video, start, masks, direction)
        order = range(start + 1, len(video)) if direction == "forward" else range(start - 1, -1, -1)
        live = [k for k in range(len(masks)) if masks[k].any()]
        if not live:
            for frame_idx in order:
                yield frame_idx, np.zeros_like(masks)
            return
        yield from self._track(video, start, masks, live, list(order))

    @torch.inference_mode()
    def _track(
        self,
        video: VideoSource,
        keyframe: int,
        masks: np.ndarray,
        live: list[int],
        order: list[int],
    ) -> Iterator[tuple[int, np.ndarray]]:
        if not order:
            return
        height, width = masks.shape[1:]
        session = self.processor.init_video_session(
            inference_device=self.device, dtype=self.dtype, max_vision_features_cache_size=1
        )
        self.last_session = session
        # Object ids are 1-based target numbers; the keyframe is the session's frame 0.
        self.processor.add_inputs_to_inference_session(
            session, frame_idx=0, obj_ids=[k + 1 for k in live], input_masks=[masks[k] for k in live]
        )
        for step, (frame_idx, frame) in enumerate(_read(video, [keyframe, *order])):
            pixels = self.processor(images=frame, device=self.device, return_tensors="pt").pixel_values[0]
            out = self.model(inference_session=session, frame=pixels.to(self.dtype), frame_idx=step)
            self._forget(session, step)
            if step == 0:
                continue  # the keyframe itself: its masks are the input
            tracked = self.processor.post_process_masks(
                [out.pred_masks.float()], original_sizes=[[height, width]], binarize=True
            )[0]  # (len(live), 1, H, W) bool
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


__all__ = ["READ_CHUNK", "Sam2VideoPropagator"]

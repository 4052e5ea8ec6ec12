"""Paper step 3a, "segment": one keyframe mask per target from its cues (box, centre, negatives)."""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence

import numpy as np

from videoseg.core.cues import TargetCues
from videoseg.core.events import Event, KeyframeMask, StageTiming
from videoseg.core.interfaces import Segmenter
from videoseg.core.masks import encode_rle


def segment_keyframe(
    segmenter: Segmenter, frame: np.ndarray, keyframe: int, targets: Sequence[TargetCues]
) -> Generator[Event, None, np.ndarray]:
    """Masks (K, H, W) bool for the targets on ``frame`` (H, W, 3); a target with no cue stays empty.

    Emits one KeyframeMask per target (with the cues that produced it and the model's score), then
    the stage's timing.
    """
    t0 = time.perf_counter()
    height, width = frame.shape[:2]
    masks = np.zeros((len(targets), height, width), dtype=bool)
    for i, cues in enumerate(targets):
        score = 0.0
        if not cues.is_empty:
            mask, score = segmenter.segment(frame, cues)
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (height, width):
                raise ValueError(f"segmenter returned a {mask.shape} mask for a {(height, width)} frame")
            masks[i] = mask
        yield KeyframeMask(
            frame_idx=keyframe,
            target=i,
            rle=encode_rle(masks[i]),
            score=float(score),
            cues=cues.to_dict(),
            area=int(masks[i].sum()),
        )
    yield StageTiming(
        for_stage="segmenter", seconds=time.perf_counter() - t0, details={"targets": len(targets)}
    )
    return masks


__all__ = ["segment_keyframe"]

"""EdgeTAM video tracking as the mask propagator (paper step 3b, beyond the paper: a faster tracker).

EdgeTAM (Zhou et al., "EdgeTAM: On-Device Track Anything Model", arXiv 2501.07256) keeps SAM 2's
memory design but compresses the stored frame memories with a 2D spatial perceiver; its authors report
DAVIS 2017 val 87.7 / MOSE val 70.0 J&F at 150.9 FPS on an A100 (vs SAM 2.1-B+ 90.2 / 76.6 at 64.1 FPS,
XMem 86.0 / 59.6), in the EdgeTAM repository's VOS table (github.com/facebookresearch/EdgeTAM README).
Weights: Apache-2.0, not gated. transformers ships it as ``EdgeTamVideoModel`` with SAM 2's video
processor; :data:`EDGETAM_MODEL` is the checkpoint transformers' own docstrings and integration tests
load (``transformers/models/edgetam_video/configuration_edgetam_video.py``).

The tracking protocol (one direction per call, prompted from the keyframe masks, bounded memory) is
:class:`~videoseg.propagation.sam_tracker.TrackerPropagator`'s.
"""

from __future__ import annotations

from videoseg.propagation.sam_tracker import TrackerPropagator, TrackerSpec

EDGETAM_MODEL = "yonigozlan/EdgeTAM-hf"

SPEC = TrackerSpec(
    name="edgetam",
    title="EdgeTAM video tracking",
    model_class="EdgeTamVideoModel",
    processor_class="Sam2VideoProcessor",
    config_field="edgetam_model",
)


class EdgeTamPropagator(TrackerPropagator):
    """Keyframe masks -> masks on the frames of one direction with EdgeTAM (see the module docstring)."""

    spec = SPEC


__all__ = ["EDGETAM_MODEL", "SPEC", "EdgeTamPropagator"]

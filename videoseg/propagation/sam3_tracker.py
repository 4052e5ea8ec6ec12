"""The SAM 3 tracker as the mask propagator (paper step 3b, beyond the paper: the strongest tracker).

SAM 3 (Carion et al., "SAM 3: Segment Anything with Concepts", arXiv 2511.16719) keeps a SAM 2-style
memory tracker beside its concept detector, sharing one backbone; prompted with a mask it is a video
object segmenter. The paper's Table 6 reports DAVIS17 val 92.2 and MOSEv1 val 78.4 J&F (SAM 2.1-L:
90.7 / 77.9). transformers ships the tracker alone as ``Sam3TrackerVideoModel`` (+
``Sam3TrackerVideoProcessor``), loaded from the same ``facebook/sam3`` checkpoint as the full model.

Weights are gated (SAM License): the hub serves them only to an account that accepted the licence,
with its token. Without such a token a preset naming them is refused before the run, with that
reason (:mod:`videoseg.runtime.weights`), never a failure in the middle of a run.

The tracking protocol (one direction per call, prompted from the keyframe masks, bounded memory) is
:class:`~videoseg.propagation.sam_tracker.TrackerPropagator`'s.
"""

from __future__ import annotations

from videoseg.propagation.sam_tracker import TrackerPropagator, TrackerSpec

SAM3_MODEL = "facebook/sam3"

SPEC = TrackerSpec(
    name="sam3-tracker",
    title="SAM 3 tracker",
    model_class="Sam3TrackerVideoModel",
    processor_class="Sam3TrackerVideoProcessor",
    config_field="sam3_model",
)


class Sam3TrackerPropagator(TrackerPropagator):
    """Keyframe masks -> masks on the frames of one direction with the SAM 3 tracker."""

    spec = SPEC


__all__ = ["SAM3_MODEL", "SPEC", "Sam3TrackerPropagator"]

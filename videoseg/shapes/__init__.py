"""The shapes world: a procedural test bed for the whole method and a weights-free reasoner.

:func:`generate` makes videos of moving coloured shapes with ground-truth masks and referring /
reasoning expressions (:mod:`videoseg.shapes.generator`); :class:`ShapesVideoQA` answers the
pipeline's sampler and reasoner questions about them from pixels (:mod:`videoseg.shapes.model`).
"""

from videoseg.shapes.generator import FAMILIES, Expression, Scenario, generate, load_scenario
from videoseg.shapes.model import ShapesVideoQA

__all__ = ["FAMILIES", "Expression", "Scenario", "ShapesVideoQA", "generate", "load_scenario"]

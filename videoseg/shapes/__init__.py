"""The shapes world: a procedural test bed for the whole method and a weights-free reasoner.

:func:`generate` makes videos of moving coloured shapes with ground-truth masks and referring /
reasoning expressions (:mod:`videoseg.shapes.world.generator`); :class:`ShapesVideoQA` answers the
pipeline's sampler and reasoner questions about them from pixels (:mod:`videoseg.shapes.symbolic.model`).
"""

from videoseg.shapes.symbolic.model import ShapesVideoQA
from videoseg.shapes.world.generator import FAMILIES, Expression, Scenario, generate, load_scenario

__all__ = ["FAMILIES", "Expression", "Scenario", "ShapesVideoQA", "generate", "load_scenario"]

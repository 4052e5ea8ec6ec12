"""VideoSeg-R1 Explorer: reasoning video object segmentation (HTFS -> reasoner -> SAM2 + XMem)."""

__version__ = "0.1.0"

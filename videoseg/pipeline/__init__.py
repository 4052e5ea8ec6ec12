"""The paper's method as one stream of typed events: :func:`run` (see :mod:`.orchestrator`)."""

from videoseg.pipeline.orchestrator import CANCELLED, MAX_QUERY_CHARS, query_problem, run

__all__ = ["CANCELLED", "MAX_QUERY_CHARS", "query_problem", "run"]

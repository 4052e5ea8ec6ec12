"""Every prompt the real VLM backend (Qwen2.5-VL) is asked, as documented templates (paper steps 1 and 2).

The paper publishes no prompts, so these are ours. Each template is a plain ``str.format`` string so the
exact text shown to the model is also what the explorer shows (``PromptShown`` events). The frames
themselves are not text: :mod:`videoseg.reasoning.qwen` puts them into the chat message around these
texts (a video placeholder before the sampler questions, the key segment / reference frames / target
frame interleaved with the section headers of the reasoner prompt).

Answer formats follow the team contract, so one parser (``videoseg.sampling.answers``,
``videoseg.core.cues.parse_answer``) reads the answers of every backend:

- interval: the first two numbers are start and end in seconds from the clip start;
- percentage: the first number is a percentage in [0, 100];
- difficulty: a JSON object with the keys ``scene``, ``segmentation``, ``temporal``, ``motion``,
  ``linguistic`` (1..10 each);
- reasoning: ``<think>...</think><answer>[...]</answer>`` with a VisionReasoner-style JSON list of
  ``bbox_2d`` / ``point_2d`` / ``neg_point_2d`` per target, in the pixels of the target image as the
  model saw it.
"""

from __future__ import annotations

from collections.abc import Sequence

# --------------------------------------------------------------------------- stage 1: HTFS

CLIP_HEADER = (
    "The video above shows {num_frames} frames of a {duration:.1f}-second clip, taken at these times "
    "(seconds from the clip start): {times}."
)
"""Describes the clip given as a video. ``times`` is a comma-separated list of seconds; writing them in
the text complements Qwen2.5-VL's absolute-time position encoding, which only knows the frame rate."""

INTERVAL_QUESTION = (
    CLIP_HEADER + "\n"
    'Query: "{query}"\n'
    "During which part of the clip does the query happen, i.e. when is the object it describes visible "
    "and doing what the query says? Answer with the start and end time in seconds from the clip start, "
    'in the form "From <start> to <end> seconds." and nothing else.'
)
"""HTFS coarse level (asked K times with sampling): the answer's first two numbers are the interval."""

PERCENT_QUESTION = (
    CLIP_HEADER + "\n"
    'Query: "{query}"\n'
    "Which moment of the clip shows the object the query refers to most clearly? Give its position as a "
    "percentage of the clip length, where 0% is the first frame and 100% the last, as one number such "
    'as "40%" and nothing else.'
)
"""HTFS fine level (asked M times with sampling): the answer's first number is the percentage."""

DIFFICULTY_QUESTION = (
    CLIP_HEADER + "\n"
    'Query: "{query}"\n'
    "Rate how hard it is to segment, in every frame of this video, the object(s) the query refers to. "
    "Score each aspect from 1 (very easy) to 10 (very hard):\n"
    "- scene: scene complexity (clutter, many similar objects);\n"
    "- segmentation: segmentation challenge (small, thin, occluded or camouflaged target);\n"
    "- temporal: temporal ambiguity (how hard it is to find when the query holds);\n"
    "- motion: motion complexity (fast, erratic or interacting movement);\n"
    "- linguistic: linguistic ambiguity (vague, indirect or multi-step wording).\n"
    'Answer with JSON only, for example {{"scene": 3, "segmentation": 5, "temporal": 2, "motion": 4, '
    '"linguistic": 6}}.'
)
"""The 5-axis task-difficulty rating (paper's soft length penalty): D is the mean of the five scores."""

# --------------------------------------------------------------------------- stage 2: reasoner

KEY_SEGMENT_HEADER = (
    "Key segment of the video: {num_frames} frames from {start:.1f} s to {end:.1f} s, taken at {times} s.\n"
)
"""Text placed before the key-segment frames (given as a video, or as labelled images)."""

REFERENCE_HEADER = "Reference frames from the whole video, for context, taken at {times} s:\n"
"""Text placed before the global reference frames (given as images, each labelled by :data:`FRAME_LABEL`)."""

FRAME_LABEL = "t = {time:.1f} s:"
"""Label placed before each frame given as an image (reference frames; key frames of the ``images`` layout)."""

TARGET_HEADER = (
    "Target frame, at {time:.1f} s. Answer on this image: it is {width} x {height} pixels and every "
    "coordinate you give must be in its pixels.\n"
)
"""Text placed before the target frame image; the size is the model-space size of ``answer_space``."""

TARGET_HEADER_RELATIVE = (
    "Target frame, at {time:.1f} s. Answer on this image with coordinates relative to its size, from 0 "
    "to {grid} on each axis: (0, 0) is its top-left corner and ({grid}, {grid}) its bottom-right corner.\n"
)
"""The target frame's header for models that ground in a relative grid (Qwen3-VL: 0..1000)."""

REASON_INSTRUCTIONS = (
    'Query: "{query}"\n'
    "Use the key segment and the reference frames to understand what happens over time, decide which "
    "object(s) the query refers to, and locate each of them in the target frame. {budget}"
    "First think step by step inside <think> </think>. Then give the final answer inside "
    "<answer> </answer> as a JSON list with one item per object, each with {cue_spec}. "
    "If no object in the target frame matches, answer with an empty list [].\n"
    "Output format: <think> your reasoning </think><answer>{example}</answer>"
)
"""The reasoner's task; ``budget`` is :data:`BUDGET_SENTENCE` or empty, ``cue_spec`` and ``example``
come from :func:`cue_spec` / :func:`answer_example` for the requested cue kinds."""

BUDGET_SENTENCE = "Keep the thinking short: at most about {budget} tokens. "
"""Added when a reasoning-token budget is known (from the difficulty rating)."""

CUE_DESCRIPTIONS = {
    "box": '"bbox_2d": [x1, y1, x2, y2], the box around the object',
    "point": '"point_2d": [x, y], a point inside the object near its centre',
    "negative": '"neg_point_2d": [x, y], a point just outside the object, on the background or on a '
    "nearby similar object that must not be segmented",
}
"""How each cue kind is described to the model (keys of the VisionReasoner answer, plus our negative)."""

_EXAMPLE_VALUES = {"box": '"bbox_2d": [12, 40, 118, 200]', "point": '"point_2d": [64, 120]'}
_EXAMPLE_VALUES["negative"] = '"neg_point_2d": [140, 96]'


def asked_cue_kinds(cue_kinds: Sequence[str]) -> list[str]:
    """The cue kinds the prompt asks for, in box / point / negative order.

    The parser needs a box or a point per target, so a request for negatives only also asks for a box.
    """
    kinds = [k for k in ("box", "point", "negative") if k in cue_kinds]
    if "box" not in kinds and "point" not in kinds:
        kinds.insert(0, "box")
    return kinds


def cue_spec(cue_kinds: Sequence[str]) -> str:
    """'"bbox_2d": [...] ..., "point_2d": ... and "neg_point_2d": ...' for the asked kinds."""
    parts = [CUE_DESCRIPTIONS[k] for k in asked_cue_kinds(cue_kinds)]
    return parts[0] if len(parts) == 1 else "; ".join(parts[:-1]) + "; and " + parts[-1]


def answer_example(cue_kinds: Sequence[str]) -> str:
    """A one-target example answer with the asked keys, e.g. ``[{"bbox_2d": [...], "point_2d": [...]}]``."""
    return "[{" + ", ".join(_EXAMPLE_VALUES[k] for k in asked_cue_kinds(cue_kinds)) + "}]"


def format_times(times: Sequence[float]) -> str:
    """Seconds with one decimal, comma-separated: '0.0, 0.5, 1.0'."""
    return ", ".join(f"{t:.1f}" for t in times)


def clip_question(template: str, *, query: str, times: Sequence[float], duration: float) -> str:
    """Fill one of the sampler / difficulty templates for a clip."""
    return template.format(
        num_frames=len(times), duration=duration, times=format_times(times), query=query.strip()
    )


def reason_instructions(query: str, cue_kinds: Sequence[str], budget: int | None) -> str:
    """Fill :data:`REASON_INSTRUCTIONS` for a query, the cue kinds and an optional token budget."""
    return REASON_INSTRUCTIONS.format(
        query=query.strip(),
        budget=BUDGET_SENTENCE.format(budget=budget) if budget is not None else "",
        cue_spec=cue_spec(cue_kinds),
        example=answer_example(cue_kinds),
    )


# --------------------------------------------------------------------------- stage 2: released single-image reasoners
#
# VisionReasoner-7B and Seg-Zero-7B were trained with GRPO on one fixed prompt each. The profiles ask
# them what those prompts ask, in the same order and with the same answer format, written in our own
# words (the project takes facts from other code, not its text): the quoted query, a box and a point
# per matching object (Seg-Zero: one object, one box and the centres of its two largest inscribed
# circles), objects weighed against each other, reasoning in <think> </think>, the answer in
# <answer> </answer> as JSON with their keys, and an example answer. Facts from
# dvlab-research/VisionReasoner vision_reasoner/models/vision_reasoner_model.py (DETECTION_TEMPLATE)
# and dvlab-research/Seg-Zero inference_scripts/infer.py (single-object QUESTION_TEMPLATE). Both put the
# image first, then this text, in one user turn. An RL-trained checkpoint may follow reworded
# instructions less reliably than its exact training prompt; the README says so.

VISIONREASONER_TEMPLATE = (
    'Locate "{question}" in the image and give a box and a point for every matching object. '
    "Weigh the candidate objects against each other and keep the ones that match best. "
    "Write your reasoning inside <think> </think> and the final answer inside <answer> </answer>. "
    "The answer is a JSON list with one entry per object: its box and a point inside it. "
    "Form: <think> reasoning </think><answer>{answer}</answer>"
)
"""VisionReasoner's detection / segmentation request; ``answer`` is :data:`VISIONREASONER_EXAMPLE`."""

VISIONREASONER_EXAMPLE = '[{"bbox_2d": [12,40,180,220], "point_2d": [96,130]}, {"bbox_2d": [240,300,690,770], "point_2d": [460,520]}]'

SEG_ZERO_TEMPLATE = (
    "Locate '{question}' in the image and give one box and two points for it. "
    "Weigh the candidate objects against each other and keep the one that matches best. "
    "Write your reasoning inside <think> </think> and the final answer inside <answer> </answer>. "
    "The answer is one JSON object: the box and the centres of the two largest circles that fit "
    "inside the object. "
    "Form: <think> reasoning </think><answer>{answer}</answer>"
)
"""Seg-Zero's single-object request; ``answer`` is :data:`SEG_ZERO_EXAMPLE` (one box, two points)."""

SEG_ZERO_EXAMPLE = "{'bbox': [12,40,180,220], 'points_1': [60,90], 'points_2': [120,170]}"


def visionreasoner_question(query: str) -> str:
    """VisionReasoner's prompt for a query, normalised as its code does (lower case, outer . " ? ! off)."""
    return VISIONREASONER_TEMPLATE.format(
        question=query.strip().lower().strip('."?!'), answer=VISIONREASONER_EXAMPLE
    )


def seg_zero_question(query: str) -> str:
    """Seg-Zero's prompt for a query, normalised as its code does (lower case, outer periods off)."""
    return SEG_ZERO_TEMPLATE.format(question=query.strip().lower().strip("."), answer=SEG_ZERO_EXAMPLE)

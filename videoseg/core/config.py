"""PipelineConfig: every knob of the three stages, plus the named presets for each ablation.

The paper (VideoSeg-R1, AAAI-26) publishes neither K, M, delta nor the prompts; the defaults here are
ours and are shown in every run's ``run_started`` event. Presets reproduce the rows of the paper's
ablation tables (Table 5: where to look; Table 6: which cues) on any backend.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

SAMPLERS = ("htfs", "first_frame", "target_only", "random_key")
CUE_KINDS = ("box", "point", "negative")
# Every backend name is declared here once, with where its class lives ("module:Class");
# videoseg.runtime.backends imports a backend from this table only when a run uses it.
SEGMENTERS = {
    "grabcut": "videoseg.segmentation.grabcut:GrabCutSegmenter",
    "sam2": "videoseg.segmentation.sam2:Sam2Segmenter",
    "sam2-official": "videoseg.segmentation.sam2:OfficialSam2Segmenter",
}
PROPAGATORS = {
    "flow": "videoseg.propagation.flow:FlowPropagator",
    "xmem": "videoseg.propagation.xmem:XMemPropagator",
    "sam2": "videoseg.propagation.sam2_video:Sam2VideoPropagator",
    "edgetam": "videoseg.propagation.edgetam:EdgeTamPropagator",
    "sam3-tracker": "videoseg.propagation.sam3_tracker:Sam3TrackerPropagator",
}
WEIGHTS_FREE_VLMS = {  # the reasoners that are not a checkpoint
    "shapes": "videoseg.shapes.symbolic.model:ShapesVideoQA",
    "manual": "videoseg.reasoning.manual:ManualVideoQA",
}
TRACKER_PROMPTS = ("mask", "cues")  # what a SAM-family tracker is prompted with on the keyframe
# The method: the paper's three stages, or SAM 3 segmenting the query's concept directly (pipeline/direct.py)
METHODS = ("videoseg-r1", "sam3-text")
SAM3_TEXTS = ("noun-phrase", "query")  # what sam3-text gives SAM 3
EDGETAM_MODEL = "yonigozlan/EdgeTAM-hf"
SAM3_MODEL = "facebook/sam3"
RETIRED_FIELDS = frozenset({"cap_generation_by_budget", "answer_allowance"})

VLM_PRESETS = {
    "qwen-7b": "Qwen/Qwen2.5-VL-7B-Instruct",
    "qwen-3b": "Qwen/Qwen2.5-VL-3B-Instruct",
    "visionreasoner-7b": "Ricky06662/VisionReasoner-7B",
    "seg-zero-7b": "Ricky06662/Seg-Zero-7B",
    "qwen3-8b": "Qwen/Qwen3-VL-8B-Instruct",
}
SAM2_PRESETS = {
    "tiny": "facebook/sam2.1-hiera-tiny",
    "small": "facebook/sam2.1-hiera-small",
    "base-plus": "facebook/sam2.1-hiera-base-plus",
    "large": "facebook/sam2.1-hiera-large",
}


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")


@dataclass
class PipelineConfig:
    """All settings of one run. Validated in ``__post_init__``; ``to_dict`` / ``from_dict`` for traces."""

    # ---- stage 1: hierarchical text-guided frame sampler (HTFS)
    sampler: str = _f("htfs", "where the reasoner looks: htfs | first_frame | target_only | random_key")
    num_interval_answers: int = _f(5, "K: interval answers averaged per coarse level")
    num_percent_answers: int = _f(5, "M: percentage answers averaged for the target frame")
    delta: float = _f(0.25, "zoom until the key segment is at most delta * video length")
    max_levels: int = _f(4, "safety cap on coarse levels")
    frames_per_question: int = _f(16, "frames shown to the model per sampler question")
    num_key_frames: int = _f(6, "key-segment frames shown to the reasoner")
    num_reference_frames: int = _f(4, "global reference frames across the whole video")
    min_key_frames: int = _f(
        6, "the key segment never shrinks below this many frames (HTFS; default: as many as num_key_frames)"
    )
    fallback_percent: float = _f(0.5, "target position used when no percentage answer parses (VISA)")
    seed: int = _f(0, "seed for sampling answers and the random_key ablation")

    # ---- stage 2: reasoner
    vlm: str = _f(
        "shapes", "video QA / reasoner backend: shapes | manual | a Qwen2.5-VL hub id or local path"
    )
    profile: str = _f(
        "qwen2.5-vl",
        "how the reasoner is asked and how it answers: qwen2.5-vl | videoseg-r1 | visionreasoner | "
        "seg-zero (videoseg.reasoning.profiles); named by the preset, never guessed from --vlm",
    )
    rate_difficulty: bool = _f(True, "ask for the 5-axis difficulty rating and derive a reasoning budget")
    easy_below: float = _f(3.5, "D below this is easy (PixelThink)")
    hard_from: float = _f(5.0, "D at or above this is hard (PixelThink)")
    easy_budget: int = _f(96, "reasoning-token budget for easy queries")
    medium_budget: int | None = _f(None, "budget for medium queries (None: no penalty, PixelThink)")
    hard_budget: int = _f(256, "reasoning-token budget for hard queries")
    max_new_tokens: int | None = _f(
        None, "reasoning token cap; None: the profile's (the budget only shapes the prompt, never cuts)"
    )
    sampler_vlm: str | None = _f(
        None,
        "model asked the HTFS and difficulty questions when the profile is grounding-only "
        "(None: the base Qwen2.5-VL of the reasoner's size); hub id or local path",
    )
    temperature: float = _f(0.7, "sampling temperature for the K / M sampler answers (reasoner is greedy)")
    cues: tuple[str, ...] = _f(("box", "point", "negative"), "cue kinds given to the segmenter")
    manual_cues: list[dict[str, Any]] | None = _f(None, "cues for the manual backend (TargetCues dicts)")

    # ---- stage 3a: keyframe segmentation
    segmenter: str = _f("grabcut", "grabcut | sam2 (transformers) | sam2-official (sam2 package)")
    sam2_model: str = _f("facebook/sam2.1-hiera-large", "SAM2 hub id or local path")

    # ---- stage 3b: propagation
    propagator: str = _f("flow", "flow | xmem | sam2 (transformers Sam2VideoModel)")
    xmem_checkpoint: str = _f("XMem.pth", "path of the official XMem checkpoint")
    xmem_size: int = _f(480, "XMem shorter side (-1: original size)")
    xmem_mem_every: int = _f(5, "XMem: add to working memory every N frames")
    xmem_top_k: int = _f(30, "XMem: top-k readout")
    xmem_min_mid_term_frames: int = _f(5, "XMem: min mid-term frames")
    xmem_max_mid_term_frames: int = _f(10, "XMem: max mid-term frames")
    xmem_max_long_term_elements: int = _f(10000, "XMem: max long-term elements")
    xmem_num_prototypes: int = _f(128, "XMem: prototypes per consolidation")
    flow_max_side: int = _f(480, "flow propagator works at this longer side")
    edgetam_model: str = _f(EDGETAM_MODEL, "EdgeTAM video hub id or local path (propagator edgetam)")
    sam3_model: str = _f(SAM3_MODEL, "SAM 3 hub id or local path (sam3-tracker, sam3-text; gated)")
    tracker_prompt: str = _f(
        "mask", "edgetam / sam3-tracker start from the keyframe: mask | cues (box + points)"
    )

    # ---- method: the paper's pipeline, or a direct method beside it
    method: str = _f(
        "videoseg-r1", "videoseg-r1 (the three stages) | sam3-text (SAM 3 on the query, no reasoning)"
    )
    sam3_text: str = _f(
        "noun-phrase", "sam3-text prompt: noun-phrase (cut from the query) | query (as typed)"
    )

    # ---- runtime
    device: str = _f("auto", "auto | cpu | cuda | cuda:N")
    dtype: str = _f("auto", "auto (bf16 on CUDA, fp32 on CPU) | float32 | bfloat16 | float16")

    def __post_init__(self) -> None:
        self.cues = tuple(self.cues)
        # Checked here, not only when a model loads, so a typo fails weights-free runs too.
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", (self.device or "auto").strip().lower()):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if (self.dtype or "auto").strip().lower() not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        bad = [c for c in self.cues if c not in CUE_KINDS]
        if bad or not self.cues:
            raise ValueError(f"cues must be a non-empty subset of {CUE_KINDS}, got {self.cues!r}")
        if self.segmenter not in SEGMENTERS:
            raise ValueError(f"segmenter must be one of {tuple(SEGMENTERS)}, got {self.segmenter!r}")
        if self.propagator not in PROPAGATORS:
            raise ValueError(f"propagator must be one of {tuple(PROPAGATORS)}, got {self.propagator!r}")
        if self.tracker_prompt not in TRACKER_PROMPTS:
            raise ValueError(f"tracker_prompt must be one of {TRACKER_PROMPTS}, got {self.tracker_prompt!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.sam3_text not in SAM3_TEXTS:
            raise ValueError(f"sam3_text must be one of {SAM3_TEXTS}, got {self.sam3_text!r}")
        if self.min_key_frames < 1:
            raise ValueError(f"min_key_frames must be at least 1, got {self.min_key_frames}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1 (or None), got {self.max_new_tokens}")
        if self.num_interval_answers < 1 or self.num_percent_answers < 1:
            raise ValueError("K and M must be at least 1")
        if not 0.0 < self.delta <= 1.0:
            raise ValueError(f"delta must be in (0, 1], got {self.delta}")
        if not 0.0 <= self.fallback_percent <= 1.0:
            raise ValueError("fallback_percent must be in [0, 1]")
        if self.num_reference_frames < 0 or self.num_key_frames < 1 or self.frames_per_question < 2:
            raise ValueError("frame counts out of range")
        if self.vlm in VLM_PRESETS:
            self.vlm = VLM_PRESETS[self.vlm]
        if self.sampler_vlm in VLM_PRESETS:
            self.sampler_vlm = VLM_PRESETS[self.sampler_vlm]
        # Imported here: the profiles module loads image code that the config itself does not need.
        from videoseg.reasoning.profiles import get_profile

        self.profile = get_profile(self.profile).name  # unknown name: ValueError listing the known ones
        if self.sam2_model in SAM2_PRESETS:
            self.sam2_model = SAM2_PRESETS[self.sam2_model]

    @property
    def weights_free(self) -> bool:
        """True when no stage needs downloaded weights."""
        if self.method != "videoseg-r1":
            return False
        return self.vlm in WEIGHTS_FREE_VLMS and self.segmenter == "grabcut" and self.propagator == "flow"

    def replace(self, **changes: Any) -> PipelineConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["cues"] = list(self.cues)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        # Settings that no longer exist (older traces hold them): the budget no longer cuts generation.
        data = {k: v for k, v in data.items() if k not in RETIRED_FIELDS}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown config fields: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


_PAPER = {"vlm": VLM_PRESETS["qwen-7b"], "profile": "qwen2.5-vl", "segmenter": "sam2", "propagator": "xmem"}

# name -> (overrides of the defaults, one-line description)
PRESETS: dict[str, tuple[dict[str, Any], str]] = {
    "shapes": ({}, "weights-free: shapes-world symbolic model + GrabCut + optical flow, full HTFS, all cues"),
    "shapes-first-frame": ({"sampler": "first_frame"}, "Table 5 row: reason on the first frame"),
    "shapes-target-only": ({"sampler": "target_only"}, "Table 5 row: only the HTFS target frame"),
    "shapes-random-key": ({"sampler": "random_key"}, "Table 5 row: a random frame of the key segment"),
    "shapes-point-only": ({"cues": ("point",)}, "Table 6 row: centre point only"),
    "shapes-box-only": ({"cues": ("box",)}, "Table 6 row: box only"),
    "shapes-box-point": ({"cues": ("box", "point")}, "Table 6 row: box + centre"),
    "shapes-box-negative": ({"cues": ("box", "negative")}, "Table 6 row: box + negative point"),
    "shapes-no-budget": (
        {"rate_difficulty": False},
        "Table 7 row: no difficulty rating, so no reasoning-token budget",
    ),
    "shapes-xmem": ({"propagator": "xmem"}, "shapes model + GrabCut, XMem propagation (needs XMem.pth)"),
    "shapes-sam2-video": (
        {"propagator": "sam2"},
        "shapes model + GrabCut, SAM 2.1 video propagation (needs SAM2)",
    ),
    "shapes-edgetam": (
        {"propagator": "edgetam"},
        "shapes model + GrabCut, EdgeTAM propagation (needs EdgeTAM)",
    ),
    "paper": (dict(_PAPER), "the paper: Qwen2.5-VL-7B + SAM2-large + XMem (needs GPU + weights)"),
    "paper-3b": ({**_PAPER, "vlm": VLM_PRESETS["qwen-3b"]}, "the paper's 3B variant"),
    "paper-first-frame": ({**_PAPER, "sampler": "first_frame"}, "paper models, Table 5 first-frame row"),
    "paper-box-only": ({**_PAPER, "cues": ("box",)}, "paper models, Table 6 box-only row"),
    "paper-sam2-video": ({**_PAPER, "propagator": "sam2"}, "paper models, SAM2 video propagation"),
    "paper-edgetam": ({**_PAPER, "propagator": "edgetam"}, "paper models, EdgeTAM propagation (Apache-2.0)"),
    "paper-qwen3-vl": (
        {**_PAPER, "vlm": "Qwen/Qwen3-VL-8B-Instruct", "profile": "qwen3-vl"},
        "the paper's pipeline with Qwen3-VL-8B-Instruct as sampler and reasoner (0..1000 grid answers)",
    ),
    "paper-sam3-tracker": (
        {**_PAPER, "propagator": "sam3-tracker"},
        "paper models, SAM 3 tracker propagation (gated weights: SAM License, hub token)",
    ),
    "sam3-text": (
        {"method": "sam3-text"},
        "SAM 3 segments the query's noun phrase directly: no HTFS, no reasoning (gated weights)",
    ),
    "paper-no-budget": (
        {**_PAPER, "rate_difficulty": False},
        "paper models, Table 7 row: no reasoning budget",
    ),
    "visionreasoner": (
        {
            **_PAPER,
            "vlm": VLM_PRESETS["visionreasoner-7b"],
            "sampler_vlm": VLM_PRESETS["qwen-7b"],
            "profile": "visionreasoner",
        },
        "VisionReasoner-7B as reasoner (closest released GRPO checkpoint)",
    ),
    "seg-zero": (
        {
            **_PAPER,
            "vlm": VLM_PRESETS["seg-zero-7b"],
            "sampler_vlm": VLM_PRESETS["qwen-7b"],
            "profile": "seg-zero",
        },
        "Seg-Zero-7B as reasoner",
    ),
}


def preset(name: str, **overrides: Any) -> PipelineConfig:
    """The named preset, with optional field overrides."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    base, _ = PRESETS[name]
    return PipelineConfig(**{**base, **overrides})


def describe_presets() -> str:
    return "\n".join(f"  {name:<20} {desc}" for name, (_, desc) in PRESETS.items())

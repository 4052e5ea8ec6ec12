"""GRPO training of the reasoner on TRL's ``GRPOTrainer`` (paper: Training; only the language model
is trained).

One function, :func:`train`, runs unchanged on one CPU process, one GPU, a node of 8 GPUs under
accelerate + DeepSpeed ZeRO-3, or several nodes (the launcher decides; ``recipes/`` holds the
configurations). What it does:

1. **Data** (:func:`build_rows`): the shapes world (``shapes:SEEDS``) or a MeViS / ReVOS /
   Ref-YouTube-VOS root read by the benchmark readers. Each expression becomes one row: the key
   segment, reference frames and target frame chosen from the ground truth
   (:func:`videoseg.training.data.oracle_plan`), laid out as an image list by the model profile
   (``get_profile(profile).reason_messages``, the inference prompt), and the ground truth on the
   target frame in the profile's answer space (box = extreme mask pixels, one centre point and one
   negative point per object). The difficulty D comes from a stored file (``--difficulty-file``) or a
   rater model (``--rater``: ``shapes`` or a Qwen2.5-VL id asked the paper's 5-axis question); its
   budget is written in the prompt, as at inference.
2. **Rewards** (:func:`reward_funcs`): the TRL wrappers of :mod:`videoseg.training.rewards` for the
   chosen reward (``visionreasoner`` | ``segzero`` | ``pixelthink`` | ``videoseg-r1``), each logged as
   its own curve, plus a zero-weight ``length_factor`` curve (logged, not optimised).
3. **Policy**: any Qwen2.5-VL checkpoint (hub id or folder), vision tower frozen (the paper trains
   the language model only); ``--lora`` trains LoRA adapters on the language model's linear layers
   instead and merges them at the end.
4. **GRPO**: TRL's defaults overridden by the paper / VisionReasoner recipe (:data:`RECIPE_DEFAULTS`:
   group size 8, learning rate 1e-6, weight decay 0.01, KL to the frozen reference with beta 0.01 as
   VisionReasoner's training script sets it, temperature 1.0), then by the recipe file's ``grpo:``
   section.
5. **Outputs**: ``OUT/metrics.jsonl`` (one line per optimiser step: every reward term's mean, the
   length factor, completion tokens, loss, KL, ...), a progress bar, ``OUT/final`` (model + processor,
   loadable with ``python -m videoseg run --vlm OUT/final --profile <profile>``) and, with LoRA,
   ``OUT/adapter``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from videoseg.training.data import (
    benchmark_id_maps,
    oracle_plan,
    reason_request,
    video_training_row,
)

LENGTH_FACTOR_CURVE = "length_factor"  # name of the logged, zero-weight length-factor curve
REWARD_KINDS = ("visionreasoner", "segzero", "pixelthink", "videoseg-r1")
DEFAULT_PROFILE = "videoseg-r1"
# Frame rate of benchmark frame folders unless --fps says otherwise: the benchmark CLI's default (6,
# Ref-YouTube-VOS keeps every 5th frame of 30 fps video); it only sets the times the prompt names.
DEFAULT_FPS = 6.0

# The language model's linear layers (Qwen2.5-VL module names): LoRA goes there and nowhere in the
# vision tower, whose MLP layers share the names gate_proj / up_proj / down_proj.
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

# GRPOConfig fields we set unless the recipe's ``grpo:`` section does. Sources: MISSION "Training"
# (group 8, batch 16, lr 1e-6, weight decay 0.01, KL to a frozen reference) and VisionReasoner's
# training script (Seg-Zero repo, training_scripts/run_visionreasoner_7b.sh + visionreasoner_7b.yaml:
# kl_loss_coef 1e-2 with the low-variance (k3) KL, which is TRL's estimator; rollout temperature 1.0;
# max_grad_norm 1.0). TRL's own default beta is 0 (no reference model), hence the override.
RECIPE_DEFAULTS: dict[str, Any] = {
    "learning_rate": 1e-6,
    "weight_decay": 0.01,
    "beta": 0.01,
    "temperature": 1.0,
    "max_grad_norm": 1.0,
    "logging_steps": 1,
    "save_strategy": "no",
    "report_to": [],
    "remove_unused_columns": False,
}


class TrainingError(ValueError):
    """A training run cannot start or finish (the message says why, for the user)."""


@dataclass
class TrainSettings:
    """Everything one run needs; the CLI and recipe files fill it (field names = option names)."""

    model: str = ""
    data: str = ""
    out: str = ""
    layout: str | None = None
    split: str = "train"
    fps: float | None = None
    max_steps: int = 100
    num_generations: int = 8
    reward: str = "videoseg-r1"
    profile: str = DEFAULT_PROFILE
    lora: bool = False
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    merge: bool = True
    rater: str | None = None
    difficulty_file: str | None = None
    max_examples: int | None = None
    num_key_frames: int | None = None
    num_reference_frames: int | None = None
    shapes_size: tuple[int, int] | None = None
    shapes_family: str | None = None
    seed: int = 0
    device: str = "auto"
    grpo: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse bad settings before anything loads."""
        if not self.model:
            raise TrainingError("no model: pass --model (a Qwen2.5-VL hub id or local folder)")
        if not Path(self.model).expanduser().exists() and not re.fullmatch(r"[\w.-]+/[\w.-]+", self.model):
            raise TrainingError(f"--model {self.model}: no such folder, and not a hub id (owner/name)")
        if not self.data:
            raise TrainingError("no data: pass --data shapes:SEEDS or a benchmark root with --layout")
        if not self.out:
            raise TrainingError("no output folder: pass --out DIR")
        if self.reward not in REWARD_KINDS:
            raise TrainingError(f"unknown reward {self.reward!r}; known: {', '.join(REWARD_KINDS)}")
        if self.max_steps < 1:
            raise TrainingError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.num_generations < 2:
            raise TrainingError(
                f"--num-generations must be at least 2 (GRPO compares a group), got {self.num_generations}"
            )
        if self.max_examples is not None and self.max_examples < 1:
            raise TrainingError(f"--max-examples must be at least 1, got {self.max_examples}")
        if self.rater is not None and self.difficulty_file is not None:
            raise TrainingError("give the difficulty either from --rater or from --difficulty-file, not both")
        parse_data(self.data, self.layout)
        if not isinstance(self.grpo, dict):
            raise TrainingError("the recipe's grpo: section must be a mapping of GRPOConfig fields")
        from trl import GRPOConfig

        known = {f.name for f in fields(GRPOConfig)}
        unknown = sorted(set(self.grpo) - known)
        if unknown:
            raise TrainingError(f"unknown GRPOConfig field(s) in the recipe's grpo: section: {unknown}")


# --------------------------------------------------------------------------- recipes


def load_recipe(path: str | Path) -> dict[str, Any]:
    """A recipe YAML file -> a dict of :class:`TrainSettings` fields (dashes read as underscores)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"recipe {path} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TrainingError(f"recipe {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TrainingError(f"recipe {path} must be a mapping of option: value")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    known = {f.name for f in fields(TrainSettings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TrainingError(f"recipe {path}: unknown key(s) {unknown}; known: {sorted(known)}")
    if data.get("shapes_size") is not None:
        data["shapes_size"] = parse_size(str(data["shapes_size"]))
    return data


def make_settings(recipe: Mapping[str, Any] | None = None, **overrides: Any) -> TrainSettings:
    """Recipe values, then the given overrides (None means "not given"), checked."""
    values = dict(recipe or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = TrainSettings(**values)
    settings.check()
    return settings


def parse_size(text: str) -> tuple[int, int]:
    """'320x240' -> (320, 240)."""
    m = re.fullmatch(r"\s*(\d+)\s*[x,]\s*(\d+)\s*", text)
    if not m:
        raise TrainingError(f"a size is WIDTHxHEIGHT, e.g. 320x240, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_seeds(text: str) -> list[int]:
    """'0-7' / '0,3,5' / '0-3,9' -> the seeds, in order, without repeats."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise TrainingError(f"shapes seeds are N, A-B or a comma list of those, got {text!r}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise TrainingError(f"seed range {part!r} runs backwards")
        seeds.extend(s for s in range(lo, hi + 1) if s not in seeds)
    return seeds


def parse_data(spec: str, layout: str | None) -> tuple[str, Any]:
    """``shapes:SEEDS`` -> ("shapes", seeds); a folder -> (layout, path). Checked, not read."""
    from videoseg.eval.datasets import LAYOUTS

    if spec.startswith("shapes:"):
        return "shapes", parse_seeds(spec[len("shapes:") :])
    path = Path(spec)
    if layout is None:
        raise TrainingError(f"--data {spec}: a benchmark root needs --layout ({', '.join(LAYOUTS)})")
    if layout not in LAYOUTS:
        raise TrainingError(f"unknown --layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if not path.is_dir():
        raise TrainingError(f"--data {spec} is neither shapes:SEEDS nor a folder")
    return layout, path


# --------------------------------------------------------------------------- profile, difficulty


def get_model_profile(name: str) -> Any:
    """The named model profile (:mod:`videoseg.reasoning.profiles`)."""
    from videoseg.reasoning.profiles import get_profile

    try:
        return get_profile(name)
    except (KeyError, ValueError) as exc:
        raise TrainingError(f"unknown --profile {name!r}: {exc}") from exc


Rater = Callable[[Any], tuple[float | None, dict[str, float]]]


def make_rater(name: str, device: str = "auto") -> Rater:
    """A difficulty rater: asks a VideoQA backend (``shapes`` or a Qwen2.5-VL id) the paper's 5-axis
    question on the row's key segment, as the pipeline does. Returns (D or None, scores)."""
    from videoseg.core.config import PipelineConfig
    from videoseg.core.interfaces import CallSettings
    from videoseg.reasoning.difficulty import rate
    from videoseg.runtime.backends import make_vqa
    from videoseg.sampling.answers import parse_difficulty

    try:
        config = PipelineConfig(vlm=name, device=device)
        vqa = make_vqa(config)
    except Exception as exc:  # a missing checkpoint, a bad id: say it in one line
        raise TrainingError(f"cannot load the difficulty rater {name!r}: {exc}") from exc
    settings = CallSettings.from_config(config)

    def rater(request: Any) -> tuple[float | None, dict[str, float]]:
        answer = vqa.rate_difficulty(request.key_clip, request.query, settings)
        text = answer.texts[0] if answer.texts else ""
        scores = parse_difficulty(text)
        if scores is None:
            return None, {}
        rating = rate(scores, config)
        return rating.difficulty, rating.scores

    return rater


def load_difficulties(path: str | Path) -> dict[str, Any]:
    """A stored difficulty column: JSON ``{row key: D or {axis: score}}`` (keys as in ``row["key"]``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise TrainingError(f"--difficulty-file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise TrainingError(f"--difficulty-file {path}: expected a JSON object of row key -> difficulty")
    return data


def stored_difficulty(value: Any, key: str) -> tuple[float | None, dict[str, float]]:
    """A stored cell -> (D, scores): a number is D itself, a mapping holds the five axis scores."""
    from videoseg.core.config import PipelineConfig
    from videoseg.reasoning.difficulty import rate

    if value is None:
        return None, {}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not 1.0 <= float(value) <= 10.0:
            raise TrainingError(f"difficulty of {key} must be in [1, 10], got {value}")
        return float(value), {}
    if isinstance(value, Mapping):
        try:
            rating = rate({k: float(v) for k, v in value.items()}, PipelineConfig())
        except (TypeError, ValueError) as exc:
            raise TrainingError(f"difficulty of {key}: {exc}") from exc
        return rating.difficulty, rating.scores
    raise TrainingError(f"difficulty of {key} must be a number or an object of axis scores, got {value!r}")


def budget_of(difficulty: float | None) -> int | None:
    """The reasoning-token budget of a difficulty (PixelThink levels, PipelineConfig defaults)."""
    from videoseg.core.config import PipelineConfig
    from videoseg.reasoning.difficulty import budget_for, difficulty_level

    if difficulty is None:
        return None
    config = PipelineConfig()
    return budget_for(difficulty_level(difficulty, config.easy_below, config.hard_from), config)


# --------------------------------------------------------------------------- rows


def build_rows(settings: TrainSettings, profile: Any, log: Callable[[str], None] = print) -> Iterator[dict]:
    """The training rows of ``settings.data`` (see the module docstring), at most ``max_examples``."""
    from videoseg.core.config import PipelineConfig

    defaults = PipelineConfig()
    num_key = settings.num_key_frames or defaults.num_key_frames
    num_ref = (
        defaults.num_reference_frames
        if settings.num_reference_frames is None
        else settings.num_reference_frames
    )
    kind, where = parse_data(settings.data, settings.layout)
    rater = None
    if settings.rater is not None:
        rater = make_rater(settings.rater, settings.device)
    elif settings.difficulty_file is None and kind == "shapes":
        rater = make_rater("shapes")  # weights-free and deterministic: the shapes world rates itself
    stored = load_difficulties(settings.difficulty_file) if settings.difficulty_file else None
    if rater is None and stored is None:
        log("note: no difficulty (no --rater, no --difficulty-file): no budget, the length factor is 1")

    def make_row(frames, fps, num_frames, masks, obj_ids, query, key, extra) -> dict | None:
        plan = oracle_plan(masks, obj_ids, num_key, num_ref)
        if plan is None:
            return None
        request = reason_request(frames, fps, num_frames, plan, query, max_new_tokens=profile.max_new_tokens)
        if stored is not None:
            difficulty, scores = stored_difficulty(stored.get(key), key)
        elif rater is not None:
            difficulty, scores = rater(request)
        else:
            difficulty, scores = None, {}
        request.budget = budget_of(difficulty)
        return video_training_row(
            request,
            masks[plan.target],
            obj_ids,
            profile,
            difficulty=difficulty,
            difficulty_scores=scores,
            key=key,
            extra={"key_segment": list(plan.key_segment), **extra},
        )

    count = skipped = 0
    for frames, fps, num_frames, masks, obj_ids, query, key, extra in _expressions(kind, where, settings):
        if settings.max_examples is not None and count >= settings.max_examples:
            break
        row = make_row(frames, fps, num_frames, masks, obj_ids, query, key, extra)
        if row is None:
            skipped += 1
            continue
        count += 1
        yield row
    if skipped:
        log(f"note: {skipped} expression(s) skipped: their objects never show")
    if count == 0:
        raise TrainingError(f"--data {settings.data} gave no training example")


def _expressions(kind: str, where: Any, settings: TrainSettings) -> Iterator[tuple]:
    """(frames getter, fps, T, (T, H, W) id maps, obj ids, query, key, extra) per expression."""
    if kind == "shapes":
        from videoseg.shapes import generate

        for seed in where:
            try:
                scenario = generate(int(seed), settings.shapes_family, size=settings.shapes_size)
            except (ValueError, RuntimeError) as exc:  # RuntimeError: no layout fits at this frame size
                raise TrainingError(
                    f"shapes seed {seed}: {exc} (try another seed or a larger --shapes-size)"
                ) from exc
            frames = scenario.frames
            for expr in scenario.expressions:
                yield (
                    lambda idx, f=frames: f[idx],
                    scenario.fps,
                    scenario.num_frames,
                    scenario.masks,
                    list(expr.obj_ids),
                    expr.text,
                    f"shapes:{seed}/{expr.id}",
                    {"source": "shapes", "family": scenario.family, "expression_type": expr.type},
                )
        return
    from videoseg.eval.datasets import DatasetError, load_benchmark

    try:
        bench = load_benchmark(kind, where, settings.split)
    except DatasetError as exc:
        raise TrainingError(str(exc)) from exc
    fps = settings.fps or DEFAULT_FPS
    for expr in bench.expressions():
        if not bench.has_ground_truth(expr):
            continue
        try:
            video = bench.open_video(expr.video, fps)
            masks, obj_ids = benchmark_id_maps(bench, expr, video.size)
        except DatasetError as exc:
            raise TrainingError(str(exc)) from exc
        yield (
            video.frames,
            fps,
            len(video),
            masks,
            obj_ids,
            expr.text,
            expr.key,
            {"source": bench.name, "expression_type": expr.type},
        )


SHARD_ROWS = 256  # rows held in memory at once while the dataset is written (images are large)


def build_dataset(settings: TrainSettings, profile: Any, main_process_first: Any = None) -> Any:
    """The rows as a memory-mapped ``datasets.Dataset``, written in shards of :data:`SHARD_ROWS` rows to
    ``OUT/dataset`` (so a large benchmark never sits in memory) and reused while the data settings are
    unchanged. Under several processes the main one builds it first and the others load it."""
    import contextlib

    folder = Path(settings.out) / "dataset"
    fingerprint = _data_fingerprint(settings)
    stamp = folder / "videoseg_fingerprint.json"
    # local=False: the one main process of all nodes builds it; OUT must be on a filesystem every node
    # sees (as checkpoints need anyway), or two nodes' main processes would write the same folder.
    context = (
        main_process_first(local=False, desc="building the training data") if main_process_first else None
    )
    with context or contextlib.nullcontext():
        if stamp.is_file():
            saved = json.loads(stamp.read_text())
            if saved.get("fingerprint") == fingerprint:
                return _load_shards(folder, saved["shards"])
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        shards: list[str] = []
        chunk: list[dict] = []
        for row in build_rows(settings, profile):
            chunk.append(row)
            if len(chunk) == SHARD_ROWS:
                shards.append(_save_shard(chunk, folder, len(shards)))
                chunk = []
        if chunk:
            shards.append(_save_shard(chunk, folder, len(shards)))
        stamp.write_text(json.dumps({"fingerprint": fingerprint, "shards": shards}))
        return _load_shards(folder, shards)


def _save_shard(rows: list[dict], folder: Path, index: int) -> str:
    from datasets import Dataset, Value

    dataset = Dataset.from_list(rows)
    # columns that may be all None in one shard and numbers in another must share one type
    for name, kind in (("difficulty", "float64"), ("budget", "int64")):
        if name in dataset.column_names:
            dataset = dataset.cast_column(name, Value(kind))
    name = f"shard-{index:05d}"
    dataset.save_to_disk(str(folder / name))
    return name


def _load_shards(folder: Path, shards: Sequence[str]) -> Any:
    from datasets import concatenate_datasets, load_from_disk

    parts = [load_from_disk(str(folder / name)) for name in shards]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _data_fingerprint(settings: TrainSettings) -> str:
    keys = (
        "data", "layout", "split", "fps", "profile", "rater", "difficulty_file", "max_examples",
        "num_key_frames", "num_reference_frames", "shapes_size", "shapes_family",
    )  # fmt: skip
    values = {k: getattr(settings, k) for k in keys}
    if settings.difficulty_file and Path(settings.difficulty_file).is_file():
        values["difficulty_file_mtime"] = Path(settings.difficulty_file).stat().st_mtime
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- rewards, metrics


def reward_funcs(kind: str, tokenizer: Any = None) -> tuple[list[Any], list[float]]:
    """The TRL reward callables of one reward kind and their weights: one function per term (each its
    own logged curve, weight 1, so TRL's sum is the kind's official total) plus, for the kinds with a
    soft length factor, a ``length_factor`` curve of weight 0 (logged, never optimised). The
    tokenizer counts reasoning tokens for the paper's length factor (:mod:`videoseg.training.rewards`)."""
    from videoseg.training import rewards

    if kind not in REWARD_KINDS:
        raise TrainingError(f"unknown reward {kind!r}; known: {', '.join(REWARD_KINDS)}")
    funcs = rewards.trl_reward_funcs(kind, tokenizer=tokenizer, log_length_factor=True)
    return list(funcs), list(rewards.trl_reward_weights(kind, log_length_factor=True))


def metrics_record(logs: Mapping[str, Any], step: int) -> dict[str, Any] | None:
    """One TRL log dict -> our metrics.jsonl line; None for logs that are not a training step (the
    end-of-training summary)."""
    if "loss" not in logs or "train_runtime" in logs:
        return None
    terms = {}
    length_factor = None
    for key, value in logs.items():
        m = re.fullmatch(r"rewards/(.+)/mean", key)
        if not m:
            continue
        if m.group(1) == LENGTH_FACTOR_CURVE:
            length_factor = float(value)
        else:
            terms[m.group(1)] = float(value)
    record = {
        "step": int(step),
        "loss": _num(logs.get("loss")),
        "reward": _num(logs.get("reward")),
        "reward_std": _num(logs.get("reward_std")),
        "terms": terms,
        "length_factor": length_factor,
        "completion_tokens": _num(logs.get("completions/mean_length")),
        "completion_tokens_max": _num(logs.get("completions/max_length")),
        "clipped_ratio": _num(logs.get("completions/clipped_ratio")),
        "num_tokens": _num(logs.get("num_tokens")),
        "kl": _num(logs.get("kl")),
        "entropy": _num(logs.get("entropy")),
        "grad_norm": _num(logs.get("grad_norm")),
        "learning_rate": _num(logs.get("learning_rate")),
        "step_time": _num(logs.get("step_time")),
        "epoch": _num(logs.get("epoch")),
    }
    return record


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def metrics_callback(path: Path) -> Any:
    """A TrainerCallback writing :func:`metrics_record` lines to ``path`` on the main process."""
    from transformers import TrainerCallback

    class MetricsLog(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("")  # a new run replaces the earlier run's curve

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            record = metrics_record(logs, state.global_step)
            if record is not None:
                with path.open("a") as fh:
                    fh.write(json.dumps(record) + "\n")

    return MetricsLog()


# --------------------------------------------------------------------------- policy


def load_policy(model_id: str, dtype: Any) -> tuple[Any, Any]:
    """Model + processor by hub id or folder (the path inference loads from), vision tower frozen."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(model_id, padding_side="left")
        model = AutoModelForImageTextToText.from_pretrained(model_id, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot load --model {model_id}: {exc}") from exc
    frozen = 0
    for name, param in model.named_parameters():
        # the paper trains the language model only
        if ".visual." in f".{name}":
            param.requires_grad_(False)
            frozen += 1
    if frozen == 0:
        raise TrainingError(f"--model {model_id} has no vision tower named 'visual': not a Qwen2.5-VL model?")
    return model, processor


def check_images_fit(dataset: Any, processor: Any) -> None:
    """Refuse data whose images the processor would resize: the target image's pixel size is written
    in the prompt and the answers are in its pixels, so a silent resize would train wrong coordinates."""
    from videoseg.reasoning.qwen import smart_resize

    image_proc = processor.image_processor
    factor = int(image_proc.patch_size) * int(image_proc.merge_size)
    size = getattr(image_proc, "size", None) or {}
    get = size.get if isinstance(size, dict) else (lambda k, d=None: getattr(size, k, d))
    lo = int(get("shortest_edge") or getattr(image_proc, "min_pixels", None) or 56 * 56)
    hi = int(get("longest_edge") or getattr(image_proc, "max_pixels", None) or 28 * 28 * 1280)
    row = dataset[0]
    for i, image in enumerate(row["images"]):
        w, h = image.size
        rh, rw = smart_resize(h, w, factor, lo, hi)
        if (rw, rh) != (w, h):
            raise TrainingError(
                f"the processor would resize image {i} of {row['key']} from {w}x{h} to {rw}x{rh} (its pixel "
                f"limits are {lo}..{hi}); the answer coordinates would no longer match. Use a profile / "
                "frame size inside the limits or raise the processor's max_pixels."
            )


def lora_config(settings: TrainSettings) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )


def grpo_config(settings: TrainSettings, on_cuda: bool) -> Any:
    """GRPOConfig = TRL defaults <- :data:`RECIPE_DEFAULTS` <- our settings <- the recipe's grpo: section."""
    from trl import GRPOConfig

    values: dict[str, Any] = dict(RECIPE_DEFAULTS)
    values.update(
        output_dir=str(Path(settings.out) / "checkpoints"),
        max_steps=settings.max_steps,
        num_generations=settings.num_generations,
        # one prompt group per device and micro-step unless the recipe says otherwise
        per_device_train_batch_size=settings.num_generations,
        seed=settings.seed,
        use_cpu=not on_cuda,
        bf16=on_cuda,
    )
    values.update(settings.grpo)
    values.setdefault("max_completion_length", None)
    if values["max_completion_length"] is None:
        values["max_completion_length"] = get_model_profile(settings.profile).max_new_tokens
    try:
        return GRPOConfig(**values)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"GRPO settings: {exc}") from exc


# --------------------------------------------------------------------------- train, merge


def train(settings: TrainSettings, log: Callable[[str], None] = print) -> Path:
    """Run GRPO as ``settings`` say; returns ``OUT/final``. Raises :class:`TrainingError` for bad
    input (before any training step where it can be known)."""
    import torch
    from trl import GRPOTrainer

    settings.check()
    out = Path(settings.out)
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} is a file")
    out.mkdir(parents=True, exist_ok=True)
    on_cuda = settings.device.startswith("cuda") or (settings.device == "auto" and torch.cuda.is_available())
    try:
        args = grpo_config(settings, on_cuda)
        profile = get_model_profile(settings.profile)
        dataset = build_dataset(settings, profile, args.main_process_first)
        model, processor = load_policy(settings.model, torch.bfloat16 if on_cuda else torch.float32)
        check_images_fit(dataset, processor)
        funcs, weights = reward_funcs(settings.reward, getattr(processor, "tokenizer", None))
        names = [f.__name__ for f in funcs]
        if args.reward_weights is not None:  # the recipe weighs the terms; the logged factor stays at 0
            given = list(args.reward_weights)
            terms = [n for n in names if n != LENGTH_FACTOR_CURVE]
            if len(given) != len(terms):
                raise TrainingError(
                    f"the recipe gives {len(given)} reward_weights for the {len(terms)} terms of "
                    f"{settings.reward!r}: {terms}"
                )
            weights = [given.pop(0) if n != LENGTH_FACTOR_CURVE else 0.0 for n in names]
        args.reward_weights = weights
        try:
            trainer = GRPOTrainer(
                model=model,
                reward_funcs=funcs,
                args=args,
                train_dataset=dataset,
                processing_class=processor,
                peft_config=lora_config(settings) if settings.lora else None,
                callbacks=[metrics_callback(out / "metrics.jsonl")],
            )
        except ValueError as exc:  # TRL's checks of batch sizes against the group size, ...
            raise TrainingError(f"GRPO settings: {exc}") from exc
        log(
            f"training {settings.model} on {len(dataset)} example(s), reward {settings.reward}, "
            f"{settings.num_generations} completions per prompt, {settings.max_steps} step(s)"
            + (", LoRA" if settings.lora else "")
        )
        trainer.train()
        final = out / "final"
        if settings.lora:
            trainer.save_model(str(out / "adapter"))
            trainer.accelerator.wait_for_everyone()
            if trainer.accelerator.is_main_process and settings.merge:
                merge_lora(out / "adapter", final, base=settings.model)
        else:
            trainer.save_model(str(final))
        if trainer.accelerator.is_main_process and final.is_dir():
            (final / "videoseg_training.json").write_text(
                json.dumps(
                    {"profile": settings.profile, "reward": settings.reward, "settings": asdict(settings)},
                    indent=2,
                    default=str,
                )
            )
            log(
                f"wrote {final} (use: python -m videoseg run VIDEO QUERY --vlm {final} --profile {settings.profile})"
            )
        trainer.accelerator.wait_for_everyone()
        return final
    finally:
        close_distributed()


def merge_lora(adapter: str | Path, out: str | Path, base: str | None = None) -> Path:
    """Merge a LoRA adapter into its base model and save model + processor to ``out`` (a plain
    checkpoint that inference loads like any other). ``base`` defaults to the adapter's recorded base."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    adapter, out = Path(adapter), Path(out)
    if not (adapter / "adapter_config.json").is_file():
        raise TrainingError(f"{adapter} holds no LoRA adapter (adapter_config.json)")
    base = base or PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path
    if not base:
        raise TrainingError(f"{adapter} does not name its base model: pass --model")
    try:
        model = AutoModelForImageTextToText.from_pretrained(base, dtype="auto")
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        source = adapter if (adapter / "processor_config.json").is_file() else base
        processor = AutoProcessor.from_pretrained(str(source))
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot merge {adapter} into {base}: {exc}") from exc
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    return out


def close_distributed() -> None:
    """End the process group, if one was started (torchrun / accelerate), so the launcher exits cleanly."""
    import torch

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


__all__ = [
    "DEFAULT_PROFILE",
    "LENGTH_FACTOR_CURVE",
    "LORA_TARGETS",
    "RECIPE_DEFAULTS",
    "REWARD_KINDS",
    "TrainSettings",
    "TrainingError",
    "build_dataset",
    "build_rows",
    "grpo_config",
    "load_recipe",
    "make_settings",
    "merge_lora",
    "metrics_record",
    "parse_data",
    "parse_seeds",
    "reward_funcs",
    "train",
]

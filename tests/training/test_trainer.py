"""``python -m videoseg train`` (GRPO on TRL's GRPOTrainer): options, recipes, metrics, and a real
two-process CPU run on a tiny random Qwen2.5-VL whose checkpoint then runs through ``python -m videoseg run``.

The slow tests build the tiny model like :mod:`tests.support.tiny_models` does, train it with
``torchrun --nproc_per_node 2`` (gloo), and check that the reward terms reach the trainer (they are in
metrics.jsonl and their spread gives a non-zero gradient), that the language model's weights change
while the frozen vision tower's do not, and that ``OUT/final`` loads through the inference path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from videoseg.cli.main import main
from videoseg.training.rewards import TRL_TERMS
from videoseg.training.trainer import (
    LENGTH_FACTOR_CURVE,
    TrainingError,
    load_recipe,
    make_settings,
    metrics_record,
    parse_data,
    parse_seeds,
)

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- options and recipes


def test_parse_seeds() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5, 1-2,5") == [5, 1, 2]
    for bad in ("", "a", "3-1", "1-"):
        with pytest.raises(TrainingError):
            parse_seeds(bad)


def test_parse_data(tmp_path: Path) -> None:
    assert parse_data("shapes:0-1", None) == ("shapes", [0, 1])
    assert parse_data(str(tmp_path), "mevis") == ("mevis", tmp_path)
    with pytest.raises(TrainingError, match="needs --layout"):
        parse_data(str(tmp_path), None)
    with pytest.raises(TrainingError, match="unknown --layout"):
        parse_data(str(tmp_path), "davis")
    with pytest.raises(TrainingError, match="neither"):
        parse_data(str(tmp_path / "missing"), "mevis")


def test_recipe_then_options(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: some/model\ndata: shapes:0-3\nout: o\nmax-steps: 5\nlora: true\nshapes_size: 160x120\n"
        "grpo:\n  learning_rate: 2.0e-6\n"
    )
    values = load_recipe(recipe)
    settings = make_settings(values, max_steps=7, reward=None)
    assert (settings.max_steps, settings.lora, settings.shapes_size) == (7, True, (160, 120))
    assert settings.grpo == {"learning_rate": 2e-6} and settings.reward == "videoseg-r1"
    recipe.write_text("modle: x\n")
    with pytest.raises(TrainingError, match="unknown key"):
        load_recipe(recipe)
    with pytest.raises(TrainingError, match="GRPOConfig field"):
        make_settings(values, grpo={"learnig_rate": 1})
    with pytest.raises(TrainingError, match="at least 2"):
        make_settings(values, num_generations=1)


def test_every_recipe_in_the_repository_reads() -> None:
    recipes = sorted((REPO / "recipes").glob("*.yaml"))
    assert len(recipes) >= 4
    for path in recipes:
        values = load_recipe(path)
        make_settings(values, model="o/m", data="shapes:0", out="o")  # checks every GRPOConfig key
    for path in sorted((REPO / "recipes" / "accelerate").glob("*.yaml")):
        assert yaml.safe_load(path.read_text())["num_processes"] >= 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "shapes:0"], "no model"),
        (["--model", "m", "--data", "shapes:0"], "not a hub id"),
        (["--model", "o/m", "--data", "shapes:3-1"], "runs backwards"),
        (["--model", "o/m", "--data", "/nowhere", "--layout", "mevis"], "neither"),
        (["--model", "o/m", "--data", "shapes:0", "--max-steps", "0"], "at least 1"),
        (["--merge-lora", "/nowhere"], "needs --out"),
    ],
)
def test_bad_options_give_one_error_line(argv, message, tmp_path, capsys) -> None:
    out = [] if "--merge-lora" in argv else ["--out", str(tmp_path / "o")]
    assert main(["train", *argv, *out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_merge_refuses_a_folder_without_adapter(tmp_path, capsys) -> None:
    assert main(["train", "--merge-lora", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "no LoRA adapter" in capsys.readouterr().err


def test_metrics_record_maps_trl_logs() -> None:
    logs = {
        "loss": 0.5,
        "reward": 2.0,
        "rewards/accuracy/mean": 1.5,
        "rewards/accuracy/std": 0.1,
        "rewards/non_repeat/mean": 0.5,
        f"rewards/{LENGTH_FACTOR_CURVE}/mean": 0.9,
        "completions/mean_length": 40.0,
        "num_tokens": 1000.0,
        "kl": float("nan"),
    }
    record = metrics_record(logs, 3)
    assert record["step"] == 3 and record["loss"] == 0.5 and record["reward"] == 2.0
    assert record["terms"] == {"accuracy": 1.5, "non_repeat": 0.5}
    assert record["length_factor"] == 0.9 and record["completion_tokens"] == 40.0 and record["kl"] is None
    assert metrics_record({"train_runtime": 1.0, "train_loss": 0.1}, 3) is None


def test_dataset_is_written_in_shards_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.training.test_training_data import FakeProfile
    from videoseg.training import trainer

    monkeypatch.setattr(trainer, "SHARD_ROWS", 2)
    settings = make_settings(
        None, model="o/m", data="shapes:3", out=str(tmp_path), shapes_size=(128, 96), max_examples=3,
        num_key_frames=2, num_reference_frames=1,
    )  # fmt: skip
    dataset = trainer.build_dataset(settings, FakeProfile())
    assert len(dataset) == 3 and dataset[2]["key"].startswith("shapes:3/")
    assert sorted(p.name for p in (tmp_path / "dataset").glob("shard-*")) == ["shard-00000", "shard-00001"]
    # the shapes world rates its own difficulty; the budget follows from D (PixelThink levels)
    assert all(1 <= d <= 10 for d in dataset["difficulty"])
    stamp = tmp_path / "dataset" / "videoseg_fingerprint.json"
    first = stamp.stat().st_mtime_ns
    assert len(trainer.build_dataset(settings, FakeProfile())) == 3 and stamp.stat().st_mtime_ns == first
    settings.max_examples = 1  # other data settings: rebuilt
    assert len(trainer.build_dataset(settings, FakeProfile())) == 1


# --------------------------------------------------------------------------- real runs (slow)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tests.support.tiny_models import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("trainer") / "tiny-qwen")


def _restricted_generation(model_dir: Path) -> dict:
    """generation_kwargs that let the random policy write only 'a', '.' and ' ': its completions then
    differ in how often a sentence repeats, so the non-repetition term (and the reward) differs within a
    group and GRPO has a non-zero advantage to learn from. (Unrestricted, a random model's output earns
    the same reward everywhere and the gradient is exactly zero.)"""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    keep = {tok.convert_tokens_to_ids(t) for t in ("a", ".", "Ġ")}
    return {"suppress_tokens": [i for i in range(len(tok)) if i not in keep]}


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("SPACES_ZERO_GPU", None)
    return env


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_the_training_profile_lays_frames_out_as_images() -> None:
    """TRL's GRPOTrainer passes an image list per prompt (no videos), and training must prompt exactly
    as inference does (issue #13: "the key segment, reference frames and target frame go in as an image
    list, laid out by the videoseg-r1 profile"), so the videoseg-r1 profile may hold no video item."""
    from videoseg.core.interfaces import Clip, ReasonRequest
    from videoseg.reasoning.profiles import get_profile

    frames = np.zeros((3, 96, 128, 3), dtype=np.uint8)
    request = ReasonRequest(
        query="the red diamond",
        key_clip=Clip(frames=frames, frame_indices=[0, 1, 2], fps=10.0, window=(0, 2)),
        target_frame=frames[1],
        target_index=1,
        reference_clip=Clip(frames=frames[:2], frame_indices=[0, 2], fps=10.0, window=(0, 2)),
    )
    kinds = [
        item["type"] for m in get_profile("videoseg-r1").reason_messages(request) for item in m["content"]
    ]
    assert "video" not in kinds, (
        "videoseg-r1 shows the key segment as a video: the GRPO trainer cannot train it"
    )
    assert kinds.count("image") == 3 + 2 + 1  # key frames, reference frames, target frame


@pytest.mark.slow
def test_two_process_grpo_run_trains_and_the_checkpoint_runs(tiny_model: Path, tmp_path: Path) -> None:
    recipe = {
        "data": "shapes:3",
        "shapes_size": "128x96",  # within the tiny processor's pixel limits: no resize, exact answer space
        "max_examples": 2,
        "num_key_frames": 2,
        "num_reference_frames": 1,
        "num_generations": 8,
        "max_steps": 2,
        "reward": "videoseg-r1",
        "grpo": {
            "max_completion_length": 20,
            "per_device_train_batch_size": 4,  # 2 processes x 4 = one group of 8 per step
            "gradient_checkpointing": False,
            # no KL and no weight decay: any weight change must come from the reward's advantages
            "beta": 0.0,
            "weight_decay": 0.0,
            "learning_rate": 0.01,
            "generation_kwargs": _restricted_generation(tiny_model),
        },
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "videoseg", "train",
        "--config", str(tmp_path / "recipe.yaml"), "--model", str(tiny_model), "--out", str(out),
        "--device", "cpu",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]

    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2]  # one line per step, written once (main process)
    for r in lines:
        assert set(r["terms"]) == set(TRL_TERMS["videoseg-r1"])  # every term of the reward, own curve
        assert r["length_factor"] is not None and r["completion_tokens"] == 20.0 and r["loss"] is not None
    # the reward differed within the group, so the policy got a gradient from it
    assert any(r["reward_std"] > 0 and r["grad_norm"] > 0 for r in lines)

    final = out / "final"
    before, after = _weights(tiny_model), _weights(final)
    assert before.keys() == after.keys()
    changed = {k for k in before if not (before[k] == after[k]).all()}
    # checkpoint names: language model "model.layers.*" / "lm_head.*", vision tower "visual.*"
    assert any(k.startswith("model.layers.") for k in changed)
    assert not any(k.startswith("visual.") for k in changed)  # the vision tower is frozen
    assert (final / "processor_config.json").is_file() or (final / "preprocessor_config.json").is_file()
    assert json.loads((final / "videoseg_training.json").read_text())["profile"] == "videoseg-r1"

    # the checkpoint runs through the inference CLI (random weights: it may find no target)
    from videoseg.shapes import generate

    generate(3, size=(128, 96)).save(tmp_path / "clip")
    trace = tmp_path / "run.jsonl"
    run = [
        sys.executable, "-m", "videoseg", "run", str(tmp_path / "clip" / "video.mp4"), "the red diamond",
        "--vlm", str(final), "--profile", "videoseg-r1", "--device", "cpu", "--out", str(tmp_path / "run"),
        "--trace", str(trace), "--quiet",
    ]  # fmt: skip
    done = subprocess.run(run, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-4000:]
    events = [json.loads(x) for x in trace.read_text().splitlines()]
    reasoner = [e for e in events if e.get("for_stage") == "reasoner" and "model_id" in e]
    assert reasoner and reasoner[0]["model_id"] == str(final)
    assert (
        any(e.get("type", e.get("kind")) in ("RunFinished", "run_finished") for e in events)
        or (tmp_path / "run" / "cues.json").is_file()
    )


@pytest.mark.slow
def test_lora_run_writes_the_adapter_and_a_merged_checkpoint(tiny_model: Path, tmp_path: Path) -> None:
    recipe = {
        "data": "shapes:3",
        "shapes_size": "128x96",
        "max_examples": 1,
        "num_key_frames": 1,
        "num_reference_frames": 0,
        "num_generations": 4,
        "max_steps": 1,
        "lora": True,
        "lora_r": 4,
        "grpo": {
            "max_completion_length": 16,
            "per_device_train_batch_size": 4,
            "gradient_checkpointing": False,
            "beta": 0.0,
            "learning_rate": 0.05,
            "generation_kwargs": _restricted_generation(tiny_model),
        },
    }
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "videoseg", "train", "--config", str(tmp_path / "recipe.yaml"),
        "--model", str(tiny_model), "--out", str(out), "--device", "cpu",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (out / "adapter" / "adapter_config.json").is_file()
    merged = _weights(out / "final")
    assert not any("lora" in k for k in merged)  # a plain checkpoint
    assert merged.keys() == _weights(tiny_model).keys()
    # merging again by hand gives the same weights
    assert main(["train", "--merge-lora", str(out / "adapter"), "--out", str(tmp_path / "again")]) == 0
    again = _weights(tmp_path / "again")
    assert all((again[k] == merged[k]).all() for k in merged)

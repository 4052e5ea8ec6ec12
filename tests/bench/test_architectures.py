"""The offline full-size architectures behind ``bench/bench_models.py --random-weights``.

A lent GPU machine reaches no model hub, so the bench builds Qwen2.5-VL 3B / 7B and SAM2.1 from the
numbers in ``bench/architectures.py``. These tests pin those numbers to the published parameter
counts and to the official ``sam2`` package's own build, check the stand-in processor keeps the real
token ids and vision-token counts, and run the bench's random-weights path end to end with no hub.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import architectures as arch
from videoseg.runtime import loading as models

# Parameter counts of the released checkpoints (model cards: "3.75B" / "8.29B"; the exact totals are
# those of the safetensors shards).
QWEN_PARAMS = {"3B": 3_754_622_976, "7B": 8_292_166_656}
OFFICIAL_SAM2_YAML = {
    "tiny": "sam2.1_hiera_t",
    "small": "sam2.1_hiera_s",
    "base-plus": "sam2.1_hiera_b+",
    "large": "sam2.1_hiera_l",
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta_build(cls: type, config: object) -> torch.nn.Module:
    with torch.device("meta"):
        return cls._from_config(config)


@pytest.mark.parametrize("size", sorted(arch.QWEN_SIZES))
def test_qwen_architecture_has_the_released_parameter_count(size: str) -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = _meta_build(Qwen2_5_VLForConditionalGeneration, arch.qwen_config(size))
    assert _count(model) == QWEN_PARAMS[size]
    assert _count(model) == pytest.approx(arch.QWEN_SIZES[size].params, rel=2e-3)
    text = model.config.text_config
    assert text.hidden_size // text.num_attention_heads == 2 * sum(text.rope_parameters["mrope_section"])


@pytest.mark.parametrize("size", sorted(arch.SAM2_SIZES))
def test_sam2_architecture_matches_the_official_build(size: str) -> None:
    """transformers' SAM2 video model (image encoder + prompt/mask decoders + memory) built from our
    numbers has exactly the parameters of the official package's model built from its own yaml."""
    from sam2.build_sam import build_sam2
    from transformers import Sam2Model, Sam2VideoModel

    official = build_sam2(f"configs/sam2.1/{OFFICIAL_SAM2_YAML[size]}.yaml", ckpt_path=None, device="cpu")
    ours = _meta_build(Sam2VideoModel, arch.sam2_config(size, video=True))
    assert _count(ours) == _count(official)
    assert _count(ours) == pytest.approx(arch.SAM2_SIZES[size].params, rel=2e-3)
    image = _meta_build(Sam2Model, arch.sam2_config(size))
    encoder = _count(image.vision_encoder.backbone)
    assert encoder == _count(official.image_encoder.trunk)


def test_every_known_id_maps_to_a_size() -> None:
    for model_id, size in arch.QWEN_IDS.items():
        assert size in arch.QWEN_SIZES and arch.known(model_id)
    for model_id, size in arch.SAM2_IDS.items():
        assert size in arch.SAM2_SIZES and arch.known(model_id)
    assert arch.known("facebook/sam2.1-hiera-large")
    assert not arch.known("Qwen/Qwen2.5-VL-72B-Instruct")


def test_qwen_processor_keeps_real_ids_and_vision_token_counts() -> None:
    processor = arch.qwen_processor()
    tok = processor.tokenizer
    # tokenizer_config.json of Qwen2.5-VL: these ids are what config.json's token ids refer to.
    real = {"<|endoftext|>": 151643, "<|im_end|>": 151645, "<|vision_start|>": 151652}
    real |= {"<|image_pad|>": 151655, "<|video_pad|>": 151656, "<|file_sep|>": 151664}
    assert {t: tok.convert_tokens_to_ids(t) for t in real} == real
    assert len(tok) == 151_665
    config = arch.qwen_config("7B")
    assert (config.image_token_id, config.video_token_id) == (151655, 151656)
    assert tok.decode([0, 151_000, 151_642, 151_645], skip_special_tokens=True) is not None

    messages = [
        {"role": "user", "content": [{"type": "video"}, {"type": "image"}, {"type": "text", "text": "hi"}]}
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    video = np.zeros((16, 448, 448, 3), dtype=np.uint8)
    image = np.zeros((448, 448, 3), dtype=np.uint8)
    inputs = processor(text=[text], images=[image], videos=[video], return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    # 448 px = 32 patches of 14 px, merged 2x2 -> 16 x 16 = 256 tokens per image / per frame pair.
    assert ids.count(151655) == 256
    assert ids.count(151656) == 8 * 256


@pytest.mark.slow
def test_bench_random_weights_runs_without_a_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bench's --random-weights path on the paper's ids, hub calls forbidden: a shrunk Qwen (real
    vocabulary and token ids, 1 layer) and the real SAM2.1-tiny architecture, all stages timed."""
    import transformers

    from bench import bench_models

    def no_hub(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model hub was asked for")

    assert bench_models.architectures is arch  # the shrinking below must reach the bench
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_hub)
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", no_hub)
    monkeypatch.setitem(arch.QWEN_SIZES, "3B", arch.QwenSize(256, 256, 1, 2, 1, 151_936, True, 0.0))
    shrunk_vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2}
    monkeypatch.setattr(
        arch, "QWEN_VISION", {**arch.QWEN_VISION, **shrunk_vision, "fullatt_block_indexes": [1]}
    )
    out = tmp_path / "rows.json"
    try:
        code = bench_models.main(
            [
                "--random-weights",
                "--vlm",
                "Qwen/Qwen2.5-VL-3B-Instruct",
                "--sam2",
                "facebook/sam2.1-hiera-tiny",
                "--device",
                "cpu",
                "--frames",
                "3",
                "--size",
                "96x64",
                "--max-new-tokens",
                "4",
                "--json",
                str(out),
            ]
        )
        cached = {key[:2] for key in models.cached_keys()}
        qwen = models.cached_model(
            "qwen2.5-vl", "Qwen/Qwen2.5-VL-3B-Instruct", torch.device("cpu"), torch.float32, no_hub
        )
        assert _count(qwen[0].model.language_model) < 50_000_000  # the shrunk one, not 3B
    finally:
        models.clear_cache()  # the shrunk model sits under a real id: keep it from other tests
    assert code == 0
    assert ("qwen2.5-vl", "Qwen/Qwen2.5-VL-3B-Instruct") in cached
    assert ("sam2-video", "facebook/sam2.1-hiera-tiny") in cached
    rows = json.loads(out.read_text())["rows"]
    stages = [row["stage"] for row in rows]
    for name in (
        "interval K=5 (3 fr)",
        "reason (streamed)",
        "sam2 segment",
        "sam2-video (2 fr)",
        "xmem (2 fr)",
    ):
        assert name in stages
    interval = next(row for row in rows if row["stage"] == "interval K=5 (3 fr)")
    assert interval["num_sequences"] == 5 and 0 < interval["vision_tokens"] < interval["prompt_tokens"]
    reason = next(row for row in rows if row["stage"] == "reason (streamed)")
    assert reason["new_tokens"] == [4] and reason["truncated"] == 1  # random weights run to the cap
    printed = capsys.readouterr().out
    assert "vlm architecture from bench/architectures.py" in printed
    assert "one query (1 level(s) of K=5 in one call each, M=5 in one call" in printed


def test_per_query_sum_weights_each_stage() -> None:
    from bench import bench_models
    from videoseg.core.config import PipelineConfig

    seconds = {"interval": 1.0, "percentage": 2.0, "difficulty": 4.0, "reason": 8.0, "segment": 16.0}
    config = PipelineConfig(num_interval_answers=3, num_percent_answers=2, propagator="xmem")
    assert bench_models.per_query_seconds(seconds, config, levels=2) is None  # no propagation measured
    seconds["propagate-xmem"] = 32.0
    # one generate per level (K answers each) and one for the M percentages
    assert bench_models.per_query_seconds(seconds, config, levels=2) == 2 * 1 + 2 + 4 + 8 + 16 + 32
    no_rating = config.replace(rate_difficulty=False)
    assert bench_models.per_query_seconds(seconds, no_rating, levels=1) == 1 + 2 + 8 + 16 + 32

"""The paper's full-size model architectures, described here so they can be built with no model hub.

``bench/bench_models.py --random-weights`` measures per-stage time and memory of the real-size
Qwen2.5-VL and SAM2 models with random weights (random weights cost the same as trained ones). A lent
GPU machine reaches no network, so neither the weights nor the ``config.json`` / processor files can be
fetched there: this module writes them instead, from the published configurations of each checkpoint:

- Qwen2.5-VL 3B and 7B (``config.json`` / ``preprocessor_config.json`` of the Qwen hub repositories;
  VisionReasoner-7B and Seg-Zero-7B are fine-tuned 7B models with the 7B architecture);
- SAM2.1 tiny / small / base-plus / large (the Hiera settings of the official ``sam2.1_hiera_*.yaml``
  configs; the transformers configs carry the same numbers under other names).

The architectures are checked against the published parameter counts in ``tests/bench/test_architectures.py``
(3.75 B, 8.29 B, 38.9 M ... 224.4 M) and the official ``sam2`` package's own build, so a wrong number
here fails a test.

What cannot be rebuilt is Qwen's 151,643-entry BPE vocabulary. The tokenizer written here has the real
vocabulary *size* and the real ids of every special token (so the chat template, vision placeholders,
end-of-turn and the language-model head cost what they do), but encodes text byte by byte: prompts come
out about 3-4 times more text tokens than with the real merges. Vision tokens, which dominate every
prompt with frames, are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

QWEN_VOCAB_ENTRIES = 151_643  # ordinary (BPE) tokens of the Qwen2 tokenizer; specials follow
# Special tokens of Qwen2.5 in id order from 151643 (tokenizer_config.json of the hub repositories).
QWEN_SPECIALS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)

# A chat template with the structure of Qwen2.5-VL's: a default system turn, images and videos as
# vision-start / pad / vision-end, the assistant turn opened by add_generation_prompt.
QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class QwenSize:
    """The numbers that differ between Qwen2.5-VL sizes (the vision tower is shared)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    tie_embeddings: bool
    params: float  # published total parameter count, for the tests


QWEN_SIZES = {
    "3B": QwenSize(2048, 11008, 36, 16, 2, 151_936, True, 3.75e9),
    "7B": QwenSize(3584, 18944, 28, 28, 4, 152_064, False, 8.29e9),
}
# The vision tower, the same in every size (its output width is the language model's).
QWEN_VISION: dict[str, Any] = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "hidden_act": "silu",
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
}
QWEN_IDS = {
    "Qwen/Qwen2.5-VL-3B-Instruct": "3B",
    "Qwen/Qwen2.5-VL-7B-Instruct": "7B",
    "Ricky06662/VisionReasoner-7B": "7B",
    "Ricky06662/Seg-Zero-7B": "7B",
}


@dataclass(frozen=True)
class HieraSize:
    """Hiera image-encoder settings of one SAM2.1 size (official yaml names in the comments)."""

    embed_dim: int  # embed_dim
    heads: int  # num_heads
    stages: tuple[int, int, int, int]  # stages
    global_blocks: tuple[int, ...]  # global_att_blocks
    window_pos: tuple[int, int]  # window_pos_embed_bkg_spatial_size
    window_spec: tuple[int, int, int, int]  # window_spec
    params: float  # published parameter count (SAM2.1 model table), for the tests


SAM2_SIZES = {
    "tiny": HieraSize(96, 1, (1, 2, 7, 2), (5, 7, 9), (7, 7), (8, 4, 14, 7), 38.9e6),
    "small": HieraSize(96, 1, (1, 2, 11, 2), (7, 10, 13), (7, 7), (8, 4, 14, 7), 46e6),
    "base-plus": HieraSize(112, 2, (2, 3, 16, 3), (12, 16, 20), (14, 14), (8, 4, 14, 7), 80.8e6),
    "large": HieraSize(144, 2, (2, 6, 36, 4), (23, 33, 43), (7, 7), (8, 4, 16, 8), 224.4e6),
}
SAM2_IDS = {
    f"facebook/{family}-hiera-{size}": size
    for family in ("sam2", "sam2.1")
    for size in ("tiny", "small", "base-plus", "large")
}


def known(model_id: str) -> bool:
    """Whether ``model_id`` is one of the hub ids this module can describe."""
    return model_id in QWEN_IDS or model_id in SAM2_IDS


# --------------------------------------------------------------------------- Qwen2.5-VL


def qwen_config(size: str) -> Any:
    """The ``Qwen2_5_VLConfig`` of Qwen2.5-VL ``size`` ("3B" or "7B")."""
    from transformers import Qwen2_5_VLConfig

    s = QWEN_SIZES[size]
    ids = {tok: QWEN_VOCAB_ENTRIES + i for i, tok in enumerate(QWEN_SPECIALS)}
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": s.vocab,
            "hidden_size": s.hidden,
            "intermediate_size": s.intermediate,
            "num_hidden_layers": s.layers,
            "num_attention_heads": s.heads,
            "num_key_value_heads": s.kv_heads,
            "max_position_embeddings": 128_000,
            "rms_norm_eps": 1e-6,
            "hidden_act": "silu",
            "use_sliding_window": False,
            "sliding_window": 32_768,
            "max_window_layers": 70,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
            "tie_word_embeddings": s.tie_embeddings,
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={**QWEN_VISION, "out_hidden_size": s.hidden},
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=s.tie_embeddings,
    )


def qwen_processor() -> Any:
    """A ``Qwen2_5_VLProcessor`` with the real pixel limits, special-token ids and vocabulary size."""
    import tokenizers
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2Tokenizer,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )
    from transformers.tokenization_utils_base import AddedToken

    alphabet = sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    vocab = {sym: i for i, sym in enumerate(alphabet)}
    # Fill the ordinary range up to the real size; no merges ever produce these, but ids decode.
    vocab.update({f"<|bench_{i}|>": i for i in range(len(alphabet), QWEN_VOCAB_ENTRIES)})
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[])
    tokenizer.add_tokens([AddedToken(tok, special=True) for tok in QWEN_SPECIALS], special_tokens=True)
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    limits = {"min_pixels": 56 * 56, "max_pixels": 28 * 28 * 16384}  # preprocessor_config.json
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**limits),
        video_processor=Qwen2VLVideoProcessor(**limits),
        tokenizer=tokenizer,
        chat_template=QWEN_CHAT_TEMPLATE,
    )


def qwen_generation_defaults(model: Any) -> None:
    """The checkpoints' generation_config.json: near-greedy sampling, two end tokens."""
    gen = model.generation_config
    end = QWEN_VOCAB_ENTRIES + QWEN_SPECIALS.index("<|im_end|>")
    gen.bos_token_id = gen.pad_token_id = QWEN_VOCAB_ENTRIES
    gen.eos_token_id = [end, QWEN_VOCAB_ENTRIES]
    gen.do_sample, gen.temperature, gen.top_k, gen.top_p = True, 0.1, 1, 0.001
    gen.repetition_penalty = 1.05


# --------------------------------------------------------------------------- SAM2


def _sam2_parts(size: str) -> dict[str, Any]:
    h = SAM2_SIZES[size]
    dims = [h.embed_dim * 2**i for i in range(4)]
    backbone = {
        "model_type": "sam2_hiera_det_model",
        "hidden_size": h.embed_dim,
        "num_attention_heads": h.heads,
        "blocks_per_stage": list(h.stages),
        "embed_dim_per_stage": dims,
        "num_attention_heads_per_stage": [h.heads * 2**i for i in range(4)],
        "window_size_per_stage": list(h.window_spec),
        "global_attention_blocks": list(h.global_blocks),
        "window_positional_embedding_background_size": list(h.window_pos),
    }
    return {"vision_config": {"backbone_config": backbone, "backbone_channel_list": dims[::-1]}}


def sam2_config(size: str, video: bool = False) -> Any:
    """``Sam2Config`` (image) or ``Sam2VideoConfig`` of SAM2.1 ``size``; the rest are SAM2 defaults."""
    from transformers import Sam2Config, Sam2VideoConfig

    return (Sam2VideoConfig if video else Sam2Config)(**_sam2_parts(size))


def sam2_processor(video: bool = False) -> Any:
    """SAM2's processor as the hub repositories ship it: 1024 x 1024 input, 256 x 256 low-res masks."""
    from transformers import Sam2ImageProcessor, Sam2Processor, Sam2VideoProcessor, Sam2VideoVideoProcessor

    image = Sam2ImageProcessor(size={"height": 1024, "width": 1024}, mask_size={"height": 256, "width": 256})
    if not video:
        return Sam2Processor(image_processor=image, target_size=1024)
    frames = Sam2VideoVideoProcessor(size={"height": 1024, "width": 1024})
    return Sam2VideoProcessor(image_processor=image, video_processor=frames, target_size=1024)


# --------------------------------------------------------------------------- building


def build(model_id: str, kind: str, dtype: Any = None, device: Any = "cpu") -> tuple[Any, Any]:
    """``(model, processor)``: ``model_id``'s architecture with random weights, on ``device`` in ``dtype``.

    ``kind`` is "qwen2.5-vl", "sam2-image" or "sam2-video"; ``model_id`` one of the known hub ids.
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration, Sam2Model, Sam2VideoModel

    if kind == "qwen2.5-vl":
        config, processor = qwen_config(QWEN_IDS[model_id]), qwen_processor()
        cls: Any = Qwen2_5_VLForConditionalGeneration
    elif kind in ("sam2-image", "sam2-video"):
        video = kind == "sam2-video"
        config = sam2_config(SAM2_IDS[model_id], video=video)
        processor = sam2_processor(video)
        cls = Sam2VideoModel if video else Sam2Model
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    with torch.device(device):
        model = cls._from_config(config, dtype=dtype or torch.float32)
    if kind == "qwen2.5-vl":
        qwen_generation_defaults(model)
    return model.eval(), processor

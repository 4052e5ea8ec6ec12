"""A tiny random Qwen3-VL checkpoint, built offline for the qwen3-vl profile's tests.

Same recipe as the tiny Qwen2.5-VL of :mod:`tests.support.tiny_models` (byte-level tokenizer with the
Qwen special tokens, the small chat template, shrunk config saved with ``save_pretrained`` and loaded
back through the real ``from_pretrained`` path), with Qwen3-VL's own parts: ``Qwen3VLProcessor`` with a
``Qwen3VLVideoProcessor`` (it writes a ``<t seconds>`` timestamp before each frame pair), 16-px patches
merged 2 x 2 (32-px factor), a deepstack layer, and interleaved M-RoPE whose sections sum to head_dim/2.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.tiny_models import TINY_CHAT_TEMPLATE, _once, tiny_qwen_tokenizer

TINY_QWEN3_MIN_PIXELS = 32 * 32
TINY_QWEN3_MAX_PIXELS = 128 * 128


def build_tiny_qwen3_vl(path: str | Path, seed: int = 0) -> Path:
    """Save a ~80 k-parameter Qwen3-VL model + processor to ``path`` and return it."""
    from transformers import (
        Qwen2VLImageProcessor,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
    )
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    path = Path(path)
    tokenizer, ids = tiny_qwen_tokenizer()
    vision = {"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2}
    limits = {"shortest_edge": TINY_QWEN3_MIN_PIXELS, "longest_edge": TINY_QWEN3_MAX_PIXELS}
    processor = Qwen3VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=limits, **vision),
        tokenizer=tokenizer,
        video_processor=Qwen3VLVideoProcessor(
            size={**limits, "longest_edge": 8 * TINY_QWEN3_MAX_PIXELS}, **vision
        ),
        chat_template=TINY_CHAT_TEMPLATE,
    )
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 16,  # mrope_section must sum to 8
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [2, 3, 3],
                "mrope_interleaved": True,
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": 32,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_qwen3_vl_dir(tmp_path_factory) -> Path:
    return _once("tiny-qwen3-vl", tmp_path_factory, build_tiny_qwen3_vl)

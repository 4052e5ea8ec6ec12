"""Tiny random EdgeTAM-video and SAM 3 checkpoints, built offline for the beyond-the-paper backends' tests.

Like :mod:`tests.support.tiny_models`, each builder saves a shrunk, random-initialised model and its
processor with ``save_pretrained`` so the tests load them through the very ``from_pretrained`` calls
the hub ids go through.

- EdgeTAM video: ``EdgeTamVideoModel`` with the tiny SAM2 Hiera vision tower of ``tiny_models`` (the
  released EdgeTAM uses a timm RepViT tower, and timm is not a dependency; the tracker code under test,
  memory attention with the 2D spatial perceiver, is EdgeTAM's own) and a ``Sam2VideoProcessor``, as
  the released ``yonigozlan/EdgeTAM-hf`` ships.
- SAM 3: one ``Sam3VideoModel`` checkpoint (detector + tracker + CLIP text encoder) with a
  ``Sam3VideoProcessor`` around a byte-level ``CLIPTokenizer``, as ``facebook/sam3`` is one checkpoint
  that ``Sam3VideoModel`` and ``Sam3TrackerVideoModel`` both load (the tracker's weights are read from
  the ``tracker_model.`` prefix).
  ``Sam3TrackerVideoProcessor`` loads from the same processor config. Detection
  thresholds are 0 so the random detector reports instances and the mask path runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.tiny_models import _once, _tiny_sam2_image_processor, _tiny_sam2_parts

SAM3_SIZE = 224  # 16 x 16 ViT patches of 14 px


def build_tiny_edgetam_video(path: str | Path, seed: int = 0) -> Path:
    """Save a shrunk random ``EdgeTamVideoModel`` + ``Sam2VideoProcessor`` to ``path`` and return it."""
    from transformers import (
        EdgeTamVideoConfig,
        EdgeTamVideoModel,
        Sam2VideoProcessor,
        Sam2VideoVideoProcessor,
    )

    path = Path(path)
    config = EdgeTamVideoConfig(
        **_tiny_sam2_parts(),
        image_size=256,
        num_maskmem=3,  # a short memory, so the pruning tests reach past it in a few frames
        max_object_pointers_in_encoder=4,
        memory_attention_num_layers=1,
        memory_attention_mlp_hidden_size=256,
        memory_attention_rope_feat_sizes=[16, 16],
        # the perceiver's 2D latents form a 4 x 4 grid: the memory keys' RoPE grid must match it
        perceiver_resampler_num_latents=16,
        perceiver_resampler_num_latents_2d=16,
        perceiver_resampler_num_layers=1,
        memory_attention_rope_k_sizes=[4, 4],
        memory_fuser_intermediate_dim=256,
        memory_fuser_num_layers=1,
    )
    torch.manual_seed(seed)
    model = EdgeTamVideoModel(config)
    processor = Sam2VideoProcessor(
        image_processor=_tiny_sam2_image_processor(),
        video_processor=Sam2VideoVideoProcessor(size={"height": 256, "width": 256}),
        target_size=256,
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _tiny_clip_tokenizer():
    """A byte-level CLIP tokenizer without merges: every symbol, with and without CLIP's ``</w>``."""
    import tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for symbol in [*alphabet, *(s + "</w>" for s in alphabet), "<|startoftext|>", "<|endoftext|>"]:
        vocab[symbol] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def build_tiny_sam3(path: str | Path, seed: int = 0) -> Path:
    """Save a shrunk random ``Sam3VideoModel`` (+ SAM 3 video and tracker processors) to ``path``."""
    from transformers import (
        Sam2VideoVideoProcessor,
        Sam3ImageProcessor,
        Sam3VideoConfig,
        Sam3VideoModel,
        Sam3VideoProcessor,
    )

    path = Path(path)
    tokenizer = _tiny_clip_tokenizer()
    vit = {
        "model_type": "sam3_vit_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": SAM3_SIZE,
        "patch_size": 14,
        "window_size": 8,
        "global_attn_indexes": [1],
        "pretrain_image_size": SAM3_SIZE,
    }
    vision = {"model_type": "sam3_vision_model", "backbone_config": vit, "fpn_hidden_size": 256}
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    text = {
        "model_type": "clip_text_model",
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 32,  # the processor pads text prompts to 32 tokens
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|startoftext|>"),
        "eos_token_id": end,
        "pad_token_id": end,
    }
    small = {"num_layers": 1, "num_attention_heads": 2, "intermediate_size": 128}
    detector = {
        "model_type": "sam3",
        "vision_config": vision,
        "text_config": text,
        "geometry_encoder_config": small,
        "detr_encoder_config": small,
        "detr_decoder_config": {**small, "num_queries": 8},
        "mask_decoder_config": {"num_attention_heads": 2},
    }
    tracker = {
        "model_type": "sam3_tracker_video",
        "vision_config": vision,
        "image_size": SAM3_SIZE,
        "num_maskmem": 3,
        "max_object_pointers_in_encoder": 4,
        "memory_attention_num_layers": 1,
        "memory_attention_feed_forward_hidden_size": 256,
        "memory_fuser_intermediate_dim": 256,
        "memory_fuser_num_layers": 1,
    }
    config = Sam3VideoConfig(
        detector_config=detector,
        tracker_config=tracker,
        low_res_mask_size=SAM3_SIZE // 14 * 4,
        # random weights score ~0.5 at best: thresholds of 0 let detections through so masks are made
        score_threshold_detection=0.0,
        new_det_thresh=0.0,
        max_num_objects=3,
    )
    torch.manual_seed(seed)
    model = Sam3VideoModel(config)
    image_processor = Sam3ImageProcessor(
        size={"height": SAM3_SIZE, "width": SAM3_SIZE}, mask_size={"height": 64, "width": 64}
    )
    video_processor = Sam2VideoVideoProcessor(size={"height": SAM3_SIZE, "width": SAM3_SIZE})
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    # One processor_config.json: Sam3TrackerVideoProcessor reads its image / video processors from it.
    Sam3VideoProcessor(
        image_processor=image_processor,
        video_processor=video_processor,
        tokenizer=tokenizer,
        target_size=SAM3_SIZE,
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_edgetam_dir(tmp_path_factory) -> Path:
    return _once("tiny-edgetam-video", tmp_path_factory, build_tiny_edgetam_video)


@pytest.fixture(scope="session")
def tiny_sam3_dir(tmp_path_factory) -> Path:
    return _once("tiny-sam3", tmp_path_factory, build_tiny_sam3)

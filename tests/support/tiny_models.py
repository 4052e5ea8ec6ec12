"""Tiny random-initialised Qwen2.5-VL / SAM2 / SAM2-video checkpoints, built offline for tests.

No model hub is reachable in tests or CI, so the real-model code paths (paper steps 1-3) are tested on
checkpoints built here with random weights and *shrunk* configs, saved with ``save_pretrained`` and then
loaded back through the very ``from_pretrained`` calls the real hub ids go through.

- Qwen2.5-VL: a byte-level ``Qwen2Tokenizer`` (the 256 byte symbols, no merges) plus the Qwen special
  tokens, a small chat template that renders image / video placeholders like the real one, and a
  ``Qwen2_5_VLProcessor`` with small pixel limits. The config's image / video / vision-start / end ids
  are the tokenizer's ids, and ``mrope_section`` sums to head_dim / 2 (M-RoPE needs both).
- SAM2 image and video: a Hiera backbone with one or two blocks per stage and 16..128 channels at 256 px input
  (the mask decoder keeps SAM2's 256-wide layout, which is already small).

Each builder writes to a directory and returns it. The session-scoped fixtures at the bottom build each
checkpoint once per test session (a module-level cache makes that hold even when several test modules
import the fixtures).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# Renders {"type": "image"} / {"type": "video"} items as the real Qwen2.5-VL template does (vision start,
# pad, vision end), so the processor expands the pads into the right number of vision tokens.
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Pixel limits of the tiny processor: 28 px = one merged patch; frames become at most 4x4 merged patches.
TINY_MIN_PIXELS = 28 * 28
TINY_MAX_PIXELS = 112 * 112


def tiny_qwen_tokenizer() -> tuple[Any, dict[str, int]]:
    """A byte-level Qwen2 tokenizer without merges plus the Qwen special tokens, and their ids
    (shared by the tiny Qwen2.5-VL and Qwen3-VL checkpoints)."""
    import tokenizers
    from transformers import Qwen2Tokenizer
    from transformers.tokenization_utils_base import AddedToken

    alphabet = sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Qwen2Tokenizer(vocab={sym: i for i, sym in enumerate(alphabet)}, merges=[])
    tokenizer.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, special=True) for t in QWEN_SPECIAL_TOKENS[1:]]}
    )
    tokenizer.add_tokens([AddedToken(QWEN_SPECIAL_TOKENS[0], special=True)], special_tokens=True)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|endoftext|>"
    return tokenizer, ids


def build_tiny_qwen(path: str | Path, seed: int = 0) -> Path:
    """Save a ~0.2 M-parameter Qwen2.5-VL model + processor to ``path`` and return it."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    path = Path(path)
    tokenizer, ids = tiny_qwen_tokenizer()

    image_processor = Qwen2VLImageProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    video_processor = Qwen2VLVideoProcessor(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=TINY_CHAT_TEMPLATE,
    )

    hidden, heads = 32, 2  # head_dim 16 -> mrope_section must sum to 8
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": hidden,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "num_key_value_heads": 1,
            "max_position_embeddings": 4096,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": hidden,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
            "tokens_per_second": 2,
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    # Real Qwen2.5-VL checkpoints ship do_sample=True with temperature 0.1, top_k=1, top_p=0.001: keep
    # that trap in the tiny model so the code that must override it (greedy reasoner, sampled K / M
    # answers) is exercised.
    model.generation_config.do_sample = True
    model.generation_config.temperature = 0.1
    model.generation_config.top_k = 1
    model.generation_config.top_p = 0.001
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _tiny_sam2_parts() -> dict:
    """Shared shrunk SAM2 sub-configs: 256 px input, feature maps 64 / 32 / 16 px."""
    backbone = {
        "model_type": "sam2_hiera_det_model",
        "hidden_size": 16,
        "num_attention_heads": 1,
        "image_size": [256, 256],
        "blocks_per_stage": [1, 1, 2, 1],
        "embed_dim_per_stage": [16, 32, 64, 128],
        "num_attention_heads_per_stage": [1, 1, 1, 1],
        "window_size_per_stage": [8, 4, 4, 4],
        # a global block may not open a stage (those pool queries inside windows)
        "global_attention_blocks": [3],
        "window_positional_embedding_background_size": [4, 4],
    }
    vision = {
        "backbone_config": backbone,
        "backbone_channel_list": [128, 64, 32, 16],
        "backbone_feature_sizes": [[64, 64], [32, 32], [16, 16]],
        "fpn_hidden_size": 256,
    }
    prompt = {"hidden_size": 256, "image_size": 256, "patch_size": 16}
    decoder = {"hidden_size": 256, "mlp_dim": 256, "iou_head_hidden_dim": 64}
    return {"vision_config": vision, "prompt_encoder_config": prompt, "mask_decoder_config": decoder}


def _tiny_sam2_image_processor():
    from transformers import Sam2ImageProcessor

    return Sam2ImageProcessor(size={"height": 256, "width": 256}, mask_size={"height": 64, "width": 64})


def build_tiny_sam2(path: str | Path, seed: int = 0) -> Path:
    """Save a shrunk random ``Sam2Model`` + ``Sam2Processor`` to ``path`` and return it."""
    from transformers import Sam2Config, Sam2Model, Sam2Processor

    path = Path(path)
    torch.manual_seed(seed)
    model = Sam2Model(Sam2Config(**_tiny_sam2_parts()))
    processor = Sam2Processor(image_processor=_tiny_sam2_image_processor(), target_size=256)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_tiny_sam2_video(path: str | Path, seed: int = 0) -> Path:
    """Save a shrunk random ``Sam2VideoModel`` + ``Sam2VideoProcessor`` to ``path`` and return it."""
    from transformers import Sam2VideoConfig, Sam2VideoModel, Sam2VideoProcessor, Sam2VideoVideoProcessor

    path = Path(path)
    config = Sam2VideoConfig(
        **_tiny_sam2_parts(),
        image_size=256,
        memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=256,
        memory_attention_rope_feat_sizes=[16, 16],
        memory_fuser_intermediate_dim=256,
        memory_fuser_num_layers=1,
    )
    torch.manual_seed(seed)
    model = Sam2VideoModel(config)
    video_processor = Sam2VideoVideoProcessor(size={"height": 256, "width": 256})
    processor = Sam2VideoProcessor(
        image_processor=_tiny_sam2_image_processor(), video_processor=video_processor, target_size=256
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_tiny_official_sam2(path: str | Path, seed: int = 0) -> Path:
    """Save a shrunk random official-``sam2`` model as ``tiny_sam2.yaml`` + ``tiny_sam2.pt`` in ``path``.

    The config is the packaged ``sam2.1_hiera_t.yaml`` with a 256 px input, a 4-block Hiera of 16..128
    channels and one memory-attention layer; the checkpoint holds ``{"model": state_dict}`` like the
    official release files.
    """
    import sam2
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    path = Path(path)
    cfg = OmegaConf.load(Path(sam2.__file__).parent / "configs" / "sam2.1" / "sam2.1_hiera_t.yaml")
    model = cfg.model
    model.image_size = 256
    trunk = model.image_encoder.trunk
    trunk.embed_dim, trunk.num_heads = 16, 1
    trunk.stages, trunk.global_att_blocks = [1, 1, 2, 1], [3]
    trunk.window_pos_embed_bkg_spatial_size = [4, 4]
    trunk.window_spec = [8, 4, 4, 4]
    model.image_encoder.neck.backbone_channel_list = [128, 64, 32, 16]
    attention = model.memory_attention
    attention.num_layers = 1
    attention.layer.dim_feedforward = 256
    attention.layer.self_attention.feat_sizes = [16, 16]
    attention.layer.cross_attention.feat_sizes = [16, 16]
    model.memory_encoder.fuser.num_layers = 1
    torch.manual_seed(seed)
    net = instantiate(model, _recursive_=True)
    path.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, path / "tiny_sam2.yaml")
    torch.save({"model": net.state_dict()}, path / "tiny_sam2.pt")
    return path


# ---------------------------------------------------------------- session fixtures

_BUILT: dict[str, Path] = {}


def _once(name: str, factory, builder) -> Path:
    """Build a checkpoint once per session even if several modules import the fixture."""
    path = _BUILT.get(name)
    if path is None or not path.exists():
        path = builder(factory.mktemp("tiny_models") / name)
        _BUILT[name] = path
    return path


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    """A tiny Qwen2.5-VL checkpoint dir (base-Instruct style: answers in smart_resize space)."""
    return _once("tiny-qwen2.5-vl", tmp_path_factory, build_tiny_qwen)


@pytest.fixture(scope="session")
def tiny_visionreasoner_dir(tiny_qwen_dir, tmp_path_factory) -> Path:
    """The same tiny weights under a VisionReasoner-style name (answers in 840 x 840 space)."""

    def copy(path: Path) -> Path:
        shutil.copytree(tiny_qwen_dir, path)
        return path

    return _once("VisionReasoner-7B-tiny", tmp_path_factory, copy)


@pytest.fixture(scope="session")
def tiny_sam2_dir(tmp_path_factory) -> Path:
    return _once("tiny-sam2", tmp_path_factory, build_tiny_sam2)


@pytest.fixture(scope="session")
def tiny_sam2_video_dir(tmp_path_factory) -> Path:
    return _once("tiny-sam2-video", tmp_path_factory, build_tiny_sam2_video)


@pytest.fixture(scope="session")
def tiny_official_sam2_dir(tmp_path_factory) -> Path:
    return _once("tiny-official-sam2", tmp_path_factory, build_tiny_official_sam2)


@pytest.fixture(scope="module", autouse=True)
def torch_single_thread():
    """Run tiny models on one thread (autouse in the modules that import it).

    Tiny models gain nothing from a second thread, and on a shared 2-core machine OpenMP's spinning
    threads made the SAM2-video tests ~20x slower (1.3 s vs 24 s for 20 frames under load).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

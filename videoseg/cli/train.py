"""``python -m videoseg train``: GRPO training of the reasoner (paper: Training), and the LoRA merge.

``train --model ID_OR_PATH --data shapes:0-7 --out DIR`` trains on TRL's GRPOTrainer
(:mod:`videoseg.training.trainer`) and writes ``DIR/metrics.jsonl`` and ``DIR/final``;
``--config recipe.yaml`` reads the options (and a ``grpo:`` section of GRPOConfig fields) from a recipe
in ``recipes/``; options given on the command line win over the recipe.
``train --merge-lora ADAPTER --out DIR [--model BASE]`` merges a LoRA adapter into its base model.

Run it under a launcher for several processes: ``torchrun --nproc_per_node N -m videoseg train ...`` or
``accelerate launch --config_file recipes/accelerate/... -m videoseg train ...``.

Exit codes: 0 done, 2 bad options or data (one ``error:`` line, nothing trained), 1 training failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register ``train`` on the ``python -m videoseg`` subcommand parser."""
    from videoseg.training.trainer import REWARD_KINDS

    p = subparsers.add_parser(
        "train",
        help="GRPO-train the reasoner (TRL GRPOTrainer), or merge a LoRA adapter",
        description="Train a Qwen2.5-VL reasoner with GRPO on the paper's reward; see recipes/ for "
        "one-GPU, 8-GPU and multi-node configurations.",
    )
    p.add_argument(
        "--config", type=Path, default=None, help="recipe YAML (recipes/*.yaml); options win over it"
    )
    p.add_argument("--model", default=None, help="policy: Qwen2.5-VL hub id or local folder")
    p.add_argument(
        "--data",
        default=None,
        help="shapes:SEEDS (e.g. shapes:0-7) or a MeViS / ReVOS / Ref-YouTube-VOS root (with --layout)",
    )
    p.add_argument("--layout", default=None, help="benchmark layout of --data: mevis | revos | refytvos")
    p.add_argument("--split", default=None, help="benchmark split (default: train)")
    p.add_argument(
        "--fps", type=float, default=None, help="frame rate of benchmark frame folders (default 6)"
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (metrics.jsonl, final/, adapter/)")
    p.add_argument("--max-steps", type=int, default=None, help="optimiser steps (default 100)")
    p.add_argument("--num-generations", type=int, default=None, help="completions per prompt, the group (8)")
    p.add_argument("--reward", choices=REWARD_KINDS, default=None, help="reward (default videoseg-r1)")
    p.add_argument("--profile", default=None, help="prompt layout / answer space (default videoseg-r1)")
    p.add_argument("--lora", action="store_true", default=None, help="train LoRA adapters, merged at the end")
    p.add_argument("--lora-r", type=int, default=None, help="LoRA rank (default 64)")
    p.add_argument("--no-merge", action="store_true", help="with --lora: keep the adapter only")
    p.add_argument(
        "--rater", default=None, help="difficulty rater: shapes | a Qwen2.5-VL id (shapes data: shapes)"
    )
    p.add_argument(
        "--difficulty-file", default=None, help="stored difficulty: JSON {row key: D or axis scores}"
    )
    p.add_argument("--max-examples", type=int, default=None, help="use at most this many expressions")
    p.add_argument("--shapes-size", default=None, help="shapes frame size WIDTHxHEIGHT (default 320x240)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    p.add_argument("--device", default=None, help="auto | cpu | cuda")
    p.add_argument(
        "--merge-lora", type=Path, default=None, metavar="ADAPTER", help="merge this LoRA adapter and exit"
    )
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from videoseg.training.data import TrainingDataError
    from videoseg.training.trainer import (
        TrainingError,
        load_recipe,
        make_settings,
        merge_lora,
        parse_size,
        train,
    )

    try:
        if args.merge_lora is not None:
            if args.out is None:
                raise TrainingError("--merge-lora needs --out DIR")
            out = merge_lora(args.merge_lora, args.out, base=args.model)
            print(f"wrote {out}")
            return 0
        recipe = load_recipe(args.config) if args.config is not None else {}
        settings = make_settings(
            recipe,
            model=args.model,
            data=args.data,
            layout=args.layout,
            split=args.split,
            fps=args.fps,
            out=str(args.out) if args.out is not None else None,
            max_steps=args.max_steps,
            num_generations=args.num_generations,
            reward=args.reward,
            profile=args.profile,
            lora=args.lora,
            lora_r=args.lora_r,
            merge=False if args.no_merge else None,
            rater=args.rater,
            difficulty_file=args.difficulty_file,
            max_examples=args.max_examples,
            shapes_size=parse_size(args.shapes_size) if args.shapes_size else None,
            seed=args.seed,
            device=args.device,
        )
    except TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        train(settings)
    except (TrainingError, TrainingDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0

"""Command line: ``python -m videoseg {run,replay,synth,eval,benchmark,train} ...``.

Each subcommand is one module of this package and registers itself here through an
``add_parser(subparsers)`` function that sets ``func`` (called with the parsed args, returns an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module holding add_parser(subparsers)
SUBCOMMANDS = {
    "run": "videoseg.cli.run",
    "replay": "videoseg.cli.run",
    "synth": "videoseg.cli.synth",
    "eval": "videoseg.cli.eval",
    "benchmark": "videoseg.cli.benchmark",
    "train": "videoseg.cli.train",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m videoseg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    seen: set[str] = set()
    for module_name in SUBCOMMANDS.values():
        if module_name in seen:
            continue
        seen.add(module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

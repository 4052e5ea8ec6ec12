"""Record traces of the bundled shapes-world examples with the real pipeline (``shapes`` preset), for the
explorer's replay and Inspect tabs: writes ``examples/traces/<example>--<expression id>.jsonl``.

    python bench/record_example_traces.py [--limit 2]

Video paths are recorded relative to the repository root, so a replay finds the video on any checkout.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=2, help="examples to record (first expression of each)")
    parser.add_argument("--preset", default="shapes")
    args = parser.parse_args()

    from videoseg.core.config import preset
    from videoseg.core.trace import write_trace
    from videoseg.pipeline import orchestrator as pipeline
    from videoseg.ui.examples import TRACES_DIR, find_examples

    examples = find_examples()
    if not examples:
        print("no examples under examples/: generate them first (examples/regenerate.sh)", file=sys.stderr)
        return 1
    TRACES_DIR.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)  # the pipeline records the path as given: keep it relative
    for example in examples[: args.limit]:
        expression = example.expressions[0]
        video = example.video.relative_to(ROOT)
        out = TRACES_DIR / f"{example.name}--{expression['id']}.jsonl"
        count = write_trace(
            out, pipeline.run(video, expression["text"], preset(args.preset), preset=args.preset)
        )
        print(f"{out.relative_to(ROOT)}: {count} events ({expression['text']!r})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

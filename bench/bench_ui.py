"""Explorer latency in CPU mode: time from the Run call (the ``run`` API endpoint) to the first update
that shows a pipeline event, and to completion, on the bundled shapes-world examples.

    python bench/bench_ui.py [--repeats 3]

Goal: first event under 1 s. Prints one line per run and the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    from videoseg.ui.app import build_demo
    from videoseg.ui.session import SessionStore

    demo = build_demo(store=SessionStore(tempfile.mkdtemp(prefix="bench-ui-")))
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    client = Client(demo.local_url, verbose=False)
    firsts, events, totals = [], [], []
    try:
        for i in range(args.repeats):
            example = demo.ctx.examples[i % len(demo.ctx.examples)]
            query = example.expressions[0]["text"]
            start = time.perf_counter()
            first_update = first_event = None
            job = client.submit(handle_file(str(example.video)), query, "shapes", api_name="/run")
            for update in job:
                now = time.perf_counter() - start
                first_update = first_update if first_update is not None else now
                progress = update[1]
                if first_event is None and isinstance(progress, dict) and progress.get("events"):
                    first_event = now
            total = time.perf_counter() - start
            firsts.append(first_update)
            events.append(first_event if first_event is not None else float("nan"))
            totals.append(total)
            print(
                f"{example.name:<24} {query[:40]:<40} first update {first_update:6.3f} s  "
                f"first pipeline event {events[-1]:6.3f} s  done {total:6.2f} s"
            )
    finally:
        demo.close()
    print(
        f"median: first update {statistics.median(firsts):.3f} s, first pipeline event "
        f"{statistics.median(events):.3f} s, completion {statistics.median(totals):.2f} s "
        f"(goal: first event < 1 s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

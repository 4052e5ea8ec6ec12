"""The explorer's Blocks: one tab per way of looking at the paper's pipeline (Run, Compare, Inspect,
Interactive, About). :func:`build_demo` builds it; ``app.py`` at the repository root launches it."""

from __future__ import annotations

import os
from typing import Any

import gradio as gr

from videoseg.ui.common import AppContext, guard_inputs, session_hash
from videoseg.ui.examples import available_examples
from videoseg.ui.session import SessionStore, UploadCaps
from videoseg.ui.tabs.about import build_about_tab
from videoseg.ui.tabs.compare import build_compare_tab
from videoseg.ui.tabs.inspect import build_inspect_tab
from videoseg.ui.tabs.interactive import build_interactive_tab
from videoseg.ui.tabs.reward import build_reward_tab
from videoseg.ui.tabs.run import build_run_tab

# The run view's styling (videoseg.ui.common.build_run_view gives the components these classes).
STAGE_TABLE = '.table-wrap:has(th[title="backend"]):has(th[title="tokens"])'
CSS = (
    """
.vs-status h3 { margin: 0.2em 0; }
/* Stage 2 reasoning panel: scroll inside it instead of growing the page, and a panel label like
   every other panel's (a Markdown block shows none of its own). */
.block.vs-reasoning { max-height: 520px; overflow-y: auto; padding-top: 34px !important; }
.block.vs-reasoning::before {
  content: "Stage 2 · reasoning";
  position: absolute; top: 0; left: 0; z-index: var(--layer-2); display: inline-flex;
  padding: var(--block-label-padding); font-size: var(--block-label-text-size);
  font-weight: var(--block-label-text-weight); line-height: var(--line-sm);
  color: var(--block-label-text-color); background: var(--block-label-background-fill);
  border: var(--block-label-border-width) solid var(--block-label-border-color);
  border-top: none; border-left: none; border-radius: 0 0 var(--block-label-radius) 0;
}
.vs-reason { white-space: pre-wrap; max-height: 320px; overflow-y: auto; font-size: 0.85em; }
/* Per-stage table: every cell readable at any width; a long value wraps instead of ending in "…". */
"""
    + STAGE_TABLE
    + """ span.text {
  white-space: normal; overflow-wrap: anywhere; text-overflow: clip; overflow: visible;
}
"""
    + STAGE_TABLE
    + """ :is(.body-cell, .header-cell) {
  font-family: var(--font); font-size: var(--text-sm); }
"""
    + STAGE_TABLE
    + """ .cell-wrap { padding: 4px 5px; }
@media (max-width: 480px) {
"""
    + STAGE_TABLE
    + """ :is(.body-cell, .header-cell) { font-size: var(--text-xs); }
"""
    + STAGE_TABLE
    + """ .cell-wrap { padding: 3px 2px; }
}
"""
)

INTRO = """# VideoSeg-R1 Explorer
Segment the object a free-form query refers to in a video, and see each step of VideoSeg-R1 as it
happens: **1** where to look (hierarchical text-guided frame sampling), **2** reasoning into cues (box,
\\+ centre, − negative point), **3** keyframe mask and propagation. The `shapes` presets run without any
weights on a CPU (a symbolic shapes-world model, GrabCut and optical flow, labelled as such); the
`paper` presets use Qwen2.5-VL + SAM2 + XMem when their weights and a GPU are available.
"""


def launch_options(caps: UploadCaps | None = None) -> dict[str, object]:
    """Keyword arguments for ``demo.launch``: the address from the environment, and Gradio's own upload
    limit at the largest of our caps, so a far too large file is refused before it is uploaded
    (ours then give the specific message for anything between)."""
    caps = caps or UploadCaps.from_env()
    return {
        "server_name": os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),  # Spaces set 0.0.0.0
        "server_port": int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        "max_file_size": int(max(caps.max_file_mb, caps.max_zip_mb) * 1024**2),
    }


def build_demo(store: SessionStore | None = None, caps: UploadCaps | None = None) -> gr.Blocks:
    """The whole explorer. ``store`` / ``caps`` default to the environment's settings."""
    store = store or SessionStore()
    caps = caps or UploadCaps.from_env()
    ctx = AppContext(store=store, caps=caps, examples=available_examples(store.root))
    # delete_cache bounds Gradio's own copies of served files (every hour, files older than 2 h).
    with gr.Blocks(title="VideoSeg-R1 Explorer", delete_cache=(3600, 7200)) as demo:
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Run", id="run"):
                run = build_run_tab(ctx)
            with gr.Tab("Compare", id="compare"):
                compare = build_compare_tab(ctx, run)
            with gr.Tab("Inspect", id="inspect"):
                inspect = build_inspect_tab(ctx, run["last_run"])
            with gr.Tab("Interactive", id="interactive"):
                interactive = build_interactive_tab(ctx, run)
            with gr.Tab("Reward", id="reward"):
                reward = build_reward_tab(ctx)
            with gr.Tab("About", id="about"):
                build_about_tab(caps)

        def forget(request: gr.Request) -> None:
            ctx.end_session(session_hash(request))

        demo.unload(forget)
    guard_inputs(demo)  # an input Gradio cannot read is named, not a generic error
    # Gradio 6 takes css in launch() and drops what the Blocks carried, so every launch of this demo
    # (app.py, a Space, the tests' in-process servers) gets the explorer's CSS unless told otherwise.
    launch = demo.launch

    def launch_with_css(*args: Any, **kwargs: Any) -> Any:
        kwargs["css"] = (kwargs.get("css") or "") + CSS
        return launch(*args, **kwargs)

    demo.launch = launch_with_css  # type: ignore[method-assign]
    demo.ctx = ctx  # type: ignore[attr-defined]  # for tests and benchmarks
    demo.run_tab = run  # type: ignore[attr-defined]
    demo.compare_tab = compare  # type: ignore[attr-defined]
    demo.inspect_tab = inspect  # type: ignore[attr-defined]
    demo.interactive_tab = interactive  # type: ignore[attr-defined]
    demo.reward_tab = reward  # type: ignore[attr-defined]
    return demo


__all__ = ["build_demo"]

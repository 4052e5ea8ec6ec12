"""The explorer as an agent tool: an opt-in MCP server with one tool that runs the whole method.

An agent (Claude Desktop, Cursor, any MCP client) hands over a video (an http(s) URL, or an upload
that Gradio's MCP server turns into a file), a query and a preset; the tool runs the paper's three
steps (or a direct method such as ``sam3-text``) through the same event stream as the explorer and
returns the masks zip, the cues as JSON and one paragraph saying what each stage decided.

Opt-in only (an MCP server exposes the machine's GPU to whoever can reach it): ``python app.py --mcp``
or ``VIDEOSEG_MCP=1``. Gradio 6 serves MCP when launched with ``mcp_server=True``
(``/gradio_api/mcp/``, streamable HTTP); every named endpoint would become a tool, so
:func:`restrict_mcp_tools` keeps the agent's tool list to this one tool while the explorer's own API
endpoints stay as they are. The tool's description is :func:`segment_video`'s docstring.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gradio as gr

from videoseg.core.state import RunState

MCP_FLAG = "--mcp"
MCP_ENV = "VIDEOSEG_MCP"
TOOL_NAME = "segment_video"
DOWNLOAD_TIMEOUT_S = 30.0


def mcp_requested(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the MCP server was asked for: ``--mcp`` on the command line or ``VIDEOSEG_MCP=1``."""
    argv = argv if argv is not None else []
    environ = environ if environ is not None else os.environ
    return MCP_FLAG in argv or environ.get(MCP_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# ------------------------------------------------------------------------------- input


def _fetch(url: str, folder: Path, max_bytes: int) -> Path:
    """Download an http(s) video into ``folder``, refusing one larger than ``max_bytes``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise gr.Error(f"The video must be an http(s) URL or an uploaded file, got {url[:80]!r}.")
    name = Path(parts.path).name or "video.mp4"
    target = folder / name
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, target.open("wb") as out:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > max_bytes:
                raise gr.Error(
                    f"The video at {parts.hostname} is {int(length) / 1024**2:.1f} MB; the limit is "
                    f"{max_bytes / 1024**2:g} MB."
                )
            written = 0
            while chunk := response.read(1 << 16):
                written += len(chunk)
                if written > max_bytes:
                    raise gr.Error(
                        f"The video at {parts.hostname} is over the {max_bytes / 1024**2:g} MB limit."
                    )
                out.write(chunk)
    except gr.Error:
        raise
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts, bad URLs
        raise gr.Error(f"The video could not be downloaded from {parts.hostname}: {exc}.") from exc
    return target


def _video_path(video: Any, folder: Path, max_bytes: int) -> str:
    """A local path for the tool's video argument (a file from Gradio, a path, or a URL)."""
    if isinstance(video, dict):  # FileData as a dict
        video = video.get("path") or video.get("url")
    if video is None or (isinstance(video, str) and not video.strip()):
        raise gr.Error("No video given: pass an http(s) URL of a video, or upload one.")
    text = str(video).strip()
    if text.startswith(("http://", "https://")):
        return str(_fetch(text, folder, max_bytes))
    return text


# ------------------------------------------------------------------------------- output


def _write_masks_zip(state: RunState, folder: Path) -> Path:
    """``masks.zip``: one palette PNG per frame (0 background, target i -> i + 1), DAVIS style."""
    from videoseg.io.video import write_mask_pngs

    pngs = write_mask_pngs(folder / "masks", state.iter_label_maps())
    path = folder / "masks.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for png in pngs:
            archive.write(png, f"masks/{png.name}")
    return path


def cues_of(state: RunState) -> dict[str, Any]:
    """The decisions as JSON: where the method looked, the cues per target, keyframe scores, timings."""
    result = state.sampler_result
    return {
        "query": state.query,
        "preset": state.preset,
        "video": state.video,
        "key_segment": None if result is None else list(result.key_segment),
        "target_frame": None if result is None else result.target_frame,
        "keyframe": state.keyframe,
        "cues": state.cues or [],
        "cues_used": list(state.cues_used),
        "keyframe_scores": {str(t): e.score for t, e in sorted(state.keyframe_masks.items())},
        "num_targets": state.num_targets,
        "timings": {k: round(v, 3) for k, v in state.timings.items()},
        "warnings": [w.message for w in state.warnings],
    }


def summary_of(state: RunState) -> str:
    """One paragraph: what each stage decided, in the paper's order."""
    parts: list[str] = []
    n = state.num_frames
    backends = {stage: info.name for stage, info in state.backends.items()}
    concept = next((p.text.split("\n")[0] for p in state.prompts if p.purpose == "concept"), None)
    result = state.sampler_result
    if result is not None:
        start, end = result.key_segment
        parts.append(
            f"Stage 1 (where to look, {result.strategy}) chose the key segment of frames {start}–{end} of {n} "
            f"and frame {result.target_frame} as the target frame."
        )
    elif concept is not None:
        parts.append(
            f"No frame sampling and no reasoning: SAM 3 segmented the concept “{concept}” on every frame."
        )
    if state.difficulty is not None:
        d = state.difficulty
        budget = "no token budget" if d.budget is None else f"a {d.budget}-token reasoning budget"
        parts.append(f"The query was rated {d.level} (difficulty {d.difficulty:.1f} of 10), giving {budget}.")
    if state.reasoning is not None:
        parts.append(
            f"Stage 2 ({backends.get('reasoner', 'the reasoner')}) reasoned in {state.reasoning.num_tokens} tokens"
            + (f" and named {len(state.cues)} target(s)" if state.cues is not None else "")
            + "."
        )
    if state.parse_error is not None:
        parts.append(f"Its answer could not be read ({state.parse_error.message}), so the masks are empty.")
    if state.keyframe_masks:
        areas = ", ".join(f"target {t + 1}: {e.area} px" for t, e in sorted(state.keyframe_masks.items()))
        parts.append(
            f"Stage 3 ({backends.get('segmenter', 'the segmenter')}) made the keyframe mask on frame "
            f"{state.keyframe} ({areas})"
            f" and {backends.get('propagator', 'the propagator')} carried it to all {n} frames."
        )
    covered = sum(1 for i in state.masks if state.masks[i].any())
    parts.append(f"{covered} of {n} frames have a non-empty mask.")
    parts.extend(f"Warning: {w.message}." for w in state.warnings[:3])
    return " ".join(parts)


# ------------------------------------------------------------------------------- the tool


def segment_video(video: Any, query: str, preset: str = "shapes") -> tuple[str, str, str]:
    """Segment the object(s) a free-form query refers to in a video, with VideoSeg-R1's three steps.

    Step 1 finds where in the video to look (hierarchical text-guided frame sampling), step 2 reasons
    about the query into cues (box, centre point, negative point per target), step 3 segments the
    target frame and propagates the masks to every frame. The preset picks the models: "shapes" runs
    without weights on a CPU (for the bundled synthetic shapes videos), "paper" uses Qwen2.5-VL-7B +
    SAM2 + XMem, "sam3-text" runs SAM 3's text-prompted video segmentation with no reasoning.

    Args:
        video: the video, as an http(s) URL or an uploaded file (mp4, webm, avi, mov ...).
        query: what to segment, in words, e.g. "the red square that turns left".
        preset: the preset name, e.g. "shapes", "paper", "paper-edgetam" or "sam3-text".

    Returns:
        the masks zip (one palette PNG per frame: 0 background, target i has value i), the cues and
        decisions as JSON, and one paragraph saying what each stage decided.
    """
    from videoseg.ui.runner import check_preset, check_query, pipeline_events
    from videoseg.ui.session import UploadCaps, UploadError

    caps = UploadCaps.from_env()
    folder = Path(tempfile.mkdtemp(prefix="videoseg-agent-"))
    try:
        try:
            query = check_query(query)
            name = check_preset(preset)
            path = _video_path(video, folder, int(caps.max_file_mb * 1024**2))
            opened = caps.open(path, "pass an http(s) URL of a video, or upload one")
        except UploadError as exc:
            raise gr.Error(str(exc)) from exc
        with opened:
            state = RunState()
            for event in pipeline_events(path, query, name, None, len(opened), opened=opened):
                state.apply(event)
        if state.errors and any(e.fatal for e in state.errors):
            error = next(e for e in state.errors if e.fatal)
            raise gr.Error(f"The run stopped at the {error.for_stage} stage: {error.message}")
        zip_path = _write_masks_zip(state, folder)
        # Hand Gradio a file outside the working folder, which is removed below.
        keep = Path(tempfile.mkdtemp(prefix="videoseg-agent-out-")) / "masks.zip"
        shutil.move(str(zip_path), keep)
        return str(keep), json.dumps(cues_of(state), default=str, indent=1), summary_of(state)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def add_agent_tool(demo: gr.Blocks) -> None:
    """Add the ``segment_video`` endpoint to ``demo`` (hidden components: it is for API / MCP callers)."""
    from videoseg.core.config import PRESETS

    with demo, gr.Column(visible=False):
        video = gr.File(label="video")
        query = gr.Textbox(label="query")
        preset = gr.Dropdown(choices=list(PRESETS), value="shapes", label="preset")
        masks = gr.File(label="masks zip")
        cues = gr.Textbox(label="cues (JSON)")
        summary = gr.Textbox(label="summary")
        button = gr.Button(visible=False)
        # Unqueued: Gradio's MCP server then returns the three outputs as three contents (a queued
        # call comes back as one text holding a Python list); the run itself still goes through
        # spaces.GPU for real-model presets, which bounds GPU use on a Space.
        button.click(
            segment_video, [video, query, preset], [masks, cues, summary], api_name=TOOL_NAME, queue=False
        )


def launch_with_agent_tool(demo: gr.Blocks, **launch_kwargs: Any) -> gr.Blocks:
    """Launch ``demo`` (queued by the caller) as an MCP server whose one tool is ``segment_video``.

    Blocks like ``demo.launch`` unless ``prevent_thread_lock=True`` is passed (tests)."""
    add_agent_tool(demo)
    hold = not launch_kwargs.pop("prevent_thread_lock", False)
    demo.launch(mcp_server=True, prevent_thread_lock=True, **launch_kwargs)
    restrict_mcp_tools(demo)
    if hold:
        demo.block_thread()
    return demo


def restrict_mcp_tools(demo: gr.Blocks, keep: Sequence[str] = (TOOL_NAME,)) -> list[str]:
    """Keep only ``keep`` among the MCP tools of a launched ``demo``; returns the tool names left.

    Gradio lists every named endpoint as a tool; the explorer's other endpoints drive its pages
    (they take session state and stream UI updates) and would only confuse an agent."""
    server = getattr(demo, "mcp_server_obj", None)
    if server is None:
        return []
    server.tool_to_endpoint = {
        tool: endpoint for tool, endpoint in server.tool_to_endpoint.items() if endpoint.lstrip("/") in keep
    }
    return list(server.tool_to_endpoint)


__all__ = [
    "MCP_ENV",
    "MCP_FLAG",
    "TOOL_NAME",
    "add_agent_tool",
    "cues_of",
    "launch_with_agent_tool",
    "mcp_requested",
    "restrict_mcp_tools",
    "segment_video",
    "summary_of",
]

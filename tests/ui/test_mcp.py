"""The explorer as an MCP tool: a local in-process server, asked by the ``mcp`` client package.

The explorer is launched as ``python app.py --mcp`` launches it (videoseg.ui.agent_tool); a real MCP
client session lists the tools (exactly one: segment_video, described by its docstring) and calls it
on a bundled shapes-world clip with the weights-free ``shapes`` preset, uploaded as a data URI as an
MCP client uploads a file. The masks zip, the cues and the summary paragraph come back.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import urllib.request
import zipfile
from typing import Any

import numpy as np
import pytest

from videoseg.ui.agent_tool import MCP_ENV, TOOL_NAME, mcp_requested, segment_video


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, False),
        (["--mcp"], {}, True),
        ([], {MCP_ENV: "1"}, True),
        ([], {MCP_ENV: "true"}, True),
        ([], {MCP_ENV: "0"}, False),
        (["--share"], {MCP_ENV: ""}, False),
    ],
)
def test_the_server_is_opt_in(argv, env, expected):
    assert mcp_requested(argv, env) is expected


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from videoseg.ui.agent_tool import launch_with_agent_tool
    from videoseg.ui.app import build_demo
    from videoseg.ui.session import SessionStore

    demo = build_demo(store=SessionStore(tmp_path_factory.mktemp("mcp-store")))
    demo.queue()
    launch_with_agent_tool(demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield demo
    demo.close()


async def _session(url: str, action):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(url) as (read, write, *_), ClientSession(read, write) as session:
        await session.initialize()
        return await action(session)


def _mcp_url(demo: Any) -> str:
    return demo.local_url.rstrip("/") + "/gradio_api/mcp/"


def test_the_server_lists_one_tool_described_by_its_docstring(server):
    async def tools(session):
        return (await session.list_tools()).tools

    listed = asyncio.run(_session(_mcp_url(server), tools))
    assert [t.name for t in listed] == [TOOL_NAME]
    tool = listed[0]
    assert tool.description.startswith(segment_video.__doc__.strip().splitlines()[0])
    assert set(tool.inputSchema["properties"]) == {"video", "query", "preset"}


def test_the_tool_segments_a_bundled_clip_with_the_shapes_preset(server):
    example = server.ctx.examples[0]
    query = example.expressions[0]["text"]
    data = base64.b64encode(example.video.read_bytes()).decode()

    async def call(session):
        return await session.call_tool(
            TOOL_NAME, {"video": f"data:video/mp4;base64,{data}", "query": query, "preset": "shapes"}
        )

    result = asyncio.run(_session(_mcp_url(server), call))
    assert not result.isError, result.content
    texts = [c.text for c in result.content if c.type == "text"]
    assert len(texts) == 3
    zip_url, cues_text, summary = texts
    with urllib.request.urlopen(zip_url) as response:
        archive = zipfile.ZipFile(io.BytesIO(response.read()))
    names = sorted(archive.namelist())
    cues = json.loads(cues_text)
    assert len(names) == cues["video"]["num_frames"] and names[0] == "masks/00000.png"
    from PIL import Image

    labels = np.stack([np.asarray(Image.open(archive.open(n))) for n in names])
    assert labels.max() >= 1  # the shapes model finds its target on this clip
    assert cues["query"] == query and cues["preset"] == "shapes" and cues["cues"]
    assert cues["target_frame"] is not None and len(cues["key_segment"]) == 2
    assert "Stage 1" in summary and "Stage 2" in summary and "Stage 3" in summary


def test_bad_input_is_a_message_not_a_traceback(server):
    example = server.ctx.examples[0]
    data = base64.b64encode(example.video.read_bytes()).decode()

    async def call(session, args):
        return await session.call_tool(TOOL_NAME, args)

    video = f"data:video/mp4;base64,{data}"
    for args, words in [
        ({"video": video, "query": "   ", "preset": "shapes"}, "query is empty"),
        # the tool's schema lists the presets: the client is told the names
        ({"video": video, "query": "the square", "preset": "nope"}, "'nope' is not one of ['shapes'"),
        ({"video": "ftp://example.org/v.mp4", "query": "the square", "preset": "shapes"}, "url"),
    ]:
        result = asyncio.run(_session(_mcp_url(server), lambda s, a=args: call(s, a)))
        text = " ".join(c.text for c in result.content if c.type == "text")
        assert result.isError and words in text and "Traceback" not in text


def test_summary_and_cues_of_a_direct_run_name_the_concept():
    """The summary reads the same events for the sam3-text method (no sampler, no reasoner)."""
    from videoseg.core import events as ev
    from videoseg.core.masks import encode_rle
    from videoseg.core.state import RunState
    from videoseg.ui.agent_tool import cues_of, summary_of

    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    state = RunState.from_events(
        [
            ev.RunStarted(query="the dog that runs", video={"num_frames": 2}, config={}, preset="sam3-text"),
            ev.PromptShown(
                for_stage="segmenter", purpose="concept", text="dog\n\n(SAM 3 concept prompt: ...)"
            ),
            ev.KeyframeMask(frame_idx=0, target=0, rle=encode_rle(mask), score=0.9, cues={}, area=4),
            ev.PropagationStarted(keyframe=0, num_frames=2, num_targets=1),
            ev.PropagatedMask(frame_idx=0, direction="keyframe", rles=[encode_rle(mask)], done=1, total=2),
            ev.PropagatedMask(frame_idx=1, direction="forward", rles=[encode_rle(~mask)], done=2, total=2),
        ]
    )
    summary = summary_of(state)
    assert "“dog”" in summary and "no reasoning" in summary and "2 of 2 frames" in summary
    assert cues_of(state)["keyframe_scores"] == {"0": 0.9}

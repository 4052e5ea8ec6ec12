"""Launch the VideoSeg-R1 Explorer (Gradio). Honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; on a
Hugging Face Space this file is the entry point."""

from __future__ import annotations

from videoseg.runtime.zerogpu import prepare_space
from videoseg.ui.agent_tool import launch_with_agent_tool, mcp_requested
from videoseg.ui.app import build_demo, launch_options

# On a ZeroGPU Space: fetch the presets' weights now, outside any GPU window, and load the models at
# import as ZeroGPU expects (VIDEOSEG_SPACE_PRESETS, default paper). Elsewhere: nothing, loading is lazy.
prepare_space()
demo = build_demo()

if __name__ == "__main__":
    import sys

    demo.queue(default_concurrency_limit=2, max_size=32)
    if mcp_requested(sys.argv[1:]):  # opt-in agent tool: `python app.py --mcp` or VIDEOSEG_MCP=1
        launch_with_agent_tool(demo, **launch_options())
    else:
        demo.launch(**launch_options())

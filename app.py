"""Launch the VideoSeg-R1 Explorer (Gradio). Honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; on a
Hugging Face Space this file is the entry point."""

from __future__ import annotations

from videoseg.ui.app import build_demo, launch_options

demo = build_demo()

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=2, max_size=32).launch(**launch_options())

"""Launch the VideoSeg-R1 Explorer (Gradio). Honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; on a
Hugging Face Space this file is the entry point."""

from __future__ import annotations

import os

from videoseg.ui.app import build_demo

demo = build_demo()

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=2, max_size=32).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),  # Spaces set 0.0.0.0
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    )

"""Where the browser tests find Chromium and the flags they start it with (see ENV.md: Debian's
``chromium`` driven by Playwright; never ``playwright install``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("VIDEOSEG_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium() -> str:
    """The Chromium executable, or a failed test saying how to install it."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        pytest.fail(
            f"chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(never `playwright install`), or set VIDEOSEG_CHROMIUM",
            pytrace=False,
        )
    return path

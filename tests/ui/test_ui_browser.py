"""The explorer in a real browser (Playwright + Debian's chromium): load the page, run a shapes-world
example from the Run tab, wait for every stage's output, and save screenshots.

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``; CI installs it). Without it this test
FAILS with that instruction: it is never skipped.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import FLAGS, chromium

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from videoseg.ui.app import build_demo
    from videoseg.ui.session import SessionStore

    demo = build_demo(store=SessionStore(tmp_path_factory.mktemp("browser-store")))
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield demo
    demo.close()


def test_run_example_in_browser(server: Any) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    shots = Path(tempfile.mkdtemp(prefix="videoseg-ui-screens-"))
    print(f"\nscreenshots: {shots}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(server.local_url, wait_until="domcontentloaded")
            expect(page.get_by_text("VideoSeg-R1 Explorer").first).to_be_visible(timeout=30_000)
            page.screenshot(path=str(shots / "00-loaded.png"), full_page=True)

            # pick the first shapes-world example: it fills the video, the query and the preset
            examples = page.locator("#run-examples")
            expect(examples).to_be_visible(timeout=15_000)
            examples.locator("tbody tr, button.example, .gallery-item").first.click()
            query = page.get_by_label("Query").first
            expect(query).not_to_have_value("", timeout=15_000)
            page.locator("#run-button").click()

            # each stage's output appears: timeline (1), reasoning + cues (2), keyframe (3a), strip + video (3b)
            expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(shots / "01-sampler.png"), full_page=True)
            expect(page.get_by_text("Thinking").first).to_be_visible(timeout=60_000)
            expect(page.get_by_text("Done:").first).to_be_visible(timeout=90_000)
            for name in ("cues-", "keyframe-", "propagation-"):
                image = page.locator(f"img[src*='{name}']").first
                image.scroll_into_view_if_needed(timeout=30_000)  # images load lazily, when scrolled to
                expect(image).to_be_visible(timeout=30_000)
            expect(page.locator("video").first).to_be_visible(timeout=30_000)
            for name in ("masks.zip", "overlay.mp4", "cues.json", "trace.jsonl"):
                expect(page.locator(f"a[href$='{name}']").first).to_be_attached(timeout=30_000)
            page.screenshot(path=str(shots / "02-done.png"), full_page=True)

            # the think part is folded once done and unfolds on click
            page.get_by_text("Thinking").first.click()
            expect(page.locator("pre.vs-reason").first).to_be_visible(timeout=10_000)
            page.screenshot(path=str(shots / "03-think-open.png"), full_page=True)

            # the other tabs render
            for tab in ("Compare", "Inspect", "Interactive", "About"):
                page.get_by_role("tab", name=tab).click()
                page.wait_for_timeout(400)
                page.screenshot(path=str(shots / f"04-{tab.lower()}.png"), full_page=True)
            expect(page.get_by_text("Table 5 · where to look").first).to_be_visible()
        except Exception:
            page.screenshot(path=str(shots / "99-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    assert (shots / "02-done.png").stat().st_size > 10_000


def test_stop_mid_run_and_typed_frame_in_browser(server: Any) -> None:
    """Stop during a (paced) run leaves a "Cancelled" status, not "Running" nor Gradio's "Error"
    badges, and Run works again; in the Interactive tab, a frame number typed into the slider's box
    redraws that frame, so clicks land on the frame on screen."""
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    shots = Path(tempfile.mkdtemp(prefix="videoseg-ui-review-"))
    example = server.ctx.examples[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(server.local_url, wait_until="domcontentloaded")
            page.locator("#run-examples").locator("tbody tr, button.example, .gallery-item").first.click()
            expect(page.get_by_label("Query").first).not_to_have_value("", timeout=15_000)
            pace = page.locator("#run-pace input[type=number]")
            pace.fill("5")
            pace.press("Enter")
            page.locator("#run-button").click()
            status = page.locator(".vs-status").first
            expect(status).to_contain_text("Running", timeout=30_000)
            page.get_by_role("button", name="Stop", exact=True).click()
            expect(status).to_contain_text("Cancelled", timeout=10_000)
            page.wait_for_timeout(1500)  # a stream that still pushed "Running" would overwrite it
            expect(status).to_contain_text("Cancelled")
            expect(status).not_to_contain_text("Running")
            assert page.get_by_text("Error", exact=True).count() == 0
            page.screenshot(path=str(shots / "stopped.png"), full_page=True)
            pace.fill("0")
            pace.press("Enter")
            page.locator("#run-button").click()
            expect(status).to_contain_text("Done:", timeout=60_000)

            page.get_by_role("tab", name="Interactive").click()
            page.locator("#interactive-video input[type=file]").set_input_files(str(example.video))
            image = page.locator("#click-image img").first
            expect(image).to_have_attribute("src", re.compile(r"frame-0-"), timeout=30_000)
            frame_box = page.locator("#interactive-frame input[type=number]")
            frame_box.fill("7")
            frame_box.press("Enter")
            expect(image).to_have_attribute("src", re.compile(r"frame-7-"), timeout=15_000)
            box = image.bounding_box()
            image.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
            cues = page.get_by_label("Cues (JSON; edited by clicks, or by hand)")
            expect(cues).to_have_value(re.compile(r'"frame_idx": 7'), timeout=15_000)
            expect(image).to_have_attribute("src", re.compile(r"frame-7-"))
        except Exception:
            page.screenshot(path=str(shots / "99-failure.png"), full_page=True)
            raise
        finally:
            browser.close()

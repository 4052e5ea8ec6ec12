"""Hostile text and file names in a real browser (Playwright + Debian's chromium; never skipped).

A query, a shared trace or a file name holding Markdown or HTML (a remote image, a link, a script,
an ``<img onerror>``) must reach the page as text: the browser fetches nothing from the named host,
shows no link to it and runs no script (requests are recorded with ``page.on("request")``). Uploads
with any legal file name run or are refused in words, never leaving "Starting…" on screen. The
first screen: after Run, the status is inside the viewport at desktop and phone widths.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.support.browser import FLAGS, chromium
from videoseg.ui.examples import TRACES_DIR

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOST = "127.0.0.9"  # nothing listens there; a request to it is recorded all the same
PAYLOAD = (
    f"![x](http://{HOST}/pixel.png) [click](http://{HOST}/link) <script>window.__pwned=1</script> "
    f'<img src="http://{HOST}/img.png" onerror="window.__pwned=2"> www.{HOST}.example'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from videoseg.ui.app import build_demo
    from videoseg.ui.session import SessionStore

    demo = build_demo(store=SessionStore(tmp_path_factory.mktemp("hostile-browser-store")))
    demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def browser() -> Any:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium(), headless=True, args=FLAGS)
        yield launched
        launched.close()


def _page(browser: Any, server: Any, width: int = 1400, height: int = 900) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": width, "height": height})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.local_url, wait_until="domcontentloaded")
    page.locator("#run-button").wait_for(timeout=30_000)
    return page, requests


def _assert_inert(page: Any, requests: list[str]) -> None:
    page.wait_for_timeout(1000)
    remote = [
        u
        for u in requests
        if (urlparse(u).hostname or "").endswith(HOST) or HOST in (urlparse(u).hostname or "")
    ]
    assert not remote, remote
    assert page.locator(f"a[href*='{HOST}']").count() == 0
    assert page.locator(f"img[src*='{HOST}']").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_a_hostile_query_is_shown_as_text(browser: Any, server: Any) -> None:
    from playwright.sync_api import expect

    page, requests = _page(browser, server)
    page.locator("#run-examples").locator("tbody tr, button.example, .gallery-item").first.click()
    expect(page.get_by_label("Query").first).not_to_have_value("", timeout=15_000)
    page.get_by_label("Query").first.fill(PAYLOAD)
    page.locator("#run-button").click()
    status = page.locator("#run-status")
    expect(status).to_contain_text("Done", timeout=90_000)
    expect(status).to_contain_text(f"![x](http://{HOST}/pixel.png)")  # the query, as typed
    expect(status).to_contain_text("<script>window.__pwned=1</script>")
    _assert_inert(page, requests)
    page.close()


def test_a_hostile_trace_is_shown_as_text(browser: Any, server: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    lines = [json.loads(x) for x in sorted(TRACES_DIR.glob("*.jsonl"))[0].read_text().splitlines() if x]
    for data in lines:
        if data["type"] == "run_started":
            data["query"] = PAYLOAD
        if data["type"] == "reasoning_done":
            data["think"] = data["answer"] = "```\n" + PAYLOAD + "\n```"
    lines.insert(1, {"type": "warning", "stage": "run", "for_stage": "sampler", "message": PAYLOAD})
    trace = tmp_path / "shared.jsonl"
    trace.write_text("\n".join(json.dumps(d) for d in lines) + "\n")
    page, requests = _page(browser, server)
    page.get_by_role("tab", name="Inspect").click()
    page.locator("input[type=file][accept*='.jsonl']").set_input_files(str(trace))
    page.wait_for_timeout(1500)
    page.locator("#replay-button").click()
    expect(page.get_by_text("Done:").first).to_be_visible(timeout=60_000)
    # the query, the warning and the model's answer (its code fence included) read as written
    expect(page.get_by_text(f"[click](http://{HOST}/link)").first).to_be_attached()
    assert page.locator("pre.vs-answer").first.inner_text().startswith("```")
    _assert_inert(page, requests)
    page.close()


def test_hostile_expression_texts_in_a_zip_are_shown_as_text(
    browser: Any, server: Any, tmp_path: Path
) -> None:
    """Inspect ranks a zip whose expression text is the payload: the ranking, the selector and the
    diagnosis show it as written."""
    import zipfile

    from playwright.sync_api import expect

    source = server.ctx.examples[0].directory
    archive = tmp_path / "predictions.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("d/expressions.json", json.dumps([{"id": "0", "text": PAYLOAD, "obj_ids": [1]}]))
        for png in sorted((source / "Annotations").glob("*.png")):
            z.write(png, f"d/Annotations/{png.name}")
            z.write(png, f"d/pred/0/{png.name}")  # the ground truth as its own prediction
    page, requests = _page(browser, server)
    page.get_by_role("tab", name="Inspect").click()
    page.get_by_role("tab", name="Rank failures").click()
    page.locator("input[type=file][accept*='.zip']").set_input_files(str(archive))
    page.wait_for_timeout(1500)
    page.locator("#inspect-button").click()
    expect(page.get_by_text("Ranked 1 expression").first).to_be_visible(timeout=60_000)
    expect(page.get_by_text(f"[click](http://{HOST}/link)").first).to_be_attached()
    _assert_inert(page, requests)
    page.close()


@pytest.mark.parametrize(
    "name",
    [".hidden.mp4", "with  spaces.mp4", "ünïcødé 視頻.mp4", "n" * 200 + ".mp4"],
)
def test_uploads_with_any_legal_name_run(browser: Any, server: Any, name: str) -> None:
    from playwright.sync_api import expect

    folder = Path(tempfile.mkdtemp(prefix="videoseg-names-"))
    video = folder / name
    shutil.copy(server.ctx.examples[0].video, video)
    page, _ = _page(browser, server)
    page.locator("input[type=file]").first.set_input_files(str(video))
    status = page.locator("#run-status")
    expect(page.locator("video").first).to_be_attached(timeout=30_000)
    page.wait_for_timeout(1500)
    page.get_by_label("Query").first.fill(server.ctx.examples[0].expressions[0]["text"])
    page.locator("#run-button").click()
    expect(status).to_contain_text("Done", timeout=90_000)
    expect(status).not_to_contain_text("Starting")
    page.close()
    shutil.rmtree(folder, ignore_errors=True)


def test_a_name_without_extension_is_refused_in_words(browser: Any, server: Any) -> None:
    """The browser cannot tell such a file is a video: Gradio's upload refuses it with a warning
    naming the file, and the Run tab stays usable (no "Starting…" left behind)."""
    from playwright.sync_api import expect

    folder = Path(tempfile.mkdtemp(prefix="videoseg-names-"))
    video = folder / "noextension"
    shutil.copy(server.ctx.examples[0].video, video)
    page, _ = _page(browser, server)
    page.locator("input[type=file]").first.set_input_files(str(video))
    expect(page.get_by_text("Invalid file type").first).to_be_visible(timeout=30_000)
    page.get_by_label("Query").first.fill("the red square")
    page.locator("#run-button").click()
    expect(page.locator("#run-status")).to_contain_text("No video given", timeout=30_000)
    page.close()
    shutil.rmtree(folder, ignore_errors=True)


def test_a_hostile_file_name_is_refused_in_words(browser: Any, server: Any) -> None:
    from playwright.sync_api import expect

    folder = Path(tempfile.mkdtemp(prefix="videoseg-names-"))
    video = folder / f'<img src=x onerror="window.__pwned=3">[a](http:{HOST}).mp4'
    video.write_text("not a video")
    page, requests = _page(browser, server)
    page.locator("input[type=file]").first.set_input_files(str(video))
    status = page.locator("#run-status")
    expect(status).to_contain_text("cannot be used", timeout=30_000)
    # Gradio's upload drops '<', '>' and ':' from the name; the rest is shown as typed, not as a link
    expect(status).to_contain_text("img src=x onerror=")
    expect(status).to_contain_text("[a](http")
    _assert_inert(page, requests)
    page.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(("width", "height"), [(1400, 900), (390, 844)])
def test_after_run_the_status_is_where_the_visitor_looks(
    browser: Any, server: Any, width: int, height: int
) -> None:
    from playwright.sync_api import expect

    shots = Path(tempfile.mkdtemp(prefix="videoseg-first-screen-"))
    page, _ = _page(browser, server, width, height)
    page.locator("#run-examples").locator("tbody tr, button.example, .gallery-item").first.click()
    expect(page.get_by_label("Query").first).not_to_have_value("", timeout=15_000)
    button = page.locator("#run-button")
    button.scroll_into_view_if_needed()
    button.click()
    status = page.locator("#run-status")
    expect(status).to_contain_text("Done", timeout=90_000)
    page.screenshot(path=str(shots / f"run-{width}.png"))
    print(f"\nscreenshot: {shots / f'run-{width}.png'}")
    box = status.bounding_box()
    assert box is not None and 0 <= box["y"] < height - 20, box  # on screen without scrolling
    page.close()

"""What a visitor reads in a Markdown status: the text after rendering (CommonMark, as Gradio's
renderer reads it), with code spans shown between backticks so that messages can be compared with
the words the explorer writes (``The `paper` preset ...``)."""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

_RENDER = MarkdownIt("commonmark")


def rendered(markdown: str) -> str:
    """The HTML that ``markdown`` renders to."""
    return _RENDER.render(markdown)


def plain(markdown: str | None) -> str:
    """The text a visitor reads in ``markdown`` (tags dropped, character references decoded)."""
    if not markdown:
        return ""
    out = re.sub(r"<code>(.*?)</code>", r"`\1`", rendered(markdown), flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", out)).strip()

"""Text from users and from traces, shown as text (the explorer around all three paper steps).

Statuses, reasoning panels and diagnoses are Markdown (or HTML) components, and the text they show
comes from outside: a query, a file name, a model's answer, a message or any field of a shared
trace. Written into Markdown as is, ``![x](http://host/pixel.png)`` makes every visitor's browser
fetch a remote image, ``[click](http://…)`` becomes a live link and ``<img onerror=…>`` an element.
:func:`md` turns any text into Markdown that shows exactly that text and nothing else; :func:`code`
and :func:`pre` do the same in a code face (one line, many lines), :func:`html_text` for HTML
components, :func:`warn` for toasts (Gradio renders a toast's message as HTML). Every place in
:mod:`videoseg.ui` that puts outside text into a page goes through these.
"""

from __future__ import annotations

import html
import re
from typing import Any

import gradio as gr

# Characters that start Markdown or HTML syntax anywhere in a line (CommonMark + GFM: emphasis,
# code, links and images, HTML, tables, strike-through, headings, e-mail autolinks): each becomes a
# numeric character reference, which a Markdown renderer shows as the character itself and never
# reads as syntax. A backslash escape would not do: GFM links bare URLs whatever precedes them.
_ALWAYS = set("\\`*_{}[]<>&!|~#@")
_TABLE = {ord(c): f"&#{ord(c)};" for c in _ALWAYS}
_BLOCK = dict(_TABLE)  # for <pre> blocks: the line breaks stay
_TABLE.update({ord("\n"): " ", ord("\r"): " ", ord("\t"): " "})
# Bare-URL autolinks ("http://host", "ftp://", "mailto:x", "www.host"): their ':' or '.' is broken,
# other colons ("Error: ...", "trace.jsonl:3") are left alone. Block syntax ("- ", "1. ", "+", "=")
# only counts at the start of a line, which is where the text starts.
_AUTOLINK = re.compile(r":(?=//)|(?<=mailto):|(?<=xmpp):|(?<=www)\.", re.IGNORECASE)
_LINE_START = re.compile(r"^(?:[-+=]|\d+(?=[.)]))")
MAX_SHOWN_CHARS = 2_000  # outside text longer than this is cut (with an ellipsis) where it is shown


def _inert(text: str, table: dict[int, str]) -> str:
    text = _AUTOLINK.sub(lambda m: f"&#{ord(m.group())};", text.translate(table))
    return _LINE_START.sub(lambda m: "".join(f"&#{ord(c)};" for c in m.group()), text)


def md(value: Any, limit: int | None = MAX_SHOWN_CHARS, code_spans: bool = False) -> str:
    """``value`` (made a string) as inert Markdown on one line: what it says, shown literally.

    ``code_spans``: the message's own ```name``` spans are shown in a code face (their contents
    as inert as the rest); for the explorer's messages, which quote presets and files that way."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    if not code_spans or text.count("`") < 2:
        return _inert(text, _TABLE)
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an odd number of backticks: the last one is a character
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    return "".join(
        _inert(part, _TABLE) if i % 2 == 0 else f"<code>{_inert(part, _TABLE)}</code>"
        for i, part in enumerate(parts)
    )


def html_text(value: Any, limit: int | None = MAX_SHOWN_CHARS) -> str:
    """``value`` as HTML text (for ``gr.HTML`` and the ``<pre>`` blocks inside Markdown)."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=False)  # for text between tags, where quotes mean nothing


def code(value: Any, limit: int | None = 200) -> str:
    """``value`` in a code face inside Markdown. Not a backtick span: in one, character references
    are shown as typed, and a backtick in the value would end the span early."""
    return f"<code>{md(value, limit)}</code>"


def pre(value: Any, css_class: str = "vs-reason", limit: int | None = None) -> str:
    """A ``<pre>`` block showing ``value`` (many lines, kept) as text, inside Markdown or HTML."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"<pre class='{css_class}'>{_inert(text, _BLOCK)}</pre>"


def warn(message: Any) -> None:
    """A Gradio warning toast showing ``message`` as text: toasts render their message as HTML."""
    gr.Warning(html_text(message))


__all__ = ["MAX_SHOWN_CHARS", "code", "html_text", "md", "pre", "warn"]

"""Drawing the paper's step 2 and 3 outputs on frames: target cues and masks.

Cues (step 2) are drawn per target in one colour: the box as a rectangle, the positive centre point
as a filled disc with a "+", each negative point as a hollow disc with a "−". Masks (steps 3a/3b) are
blended in the same colour with a solid contour, so a target keeps its colour across the cues image,
the keyframe mask, the propagated video and the text legend (:func:`cues_legend_html`).

The keyframe-mask panel (step 3a, :func:`keyframe_overlay`) shows the mask first: its cues are drawn
thin and hollow *under* the translucent mask, whose outline goes on top, so a small target (~30 px)
is not hidden by the markers that the step 2 panel draws at full size.

All functions take and return (H, W, 3) uint8 RGB arrays and never modify their input. Coordinates
are pixels of the frame being drawn on (the original video's pixels for event data).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from videoseg.core.cues import TargetCues
from videoseg.core.masks import mask_box

# Bright, mutually distinct colours that stay visible on the shapes world's saturated objects
# (the contour in the same colour, plus a dark outline on markers, keeps them readable on any colour).
TARGET_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 59, 48),  # red
    (10, 132, 255),  # blue
    (48, 209, 88),  # green
    (255, 214, 10),  # yellow
    (191, 90, 242),  # purple
    (255, 159, 10),  # orange
    (100, 210, 255),  # cyan
    (255, 55, 95),  # pink
)
TARGET_FRAME_COLOUR = (255, 214, 10)
REFERENCE_FRAME_COLOUR = (100, 210, 255)
KEY_FRAME_COLOUR = (160, 160, 160)


def target_colour(target: int) -> tuple[int, int, int]:
    """RGB colour of 0-based target index ``target`` (cycles after eight targets)."""
    return TARGET_COLOURS[int(target) % len(TARGET_COLOURS)]


def target_hex(target: int) -> str:
    r, g, b = target_colour(target)
    return f"#{r:02x}{g:02x}{b:02x}"


def _as_cues(item: TargetCues | dict[str, Any]) -> TargetCues:
    return item if isinstance(item, TargetCues) else TargetCues.from_dict(item)


def _check_frame(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")


def _scale(frame: np.ndarray) -> float:
    # Line widths and marker sizes grow with the frame so they read the same on 240p and 1080p.
    return max(frame.shape[0], frame.shape[1]) / 640.0


def overlay_masks(
    frame: np.ndarray,
    masks: np.ndarray | Sequence[np.ndarray],
    alpha: float = 0.45,
    contour: bool = True,
    colour_offset: int = 0,
) -> np.ndarray:
    """Blend (K, H, W) bool masks over ``frame``, target i in :func:`target_colour` (i + offset)."""
    _check_frame(frame)
    out = frame.copy()
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.shape[1:] != frame.shape[:2]:
        raise ValueError(f"masks {masks.shape[1:]} do not match frame {frame.shape[:2]}")
    thickness = max(1, round(2 * _scale(frame)))
    height, width = frame.shape[:2]
    for i, mask in enumerate(masks):
        box = mask_box(mask)
        if box is None:
            continue
        # Blend and trace inside the mask's box only (padded by a pixel, so the contour tracing
        # sees the same neighbourhood): a target covers a small part of a 1080p frame, and the
        # long-video overlay is written at the pipeline's pace (tests/io/test_export.py checks
        # the result equals the whole-frame computation).
        x0, y0 = max(box[0] - 1, 0), max(box[1] - 1, 0)
        x1, y1 = min(box[2] + 2, width), min(box[3] + 2, height)
        part, sub = mask[y0:y1, x0:x1], out[y0:y1, x0:x1]
        colour = np.array(target_colour(i + colour_offset), dtype=np.float32)
        region = sub[part].astype(np.float32)
        sub[part] = np.clip(region * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
        if contour:
            found, _ = cv2.findContours(
                part.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0)
            )
            cv2.drawContours(out, found, -1, tuple(int(c) for c in colour), thickness, cv2.LINE_AA)
    return out


def marker_radius(frame: np.ndarray) -> int:
    """Radius in pixels of the + / − point markers on this frame."""
    return max(7, round(9 * _scale(frame)))


def _marker(img: np.ndarray, x: float, y: float, colour: tuple[int, int, int], sign: str, s: float) -> None:
    centre = (round(x), round(y))
    radius = marker_radius(img)
    arm = max(3, round(radius * 0.6))
    bar = max(1, round(1.5 * s))
    if sign == "+":
        cv2.circle(img, centre, radius + 1, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(img, centre, radius, colour, -1, cv2.LINE_AA)
        cv2.line(img, (centre[0] - arm, centre[1]), (centre[0] + arm, centre[1]), (0, 0, 0), bar)
        cv2.line(img, (centre[0], centre[1] - arm), (centre[0], centre[1] + arm), (0, 0, 0), bar)
    else:
        # Hollow, so a negative point never hides the pixel it excludes.
        ring = max(1, round(1.5 * s))
        cv2.circle(img, centre, radius, (0, 0, 0), ring + 2, cv2.LINE_AA)
        cv2.circle(img, centre, radius, colour, ring, cv2.LINE_AA)
        cv2.line(img, (centre[0] - arm, centre[1]), (centre[0] + arm, centre[1]), colour, bar)


def _corners(box: Sequence[float]) -> tuple[tuple[int, int], tuple[int, int]]:
    """A box's top-left and bottom-right pixel corners, as OpenCV draws them."""
    return (round(box[0]), round(box[1])), (round(box[2]), round(box[3]))


def draw_cues(
    frame: np.ndarray, cues: Sequence[TargetCues | dict[str, Any]], pending: Sequence[float] | None = None
) -> np.ndarray:
    """Draw each target's box, + centre and − negative points in the target's colour.

    The colour index is ``obj_id - 1`` so the same target has the same colour everywhere.
    ``pending`` is an optional first box corner (x, y) of a box being clicked (interactive tab).
    """
    _check_frame(frame)
    out = frame.copy()
    s = _scale(frame)
    line = max(1, round(2 * s))
    for item in cues:
        c = _as_cues(item)
        colour = target_colour(c.obj_id - 1)
        if c.box is not None:
            p1, p2 = _corners(c.box)
            cv2.rectangle(out, p1, p2, (0, 0, 0), line + 2, cv2.LINE_AA)
            cv2.rectangle(out, p1, p2, colour, line, cv2.LINE_AA)
            label = f"{c.obj_id}"
            cv2.putText(
                out,
                label,
                (p1[0] + 2, p1[1] + round(14 * s) + 2),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5 * max(s, 0.6),
                colour,
                max(1, line - 1),
                cv2.LINE_AA,
            )
        for px, py in c.positive_points:
            _marker(out, px, py, colour, "+", s)
        for p in c.negatives:
            _marker(out, p[0], p[1], colour, "-", s)
    if pending is not None:
        x, y = round(pending[0]), round(pending[1])
        arm = max(4, round(8 * s))
        cv2.line(out, (x - arm, y), (x + arm, y), (255, 255, 255), line)
        cv2.line(out, (x, y - arm), (x, y + arm), (255, 255, 255), line)
    return out


def light_cues_marker_size(frame: np.ndarray) -> int:
    """Half-length in pixels of the thin + / ring markers of :func:`keyframe_overlay`."""
    return max(3, round(4 * _scale(frame)))


def keyframe_overlay(
    frame: np.ndarray,
    masks: np.ndarray | Sequence[np.ndarray],
    cues: Sequence[TargetCues | dict[str, Any]],
    alpha: float = 0.5,
) -> np.ndarray:
    """The step 3a keyframe mask with the cues it came from, the mask in front.

    Cues are drawn first and light (1-pixel box without label, a small white "+" for the centre, a
    small ring with a bar for a negative point), then the (K, H, W) masks are blended over them with
    their contour on top. Unlike :func:`draw_cues` (the step 2 panel), nothing here is filled, so
    the mask of even a ~30-pixel target stays visible.
    """
    _check_frame(frame)
    out = frame.copy()
    s = _scale(frame)
    thin = max(1, round(s))
    arm = light_cues_marker_size(frame)
    for item in cues:
        c = _as_cues(item)
        colour = target_colour(c.obj_id - 1)
        if c.box is not None:
            cv2.rectangle(out, *_corners(c.box), colour, thin, cv2.LINE_AA)
        if c.point is not None:
            x, y = round(c.point[0]), round(c.point[1])
            # white on a black shadow: readable through the tint of the target's own colour
            for col, dx in (((0, 0, 0), 1), ((255, 255, 255), 0)):
                cv2.line(out, (x - arm + dx, y + dx), (x + arm + dx, y + dx), col, thin)
                cv2.line(out, (x + dx, y - arm + dx), (x + dx, y + arm + dx), col, thin)
        for p in c.negatives:
            x, y = round(p[0]), round(p[1])
            cv2.circle(out, (x, y), arm, colour, thin, cv2.LINE_AA)
            cv2.line(out, (x - arm // 2, y), (x + arm // 2, y), colour, thin)
    return overlay_masks(out, masks, alpha=alpha, contour=True)


def mark_frame(frame: np.ndarray, colour: tuple[int, int, int], width: int | None = None) -> np.ndarray:
    """A coloured border inside the frame (gallery: target / reference / key frames)."""
    _check_frame(frame)
    out = frame.copy()
    w = width if width is not None else max(3, round(5 * _scale(frame)))
    out[:w], out[-w:], out[:, :w], out[:, -w:] = colour, colour, colour, colour
    return out


def contact_sheet(
    tiles: Sequence[np.ndarray],
    filled: Sequence[bool],
    labels: Sequence[str] | None = None,
    highlight: int | None = None,
    columns: int = 12,
    top_band: bool = False,
    label_scale: float = 0.5,
) -> np.ndarray:
    """Tiles on a grid, row-major; tiles not ``filled`` yet are shown dimmed and grey.

    All tiles must share one (h, w, 3) shape. ``highlight`` (a tile index, e.g. the keyframe) gets a
    yellow border. ``labels`` (e.g. frame numbers) are written in a dark band *under* each tile, in
    white at ``label_scale`` (OpenCV font scale), so they never cover the thumbnail; the
    ``highlight`` tile's label is yellow. ``top_band`` adds an empty dark band on top (a tenth of
    the height): the UI floats its panel label and buttons over the image's top edge, which then
    cover the band instead of the first row of tiles. Used for the propagation strip that fills
    in both directions from the keyframe.
    """
    if not tiles:
        raise ValueError("no tiles")
    if labels is not None and len(labels) != len(tiles):
        raise ValueError(f"{len(labels)} labels for {len(tiles)} tiles")
    h, w = tiles[0].shape[:2]
    cols = max(1, min(columns, len(tiles)))
    rows = (len(tiles) + cols - 1) // cols
    gap = 2
    font = cv2.FONT_HERSHEY_SIMPLEX
    (_, text_h), base = cv2.getTextSize("0123456789", font, label_scale, 1)
    band = text_h + base + 4 if labels is not None else 0
    head = max(round(0.1 * rows * (h + band + gap)), 12) if top_band else 0
    cell_h = h + band
    sheet = np.full((head + rows * (cell_h + gap) + gap, cols * (w + gap) + gap, 3), 24, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        if tile.shape[:2] != (h, w):
            raise ValueError("tiles differ in size")
        img = tile
        if not filled[i]:
            grey = tile.mean(axis=2, keepdims=True).astype(np.float32)
            img = (grey * 0.35 + 20).astype(np.uint8).repeat(3, axis=2)
        if highlight is not None and i == highlight:
            img = mark_frame(img, TARGET_FRAME_COLOUR, width=2)
        r, c = divmod(i, cols)
        y, x = head + gap + r * (cell_h + gap), gap + c * (w + gap)
        sheet[y : y + h, x : x + w] = img
        if labels is not None:
            # the keyframe's number in the highlight colour, the others white (dimmed until filled)
            colour = (
                TARGET_FRAME_COLOUR if i == highlight else (255, 255, 255) if filled[i] else (150, 150, 150)
            )
            cv2.putText(
                sheet, labels[i], (x + 2, y + h + 2 + text_h), font, label_scale, colour, 1, cv2.LINE_AA
            )
    return sheet


def _fmt(values: Sequence[float] | None) -> str:
    return "–" if values is None else "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


def cues_legend_html(cues: Sequence[TargetCues | dict[str, Any]], frame_idx: int | None = None) -> str:
    """One line per target, in the target's colour: box, + centre and − negative points."""
    if not cues:
        return "<p><em>No cues.</em></p>"
    head = f"<p>Cues on frame <b>{frame_idx}</b> (original pixels):</p>" if frame_idx is not None else ""
    rows = []
    for item in cues:
        c = _as_cues(item)
        colour = target_hex(c.obj_id - 1)
        negs = ", ".join(_fmt(p) for p in c.negatives) or "–"
        rows.append(
            f'<li><span style="color:{colour};font-weight:bold">■ target {c.obj_id}</span>: '
            f"box {html.escape(_fmt(c.box))}, + centre {html.escape(_fmt(c.point))}, − negative {negs}</li>"
        )
    return head + "<ul>" + "".join(rows) + "</ul>"


__all__ = [
    "KEY_FRAME_COLOUR",
    "REFERENCE_FRAME_COLOUR",
    "TARGET_COLOURS",
    "TARGET_FRAME_COLOUR",
    "contact_sheet",
    "cues_legend_html",
    "draw_cues",
    "keyframe_overlay",
    "light_cues_marker_size",
    "mark_frame",
    "marker_radius",
    "overlay_masks",
    "target_colour",
    "target_hex",
]

"""Classical perception for the shapes world: detection, tracking and event detection from pixels.

This is what the symbolic VideoQA (:mod:`videoseg.shapes.symbolic.model`) "sees" when it answers the HTFS
sampler (paper step 1) and reasons about cues (paper step 2). It never reads the generator's ground
truth: only the RGB frames it is handed, which may be a sparse subsample of the video.

1. Detection (:func:`detect`): saturated pixels (HSV) are labelled with the nearest palette hue,
   cleaned by a morphological opening (H.264 blurs colour at edges), split into connected
   components, and each component's shape is classified from its contour geometry: solidity (stars
   are concave), fill of the bounding box (squares ~1, circles ~pi/4, triangles and diamonds ~1/2, up to 0.65
   with corners rounded by compression)
   and the vertical position of the centroid (a triangle's centroid sits low in its box).
2. Tracking (:func:`track`): detections are linked frame to frame per colour by Hungarian matching
   of distances to the last and the predicted positions, with a shape-mismatch penalty and a gate
   that grows with the time gap (frames may be seconds apart).
3. Events (:func:`build_world`): from each track's reliable positions (not clipped by the border,
   not occluded) it finds turns (heading change of 60..130 degrees; the sign of the cross product
   gives left / right, see :mod:`videoseg.shapes.world.grammar`), stops (moving, then still to the end),
   appearances / departures (first / last seen later / earlier than the clip's ends) and occlusions
   (visible area drops below 60 % of its full area, or the track vanishes, next to another object).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from videoseg.shapes.world.grammar import COLOURS, TrackFacts, World

MIN_SATURATION = 95
MIN_VALUE = 70
MIN_SEGMENT_S = 0.3  # motion is measured over steps at least this long
MAX_HUE_DISTANCE = 9  # OpenCV hue units (0..179); palette hues are >= 11 apart
_PALETTE_HUES = {
    name: int(cv2.cvtColor(np.uint8([[rgb]]), cv2.COLOR_RGB2HSV)[0, 0, 0]) for name, rgb in COLOURS.items()
}


@dataclass
class Detection:
    """One connected component of one palette colour in one frame (pixel coordinates).

    bbox: [x1, y1, x2, y2] of the extreme pixels (inclusive); centroid (x, y); label: its value
    in the frame's label map.
    """

    colour: str
    shape: str | None
    area: int
    centroid: tuple[float, float]
    bbox: tuple[int, int, int, int]
    touches_border: bool
    label: int


@dataclass
class FrameParse:
    detections: list[Detection]
    labels: np.ndarray  # (H, W) int32, detection.label where that detection is, 0 elsewhere

    def mask(self, det: Detection) -> np.ndarray:
        return self.labels == det.label


def classify_shape(mask: np.ndarray) -> str | None:
    """Shape name from a binary component mask (None when it is too small to tell)."""
    m = mask.astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    c = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(c)
    if area < 30:
        return None
    hull_area = cv2.contourArea(cv2.convexHull(c))
    solidity = area / max(hull_area, 1e-6)
    x, y, w, h = cv2.boundingRect(c)
    fill = float(m[y : y + h, x : x + w].sum()) / (w * h)
    if solidity < 0.75:
        return "star"
    if fill > 0.88:
        return "square"
    # Circles fill >= 0.745 of their box even after H.264; triangles and diamonds <= 0.65 (their corners
    # round off in compression, raising the fill): the cut sits in that gap.
    if fill > 0.70:
        return "circle"
    moments = cv2.moments(m[y : y + h, x : x + w], True)
    cy_rel = moments["m01"] / max(moments["m00"], 1e-6) / h
    return "triangle" if cy_rel > 0.565 else "diamond"


def detect(frame: np.ndarray, min_area: int = 30) -> FrameParse:
    """Detect the coloured shapes of one (H, W, 3) uint8 RGB frame."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {frame.shape}")
    H, W = frame.shape[:2]
    hsv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2HSV)
    hue = hsv[..., 0].astype(np.int16)
    saturated = (hsv[..., 1] >= MIN_SATURATION) & (hsv[..., 2] >= MIN_VALUE)
    labels = np.zeros((H, W), np.int32)
    detections: list[Detection] = []
    kernel = np.ones((3, 3), np.uint8)
    bridge = np.ones((9, 9), np.uint8)
    for name, ref in _PALETTE_HUES.items():
        d = np.abs(hue - ref)
        d = np.minimum(d, 180 - d)  # hue is circular (red wraps around 0)
        m = (saturated & (d <= MAX_HUE_DISTANCE)).astype(np.uint8)
        if m.sum() < min_area:
            continue
        m = cv2.morphologyEx(m, cv2.MORPH_OPEN, kernel)
        # pieces of one shape cut apart by a shape in front of it stay one component: bridge them
        # through the pixels of other colours next to them
        bridged = m | (cv2.dilate(m, bridge) & (saturated & ~m.astype(bool)).astype(np.uint8))
        n, comp = cv2.connectedComponents(bridged, connectivity=8)
        comp = np.where(m > 0, comp, 0)
        for k in range(1, n):
            comp_mask = comp == k
            area = int(comp_mask.sum())
            if area < min_area:
                continue
            ys, xs = np.nonzero(comp_mask)
            x, y, w, h = (
                int(xs.min()),
                int(ys.min()),
                int(xs.max() - xs.min() + 1),
                int(ys.max() - ys.min() + 1),
            )
            label = len(detections) + 1
            labels[comp_mask] = label
            border = x <= 0 or y <= 0 or x + w >= W or y + h >= H
            detections.append(
                Detection(
                    colour=name,
                    shape=None if border else classify_shape(comp_mask),
                    area=area,
                    centroid=(float(xs.mean()), float(ys.mean())),
                    bbox=(x, y, x + w - 1, y + h - 1),
                    touches_border=border,
                    label=label,
                )
            )
    return FrameParse(detections=detections, labels=labels)


class FrameCache:
    """Per-frame detections keyed by a hash of the frame's bytes (LRU, bounded).

    Only saves recomputation: a frame's parse depends on that frame alone, so answers still use
    exactly the frames a call is given.
    """

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, FrameParse] = OrderedDict()

    def parse(self, frame: np.ndarray) -> FrameParse:
        key = hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest() + bytes(
            str(frame.shape), "ascii"
        )
        hit = self._items.get(key)
        if hit is not None:
            self._items.move_to_end(key)
            return hit
        parse = detect(frame)
        self._items[key] = parse
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return parse


# --------------------------------------------------------------------------- tracking


@dataclass
class Track:
    """One object followed through the observed frames.

    obs: observation position (index into the frames list) -> Detection.
    """

    track_id: int
    colour: str
    obs: dict[int, Detection] = field(default_factory=dict)
    shape: str | None = None

    def full_area(self) -> float:
        """Area of the whole shape: the largest area seen away from the border."""
        areas = [d.area for d in self.obs.values() if not d.touches_border]
        return float(max(areas)) if areas else float(max(d.area for d in self.obs.values()))

    def complete(self, pos: int) -> bool:
        d = self.obs.get(pos)
        return d is not None and not d.touches_border and d.area >= 0.75 * self.full_area()


def _shape_vote(track: Track) -> str | None:
    full = track.full_area()
    votes: dict[str, float] = {}
    for d in track.obs.values():
        if d.shape is not None and not d.touches_border and d.area >= 0.8 * full:
            votes[d.shape] = votes.get(d.shape, 0.0) + d.area
    if not votes:  # only partial views: use whatever was classified
        for d in track.obs.values():
            if d.shape is not None:
                votes[d.shape] = votes.get(d.shape, 0.0) + d.area
    return max(votes, key=votes.get) if votes else None


def track(parses: list[FrameParse], times: list[float]) -> list[Track]:
    """Link detections of frames observed at ``times`` (seconds, increasing) into tracks."""
    tracks: list[Track] = []
    for pos, parse in enumerate(parses):
        for colour in {d.colour for d in parse.detections}:
            dets = [d for d in parse.detections if d.colour == colour]
            cands = [t for t in tracks if t.colour == colour]
            matched: set[int] = set()
            if cands:
                cost = np.full((len(cands), len(dets)), 1e6)
                for i, t in enumerate(cands):
                    last_pos = max(t.obs)
                    dt = times[pos] - times[last_pos]
                    if dt <= 0:
                        continue
                    last = np.array(t.obs[last_pos].centroid)
                    pred = last
                    earlier = sorted(p for p in t.obs if p < last_pos)
                    if earlier:
                        prev = np.array(t.obs[earlier[-1]].centroid)
                        v = (last - prev) / max(times[last_pos] - times[earlier[-1]], 1e-6)
                        pred = last + v * dt
                    gate = 40.0 + 130.0 * dt
                    shape_t = _shape_vote(t)
                    for j, d in enumerate(dets):
                        c = np.array(d.centroid)
                        dist = min(np.linalg.norm(c - last), np.linalg.norm(c - pred))
                        if dist > gate:
                            continue
                        penalty = 120.0 if (shape_t and d.shape and d.shape != shape_t) else 0.0
                        cost[i, j] = dist + penalty
                rows, cols = linear_sum_assignment(cost)
                for i, j in zip(rows, cols):
                    if cost[i, j] < 1e6:
                        cands[i].obs[pos] = dets[j]
                        matched.add(j)
            for j, d in enumerate(dets):
                if j not in matched:
                    tracks.append(Track(track_id=len(tracks) + 1, colour=colour, obs={pos: d}))
    for t in tracks:
        t.shape = _shape_vote(t)
    # one-frame specks (compression slivers) are not objects when there are several frames
    if len(parses) >= 4:
        tracks = [t for t in tracks if len(t.obs) >= 2 or next(iter(t.obs.values())).area >= 150]
    for i, t in enumerate(sorted(tracks, key=lambda t: (min(t.obs), t.obs[min(t.obs)].centroid[0]))):
        t.track_id = i + 1
    return sorted(tracks, key=lambda t: t.track_id)


# --------------------------------------------------------------------------- events


def _heading_events(times: list[float], points: list[np.ndarray], fps: float) -> tuple[list, float]:
    """Turn and stop events from reliable positions; also the typical speed (px/s)."""
    events: list[tuple[str, float]] = []
    segs = []
    for i in range(len(times) - 1):
        dt = times[i + 1] - times[i]
        d = points[i + 1] - points[i]
        dist = float(np.linalg.norm(d))
        # "moving" for headings; "fast" / "still" with a dead zone between them, so that a slow
        # drift plus compression jitter never reads as a stop
        # speeds are per frame; over long gaps (sparse frames of a long video) a displacement of a
        # few object widths is clearly motion whatever the speed, so the thresholds are capped
        moving = dist > max(3.0, min(0.5 * fps * dt, 25.0))
        fast = dist > max(3.0, min(1.0 * fps * dt, 40.0))
        still = dist <= max(2.0, min(0.15 * fps * dt, 10.0))
        segs.append((times[i], times[i + 1], d, dist, moving, fast, still))
    speeds = [s[3] / (s[1] - s[0]) for s in segs if s[4]]
    speed = float(np.median(speeds)) if speeds else 0.0
    # turns: compare each moving segment with the last stable heading
    stable: np.ndarray | None = None
    stable_end = 0.0
    for t0, t1, d, dist, moving, _, _ in segs:
        if not moving:
            continue
        h = d / dist
        if stable is None:
            stable, stable_end = h, t1
            continue
        cos = float(np.clip(stable @ h, -1, 1))
        angle = np.degrees(np.arccos(cos))
        if angle <= 30:
            stable, stable_end = h, t1
        elif 60 <= angle <= 130:
            cross = stable[0] * h[1] - stable[1] * h[0]
            kind = "turn_left" if cross < 0 else "turn_right"
            events.append((kind, (stable_end + t0) / 2 if t0 > stable_end else (t0 + t1) / 2))
            stable, stable_end = h, t1
        elif angle > 130:
            stable, stable_end = h, t1  # a reversal is not a turn
    # stop: moving, then still until the last observation (for at least half a second)
    fast_idx = [i for i, s in enumerate(segs) if s[5]]
    if fast_idx:
        k = fast_idx[-1]
        after = segs[k + 1 :]
        # the stop may fall inside one slow "straddling" segment; everything after it is still
        if after and after[0][6] is False and not after[0][5]:
            k, after = k + 1, after[1:]
        if after and all(s[6] for s in after) and after[-1][1] - after[0][0] >= 0.5:
            t0, t1, _, dist = segs[k][:4]
            prev = [segs[i] for i in fast_idx if i < k]
            v_prev = prev[-1][3] / (prev[-1][1] - prev[-1][0]) if prev else 0.0
            t_stop = t0 + dist / v_prev if v_prev > 0 else t1
            events.append(("stop", float(min(max(t_stop, t0), t1))))
    return events, speed


def _thin(positions: list[int], times: list[float], min_gap: float) -> list[int]:
    """Drop observations closer than ``min_gap`` s to the previous kept one (keep the last), so
    that motion is measured over steps long enough to beat centroid jitter."""
    kept: list[int] = []
    for p in positions:
        if not kept or times[p] - times[kept[-1]] >= min_gap:
            kept.append(p)
    if positions and kept[-1] != positions[-1]:
        kept.append(positions[-1])
    return kept


def _near(a: Detection, b: Detection, pad: int = 4) -> bool:
    return not (
        a.bbox[2] + pad < b.bbox[0]
        or b.bbox[2] + pad < a.bbox[0]
        or a.bbox[3] + pad < b.bbox[1]
        or b.bbox[3] + pad < a.bbox[1]
    )


def build_world(tracks: list[Track], times: list[float], fps: float) -> World:
    """Turn tracks into the facts the query resolver reasons over (times in seconds)."""
    facts = []
    n = len(times)
    for t in tracks:
        positions = sorted(t.obs)
        full = t.full_area()
        reliable = _thin([p for p in positions if t.complete(p)], times, MIN_SEGMENT_S)
        events, speed = _heading_events(
            [times[p] for p in reliable], [np.array(t.obs[p].centroid) for p in reliable], fps
        )
        first, last = positions[0], positions[-1]
        if first > 0:
            events.append(("appear", (times[first - 1] + times[first]) / 2))
        if last < n - 1:
            events.append(("leave", (times[last] + times[last + 1]) / 2))
        hidden: set[int] = set()
        for pos in range(first, last + 1):
            d = t.obs.get(pos)
            if d is not None and (d.touches_border or d.area >= 0.6 * full):
                continue
            # partly or fully hidden here: who is on top of where it should be?
            if d is None:
                before = max(p for p in positions if p < pos)
                after = min(p for p in positions if p > pos)
                w = (times[pos] - times[before]) / max(times[after] - times[before], 1e-6)
                c = (1 - w) * np.array(t.obs[before].centroid) + w * np.array(t.obs[after].centroid)
                r = np.sqrt(full) / 2
                probe = Detection(
                    t.colour,
                    None,
                    0,
                    tuple(c),
                    (int(c[0] - r), int(c[1] - r), int(c[0] + r), int(c[1] + r)),
                    False,
                    0,
                )
            else:
                probe = d
            for other in tracks:
                od = other.obs.get(pos)
                if other is t or od is None or not _near(probe, od):
                    continue
                if od.area >= 0.75 * other.full_area():
                    hidden.add(other.track_id)
        facts.append(
            TrackFacts(
                obj_id=t.track_id,
                colour=t.colour,
                shape=t.shape,
                first=times[first],
                last=times[last],
                events=sorted(events, key=lambda e: e[1]),
                hidden_behind=sorted(hidden),
                speed=speed,
            )
        )
    return World(tracks=facts, start=times[0] if times else 0.0, end=times[-1] if times else 0.0)


@dataclass
class Perception:
    """Everything perceived in one set of frames."""

    frame_indices: list[int]
    times: list[float]
    parses: list[FrameParse]
    tracks: list[Track]
    world: World

    def track(self, track_id: int) -> Track:
        return next(t for t in self.tracks if t.track_id == track_id)

    def position(self, frame_idx: int) -> int | None:
        try:
            return self.frame_indices.index(frame_idx)
        except ValueError:
            return None


def perceive(
    frames: np.ndarray, frame_indices: list[int], fps: float, cache: FrameCache | None = None
) -> Perception:
    """Detect, track and extract events from frames (N, H, W, 3) at increasing ``frame_indices``."""
    if len(frames) != len(frame_indices):
        raise ValueError("frames and frame_indices differ in length")
    order = sorted(range(len(frame_indices)), key=lambda i: frame_indices[i])
    idx = [int(frame_indices[i]) for i in order]
    parse = cache.parse if cache is not None else detect
    parses = [parse(frames[i]) for i in order]
    times = [i / fps for i in idx]
    tracks = track(parses, times)
    world = build_world(tracks, times, fps)
    return Perception(idx, times, parses, tracks, world)

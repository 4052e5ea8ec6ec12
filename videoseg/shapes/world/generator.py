"""Procedural shapes-world videos with ground truth (the weights-free test bed for every paper step).

:func:`generate` builds a short video of coloured shapes on a plain, mildly textured background:
they move, turn by +-90 degrees, stop, appear (popping in or entering through the border), leave,
pass behind each other and move fast, among distractors of the same colour or shape. Everything is
drawn from one geometry: the frames (anti-aliased) and the ground-truth masks (visible pixels only,
z-order respected; value = object id, 0 = background). Expressions are built as
:class:`~videoseg.shapes.world.grammar.Query` structures, rendered to text, and kept only when resolving
them over the ground-truth facts names exactly their objects (unambiguous), so the referring and
reasoning expressions have one right answer.

Everything is a pure function of ``seed`` (a ``numpy.random.Generator``): the same seed gives the
same frames, masks and expressions byte for byte. ``Scenario.save`` writes the DAVIS layout
(``video.mp4``, ``Annotations/%05d.png``, ``expressions.json``, ``meta.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from videoseg.shapes.world.grammar import (
    COLOURS,
    SHAPES,
    EventRef,
    ObjectRef,
    Query,
    TrackFacts,
    World,
    is_unambiguous,
    query_text,
)

FAMILIES: tuple[str, ...] = (
    "appears_after",
    "turn",
    "occlusion",
    "fast_motion",
    "distractor_colour",
    "distractor_shape",
    "multi_target",
    "absent_first_frame",
    "long",
)
# default number of frames per family (inclusive range drawn from the seed)
_FRAME_RANGE = {
    "appears_after": (72, 108),
    "turn": (60, 96),
    "occlusion": (60, 96),
    "fast_motion": (48, 84),
    "distractor_colour": (48, 84),
    "distractor_shape": (60, 96),
    "multi_target": (48, 84),
    "absent_first_frame": (60, 96),
    "long": (2000, 2400),
}
_MIN_FRAMES = {"appears_after": 60, "turn": 48, "occlusion": 48, "distractor_shape": 48, "long": 2000}
DEFAULT_SIZE = (320, 240)
LONG_SIZE = (192, 144)  # long videos stay cheap: small frames
DEFAULT_FPS = 12.0
VISIBLE_FRACTION = 0.25  # an object "is there" when at least this share of its area shows


# --------------------------------------------------------------------------- data types


@dataclass
class Expression:
    """One referring / reasoning expression and the ids of the objects it names."""

    id: str
    text: str
    type: str  # "referring" | "reasoning"
    obj_ids: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "type": self.type, "obj_ids": list(self.obj_ids)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Expression:
        return cls(
            id=str(data["id"]),
            text=str(data["text"]),
            type=str(data["type"]),
            obj_ids=[int(i) for i in data["obj_ids"]],
        )


@dataclass
class ObjectInfo:
    obj_id: int
    colour: str
    shape: str


@dataclass
class Scenario:
    """A generated (or loaded) video with its ground truth.

    frames: (T, H, W, 3) uint8 RGB; masks: (T, H, W) uint8 object ids (0 background, visible
    pixels only); facts: the ground-truth :class:`World` the expressions were checked against
    (None after :func:`load_scenario`).
    """

    frames: np.ndarray
    masks: np.ndarray
    fps: float
    expressions: list[Expression]
    family: str
    seed: int | None = None
    objects: list[ObjectInfo] = field(default_factory=list)
    facts: World | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    def expression_mask(self, expression: Expression) -> np.ndarray:
        """(T, H, W) bool union of the expression's objects (how MeViS / ReVOS score)."""
        return np.isin(self.masks, np.asarray(expression.obj_ids, dtype=np.uint8))

    def meta(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "family": self.family,
            "fps": self.fps,
            "width": self.size[0],
            "height": self.size[1],
            "num_frames": self.num_frames,
            "objects": [{"obj_id": o.obj_id, "colour": o.colour, "shape": o.shape} for o in self.objects],
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``video.mp4``, ``Annotations/%05d.png``, ``expressions.json`` and ``meta.json``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        _write_mp4(out / "video.mp4", self.frames, self.fps)
        _write_masks(out / "Annotations", self.masks)
        (out / "expressions.json").write_text(
            json.dumps([e.to_dict() for e in self.expressions], indent=1) + "\n"
        )
        (out / "meta.json").write_text(json.dumps(self.meta(), indent=1) + "\n")
        return out


def load_scenario(directory: str | Path) -> Scenario:
    """Read a folder written by :meth:`Scenario.save` (frames decoded from the mp4).

    Raises ValueError naming the missing or broken file.
    """
    d = Path(directory)
    for name in ("video.mp4", "expressions.json", "Annotations"):
        if not (d / name).exists():
            raise ValueError(f"{d} is not a shapes scenario: {name} is missing")
    try:
        expressions = [Expression.from_dict(e) for e in json.loads((d / "expressions.json").read_text())]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{d / 'expressions.json'} is not a list of expressions: {exc}") from exc
    meta = json.loads((d / "meta.json").read_text()) if (d / "meta.json").exists() else {}
    frames, fps = _read_mp4(d / "video.mp4")
    masks = _read_masks(d / "Annotations")
    if len(masks) != len(frames):
        raise ValueError(f"{d}: {len(frames)} video frames but {len(masks)} annotation PNGs")
    return Scenario(
        frames=frames,
        masks=masks,
        fps=float(meta.get("fps", fps)),
        expressions=expressions,
        family=str(meta.get("family", "unknown")),
        seed=meta.get("seed"),
        objects=[ObjectInfo(int(o["obj_id"]), o["colour"], o["shape"]) for o in meta.get("objects", [])],
    )


# --------------------------------------------------------------------------- video / PNG I/O


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    try:
        from videoseg.io.video import write_mp4
    except ImportError:  # the video module is written concurrently; same settings meanwhile
        _write_mp4_pyav(path, frames, fps)
        return
    write_mp4(path, iter(frames), fps)


def _write_mp4_pyav(path: Path, frames: np.ndarray, fps: float) -> None:
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "medium", "threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), "rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _read_mp4(path: Path) -> tuple[np.ndarray, float]:
    try:
        from videoseg.io.video import open_video
    except ImportError:
        import av

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or DEFAULT_FPS)
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return np.stack(frames), fps
    with open_video(path) as video:
        return video.frames(list(range(len(video)))), float(video.fps)


def _palette() -> list[int]:
    # the DAVIS palette (bit-interleaved VOC colours)
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal.extend((r, g, b))
    return pal


def _write_masks(directory: Path, masks: np.ndarray) -> None:
    try:
        from videoseg.io.video import write_mask_pngs
    except ImportError:
        from PIL import Image

        directory.mkdir(parents=True, exist_ok=True)
        pal = _palette()
        for i, m in enumerate(masks):
            img = Image.fromarray(m, mode="P")
            img.putpalette(pal)
            img.save(directory / f"{i:05d}.png", optimize=True)
        return
    write_mask_pngs(directory, iter(masks))


def _read_masks(directory: Path) -> np.ndarray:
    try:
        from videoseg.io.video import read_mask_pngs
    except ImportError:
        from PIL import Image

        files = sorted(directory.glob("*.png"))
        if not files:
            raise ValueError(f"no PNG masks in {directory}") from None
        return np.stack([np.asarray(Image.open(f)) for f in files]).astype(np.uint8)
    return read_mask_pngs(directory)


# --------------------------------------------------------------------------- geometry


def shape_polygon(shape: str, centre: tuple[float, float] | np.ndarray, size: float) -> np.ndarray:
    """(N, 2) float vertices of a shape of "radius" ``size`` around ``centre`` (x, y)."""
    cx, cy = float(centre[0]), float(centre[1])
    if shape == "circle":
        a = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(a), np.sin(a)], 1) * size
    elif shape == "square":
        h = size * 0.88
        pts = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    elif shape == "triangle":
        r = size * 1.25
        a = np.deg2rad(np.array([-90.0, 30.0, 150.0]))
        pts = np.stack([np.cos(a), np.sin(a)], 1) * r + [0, r * 0.2]  # pointing up, centred by area
    elif shape == "diamond":
        r = size * 1.2
        pts = np.array([[0, -r], [r, 0], [0, r], [-r, 0]])
    elif shape == "star":
        outer, inner = size * 1.3, size * 0.6
        a = np.deg2rad(-90.0 + 36.0 * np.arange(10))
        rad = np.where(np.arange(10) % 2 == 0, outer, inner)
        pts = np.stack([np.cos(a) * rad, np.sin(a) * rad], 1)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")
    return pts + np.array([cx, cy])


_SHIFT = 4  # sub-pixel bits for cv2.fillPoly


def _fill(img: np.ndarray, poly: np.ndarray, value: Any, antialias: bool) -> None:
    pts = np.round(poly * (1 << _SHIFT)).astype(np.int32)[None]
    cv2.fillPoly(img, pts, value, lineType=cv2.LINE_AA if antialias else cv2.LINE_8, shift=_SHIFT)


@dataclass
class _Obj:
    obj_id: int
    colour: str
    shape: str
    size: float
    pos: np.ndarray  # (T, 2) centre x, y
    present: np.ndarray  # (T,) bool: drawn at all (pop-in / pop-out)
    z: int = 0
    events: list[tuple[str, int]] = field(default_factory=list)  # scripted (kind, frame)


def _path(T: int, start: Iterable[float], legs: list[tuple[int, float, float]]) -> np.ndarray:
    """Positions (T, 2) from a start and legs (frames, vx, vy); after the last leg it stays still."""
    vel = np.zeros((T, 2))
    t = 0
    for n, vx, vy in legs:
        vel[t : t + n] = (vx, vy)
        t += n
    pos = np.zeros((T, 2))
    pos[0] = tuple(start)
    pos[1:] = pos[0] + np.cumsum(vel[:-1], axis=0)
    return pos


_HEADINGS = {0: (1.0, 0.0), 90: (0.0, -1.0), 180: (-1.0, 0.0), 270: (0.0, 1.0)}  # screen: 90 = up


def _turned(h: tuple[float, float], direction: str) -> tuple[float, float]:
    """Heading after turning left / right (mover's own view, y down; see grammar docstring)."""
    hx, hy = h
    return (hy, -hx) if direction == "left" else (-hy, hx)


class _Builder:
    """Places objects one by one with collision checks; raises _Retry when it cannot."""

    def __init__(
        self,
        rng: np.random.Generator,
        T: int,
        W: int,
        H: int,
        size_range: tuple[float, float],
        pace: float = 1.0,
    ):
        self.rng, self.T, self.W, self.H = rng, T, W, H
        self.size_range = size_range
        # Speeds are in pixels per frame and the scripted events happen at fractions of T, so a
        # path is ~speed x T long: in a clip longer than the family's range it would leave the
        # frame and no placement would succeed (all 80 attempts). ``pace`` (<= 1) slows every
        # mover down so its path keeps the share of the frame it has in the family's longest
        # default clip at the default size; 1.0 for clips of the family's default lengths.
        self.pace = pace
        self.objs: list[_Obj] = []
        self.margin = 6.0

    # ---- attribute choice
    def size(self, scale: float = 1.0) -> float:
        return float(self.rng.uniform(*self.size_range)) * scale

    def pick(self, colour: str | None = None, shape: str | None = None, avoid: Iterable[tuple] = ()):
        """A (colour, shape) pair not used yet (unless asked for) and not in ``avoid``."""
        used = {(o.colour, o.shape) for o in self.objs} | set(avoid)
        colours = [colour] if colour else list(COLOURS)
        shapes = [shape] if shape else list(SHAPES)
        pairs = [(c, s) for c in colours for s in shapes if (c, s) not in used]
        if not pairs:
            raise _Retry("no free colour/shape pair")
        return pairs[int(self.rng.integers(len(pairs)))]

    def fresh_colour(self, avoid: Iterable[str] = ()) -> str:
        used = {o.colour for o in self.objs} | set(avoid)
        free = [c for c in COLOURS if c not in used] or [c for c in COLOURS if c not in set(avoid)]
        return free[int(self.rng.integers(len(free)))]

    def fresh_shape(self, avoid: Iterable[str] = ()) -> str:
        used = {o.shape for o in self.objs} | set(avoid)
        free = [s for s in SHAPES if s not in used] or [s for s in SHAPES if s not in set(avoid)]
        return free[int(self.rng.integers(len(free)))]

    # ---- placement
    def inside(self, pos: np.ndarray, size: float, present: np.ndarray | None = None) -> bool:
        p = pos if present is None else pos[present]
        m = size * 1.3 + self.margin
        return bool(
            (p[:, 0] >= m).all()
            and (p[:, 0] <= self.W - m).all()
            and (p[:, 1] >= m).all()
            and (p[:, 1] <= self.H - m).all()
        )

    def clear(
        self, pos: np.ndarray, present: np.ndarray, size: float, colour: str, skip: Iterable[int] = ()
    ) -> bool:
        """No contact with objects placed so far (same colour: a wide berth, so they never merge)."""
        for o in self.objs:
            if o.obj_id in set(skip):
                continue
            both = present & o.present
            if not both.any():
                continue
            d = np.linalg.norm(pos[both] - o.pos[both], axis=1)
            need = 1.35 * (size + o.size) + 8 + (30 if o.colour == colour else 0)
            if (d < need).any():
                return False
        return True

    def add(
        self,
        colour: str,
        shape: str,
        size: float,
        pos: np.ndarray,
        present: np.ndarray | None = None,
        events: list[tuple[str, int]] | None = None,
        z: int = 0,
    ) -> _Obj:
        obj = _Obj(
            len(self.objs) + 1,
            colour,
            shape,
            size,
            pos,
            np.ones(self.T, bool) if present is None else present,
            z,
            list(events or []),
        )
        self.objs.append(obj)
        return obj

    def random_point(self, size: float, box: tuple[float, float, float, float] | None = None) -> np.ndarray:
        m = size * 1.3 + self.margin
        x0, y0, x1, y1 = box or (m, m, self.W - m, self.H - m)
        return np.array([self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)])

    def place(
        self,
        make: Callable[[], tuple[np.ndarray, np.ndarray, list[tuple[str, int]]]],
        colour: str,
        shape: str,
        size: float,
        tries: int = 60,
        check_inside: bool = True,
        z: int = 0,
        skip: Iterable[int] = (),
    ) -> _Obj:
        """Try ``make()`` (-> pos, present, events) until the path is inside and collision-free."""
        for _ in range(tries):
            pos, present, events = make()
            if check_inside and not self.inside(pos, size, present):
                continue
            if self.clear(pos, present, size, colour, skip):
                return self.add(colour, shape, size, pos, present, events, z)
        raise _Retry(f"could not place a {colour} {shape}")

    # ---- motion kinds
    def still_or_drift(self, size: float, max_speed: float = 0.6, box=None):
        def make():
            p0 = self.random_point(size, box)
            if self.rng.random() < 0.5:
                v = np.zeros(2)
            else:
                a = self.rng.uniform(0, 2 * np.pi)
                v = np.array([np.cos(a), np.sin(a)]) * self.rng.uniform(0.5 * max_speed, max_speed)
                v = v * self.pace
            return _path(self.T, p0, [(self.T, *v)]), np.ones(self.T, bool), []

        return make

    def turner(self, size: float, direction: str, t_turn: int, speed: tuple[float, float] = (1.6, 2.6)):
        def make():
            h0 = _HEADINGS[int(self.rng.choice([0, 90, 180, 270]))]
            h1 = _turned(h0, direction)
            v = self.rng.uniform(*speed) * self.pace
            n2 = self.T - t_turn
            leg1 = np.array(h0) * v * t_turn
            leg2 = np.array(h1) * v * n2
            # start so that the L-shaped path is centred in the frame
            pts = np.array([[0, 0], leg1, leg1 + leg2])
            mid = (pts.min(0) + pts.max(0)) / 2
            jitter = self.rng.uniform(-25, 25, 2)
            p0 = np.array([self.W / 2, self.H / 2]) - mid + jitter
            pos = _path(self.T, p0, [(t_turn, *(np.array(h0) * v)), (n2, *(np.array(h1) * v))])
            return pos, np.ones(self.T, bool), [(f"turn_{direction}", t_turn)]

        return make

    def stopper(self, size: float, t_stop: int, speed: tuple[float, float] = (1.6, 2.6)):
        def make():
            p0 = self.random_point(size)
            a = self.rng.uniform(0, 2 * np.pi)
            v = np.array([np.cos(a), np.sin(a)]) * self.rng.uniform(*speed) * self.pace
            return _path(self.T, p0, [(t_stop, *v)]), np.ones(self.T, bool), [("stop", t_stop)]

        return make

    def appearer(self, size: float, t_appear: int, enter: bool, speed: tuple[float, float] = (1.6, 2.4)):
        """Pops in at ``t_appear`` (still or drifting), or enters through a border from then on."""

        def make():
            present = np.arange(self.T) >= t_appear
            if not enter:
                p0 = self.random_point(size)
                v = np.zeros(2) if self.rng.random() < 0.5 else self.rng.uniform(-0.6, 0.6, 2) * self.pace
                pos = _path(self.T, p0, [(self.T, *v)])
                return pos, present, []
            side = int(self.rng.integers(4))
            m = size * 1.3 + self.margin
            n = self.T - t_appear
            if side in (0, 1):  # left / right border, moving horizontally
                travel = self.W - size - m
                v = min(self.rng.uniform(*speed) * self.pace, travel / max(n, 1))
                y = self.rng.uniform(m, self.H - m)
                start = (-size - 1, y) if side == 0 else (self.W + size + 1, y)
                vel = (v, 0.0) if side == 0 else (-v, 0.0)
            else:
                travel = self.H - size - m
                v = min(self.rng.uniform(*speed) * self.pace, travel / max(n, 1))
                x = self.rng.uniform(m, self.W - m)
                start = (x, -size - 1) if side == 2 else (x, self.H + size + 1)
                vel = (0.0, v) if side == 2 else (0.0, -v)
            if v < 0.7 * self.pace:
                return np.full((self.T, 2), -1e4), present, []  # too slow to enter: rejected
            pos = np.zeros((self.T, 2))
            pos[t_appear:] = _path(n, start, [(n, *vel)])
            pos[:t_appear] = start
            return pos, present, []

        return make


class _Retry(Exception):
    pass


# --------------------------------------------------------------------------- families

_Spec = tuple[Query, list[int]]


def _ref(o: _Obj, colour: bool = True, shape: bool = True, **kw: Any) -> ObjectRef:
    return ObjectRef(colour=o.colour if colour else None, shape=o.shape if shape else None, **kw)


def _distractors(b: _Builder, n: int, **kw: Any) -> None:
    for _ in range(n):
        c, s = b.pick()
        size = b.size()
        b.place(b.still_or_drift(size, **kw), c, s, size)


def _fam_turn(b: _Builder) -> list[_Spec]:
    T, rng = b.T, b.rng
    d_a = str(rng.choice(["left", "right"]))
    t_a = int(rng.integers(int(0.35 * T), int(0.6 * T)))
    ca, sa = b.pick()
    size = b.size()
    a = b.place(b.turner(size, d_a, t_a), ca, sa, size)
    specs: list[_Spec] = []
    if rng.random() < 0.5:
        d_b = "right" if d_a == "left" else "left"
        t_b = int(rng.integers(int(0.35 * T), int(0.6 * T)))
        cb, sb = b.pick()
        size = b.size()
        bo = b.place(b.turner(size, d_b, t_b), cb, sb, size)
        specs.append((Query((_ref(bo, colour=False, event=f"turn_{d_b}"),)), [bo.obj_id]))
    else:
        cb, sb = b.pick()
        size = b.size()
        bo = b.place(b.stopper(size, int(rng.integers(int(0.4 * T), int(0.7 * T)))), cb, sb, size)
        specs.append((Query((ObjectRef(event="stop"),)), [bo.obj_id]))
    _distractors(b, int(rng.integers(1, 3)))
    generic = rng.random() < 0.5
    specs.insert(0, (Query((_ref(a, colour=False, shape=not generic, event=f"turn_{d_a}"),)), [a.obj_id]))
    specs.append((Query((_ref(a),)), [a.obj_id]))
    return specs


def _event_mover(b: _Builder, t_e: int) -> tuple[_Obj, str]:
    c, s = b.pick()
    size = b.size()
    if b.rng.random() < 0.6:
        d = str(b.rng.choice(["left", "right"]))
        return b.place(b.turner(size, d, t_e), c, s, size), f"turn_{d}"
    return b.place(b.stopper(size, t_e), c, s, size), "stop"


def _fam_appears_after(b: _Builder) -> list[_Spec]:
    T, rng, fps = b.T, b.rng, DEFAULT_FPS
    t_e = int(rng.integers(int(0.22 * T), int(0.38 * T)))
    e, ev = _event_mover(b, t_e)
    t_x = int(rng.integers(t_e + int(1.5 * fps), max(t_e + int(1.5 * fps) + 1, int(0.72 * T))))
    cx, sx = b.pick(avoid=[(e.colour, e.shape)])
    size = b.size()
    x = b.place(b.appearer(size, t_x, enter=bool(rng.random() < 0.6)), cx, sx, size)
    # the same-shape distractor: there from the start, or appearing well before the event
    cd = b.fresh_colour(avoid=[cx])
    cd, sd = b.pick(colour=cd, shape=sx)
    size = b.size()
    t_d = t_e - int(1.6 * fps)
    if t_d > int(0.6 * fps) and rng.random() < 0.5:
        d = b.place(
            b.appearer(size, int(rng.integers(int(0.4 * fps), t_d)), enter=bool(rng.random() < 0.5)),
            cd,
            sd,
            size,
        )
    else:
        d = b.place(b.still_or_drift(size), cd, sd, size)
    if rng.random() < 0.5:
        _distractors(b, 1)
    specs = [
        (Query((_ref(x, colour=False, after=EventRef(_ref(e), ev)),)), [x.obj_id]),
        (Query((_ref(d),)), [d.obj_id]),
    ]
    if rng.random() < 0.5:
        specs.append((Query((_ref(e),)), [e.obj_id]))
    return specs


def _fam_occlusion(b: _Builder) -> list[_Spec]:
    T, rng = b.T, b.rng
    co, so = b.pick(shape=str(rng.choice(["square", "circle", "diamond"])))
    size_o = b.size(1.6)
    p_o = b.random_point(size_o, (b.W * 0.35, b.H * 0.35, b.W * 0.65, b.H * 0.65))
    o = b.add(co, so, size_o, _path(T, p_o, []), z=2)
    ch, sh = b.pick(avoid=[(co, s) for s in SHAPES])
    size_h = b.size(0.8)
    t_c = int(rng.integers(int(0.35 * T), int(0.65 * T)))

    def crossing():
        horizontal = rng.random() < 0.6
        sign = 1.0 if rng.random() < 0.5 else -1.0
        v = rng.uniform(1.4, 2.6) * b.pace
        off = rng.uniform(-0.25, 0.25) * size_o
        if horizontal:
            vel, start = (sign * v, 0.0), (p_o[0] - sign * v * t_c, p_o[1] + off)
        else:
            vel, start = (0.0, sign * v), (p_o[0] + off, p_o[1] - sign * v * t_c)
        return _path(T, start, [(T, *vel)]), np.ones(T, bool), []

    h = b.place(crossing, ch, sh, size_h, z=1, skip=[o.obj_id])
    cd = b.fresh_colour(avoid=[ch, co])
    cd, sd = b.pick(colour=cd, shape=sh)
    size = b.size(0.9)
    d = b.place(b.still_or_drift(size), cd, sd, size)
    return [
        (Query((_ref(h, colour=False, hidden_behind=_ref(o)),)), [h.obj_id]),
        (Query((_ref(o),)), [o.obj_id]),
        (Query((_ref(d),)), [d.obj_id]),
    ]


def _loop_path(
    T: int, rect: tuple[float, float, float, float], speed: float, clockwise: bool, phase: float
) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """A rectangular loop (screen clockwise turns right, see grammar) and its corner turn events."""
    x0, y0, x1, y1 = rect
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if not clockwise:
        corners = corners[::-1]
    corners_a = np.array([*corners, corners[0]], float)
    seg = np.linalg.norm(np.diff(corners_a, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    perim = cum[-1]
    s = (phase * perim + speed * np.arange(T)) % perim
    k = np.searchsorted(cum, s, side="right") - 1
    frac = (s - cum[k]) / seg[k]
    pos = corners_a[k] + (corners_a[k + 1] - corners_a[k]) * frac[:, None]
    kind = "turn_right" if clockwise else "turn_left"
    events = [(kind, t) for t in range(1, T) if k[t] != k[t - 1]]
    return pos, events


def _fam_fast_motion(b: _Builder) -> list[_Spec]:
    T, rng, W, H = b.T, b.rng, b.W, b.H
    cf, sf = b.pick()
    size = b.size(0.9)
    m = size * 1.3 + b.margin + 2
    speed = float(rng.uniform(6.0, 8.0))
    pos, events = _loop_path(T, (m, m, W - m, H - m), speed, bool(rng.random() < 0.5), float(rng.random()))
    f = b.add(cf, sf, size, pos, events=events)
    inner = (W * 0.3, H * 0.33, W * 0.7, H * 0.67)
    n = int(rng.integers(2, 4))
    ds = []
    for _ in range(n):
        c, s = b.pick()
        sz = b.size(0.9)
        ds.append(b.place(b.still_or_drift(sz, max_speed=0.6, box=inner), c, s, sz))
    return [
        (Query((ObjectRef(fastest=True),)), [f.obj_id]),
        (Query((_ref(f),)), [f.obj_id]),
        (Query((_ref(ds[0]),)), [ds[0].obj_id]),
    ]


def _fam_distractor_colour(b: _Builder) -> list[_Spec]:
    T, rng = b.T, b.rng
    colour = str(rng.choice(list(COLOURS)))
    shapes = list(rng.permutation(list(SHAPES))[:3])
    size = b.size()
    stopper = b.place(
        b.stopper(size, int(rng.integers(int(0.4 * T), int(0.65 * T)))), colour, shapes[0], size
    )
    same = []
    for s in shapes[1:]:
        sz = b.size()
        same.append(b.place(b.still_or_drift(sz, max_speed=0.5), colour, s, sz))
    _distractors(b, int(rng.integers(1, 3)))
    target = same[int(rng.integers(len(same)))]
    return [
        (Query((_ref(target),)), [target.obj_id]),
        (Query((_ref(stopper, shape=False, event="stop"),)), [stopper.obj_id]),
        (Query((_ref(stopper),)), [stopper.obj_id]),
    ]


def _fam_distractor_shape(b: _Builder) -> list[_Spec]:
    T, rng, W, H = b.T, b.rng, b.W, b.H
    shape = str(rng.choice(list(SHAPES)))
    colours = list(rng.permutation(list(COLOURS))[:3])
    # a leaver: moves to the nearest border and exits
    size = b.size()
    t_gone = int(rng.integers(int(0.5 * T), int(0.8 * T)))

    def leaver():
        side = int(rng.integers(4))
        v = rng.uniform(1.8, 2.8) * b.pace
        m = size * 1.3 + b.margin
        if side in (0, 1):
            y = rng.uniform(m, H - m)
            end_x = -size - 2 if side == 0 else W + size + 2
            vel = (-v, 0.0) if side == 0 else (v, 0.0)
            start = (end_x - vel[0] * t_gone, y)
        else:
            x = rng.uniform(m, W - m)
            end_y = -size - 2 if side == 2 else H + size + 2
            vel = (0.0, -v) if side == 2 else (0.0, v)
            start = (x, end_y - vel[1] * t_gone)
        pos = _path(T, start, [(T, *vel)])
        present = np.arange(T) <= t_gone
        if not b.inside(pos[:1], size):
            return np.full((T, 2), -1e4), present, []
        return pos, present, []

    lv = b.place(leaver, colours[0], shape, size, check_inside=False)
    d = str(rng.choice(["left", "right"]))
    size = b.size()
    tr = b.place(b.turner(size, d, int(rng.integers(int(0.35 * T), int(0.6 * T)))), colours[1], shape, size)
    size = b.size()
    st = b.place(b.still_or_drift(size, max_speed=0.5), colours[2], shape, size)
    _distractors(b, int(rng.integers(0, 2)))
    return [
        (Query((_ref(st),)), [st.obj_id]),
        (Query((_ref(lv, colour=False, event="leave"),)), [lv.obj_id]),
        (Query((_ref(tr, colour=False, event=f"turn_{d}"),)), [tr.obj_id]),
    ]


def _fam_multi_target(b: _Builder) -> list[_Spec]:
    T, rng = b.T, b.rng
    c, s = b.pick()
    twins = []
    for _ in range(2):
        sz = b.size()
        twins.append(b.place(b.still_or_drift(sz), c, s, sz))
    c2, s2 = b.pick(colour=c)  # same colour, other shape
    sz = b.size()
    t1 = int(rng.integers(int(0.35 * T), int(0.65 * T)))
    st1 = b.place(b.stopper(sz, t1), c2, s2, sz)
    c3, s3 = b.pick(shape=s)  # same shape, other colour
    sz = b.size()
    t2 = int(rng.integers(int(0.35 * T), int(0.65 * T)))
    st2 = b.place(b.stopper(sz, t2), c3, s3, sz)
    return [
        (Query((ObjectRef(colour=c, shape=s, count=2),)), [t.obj_id for t in twins]),
        (Query((_ref(st1), _ref(st2))), [st1.obj_id, st2.obj_id]),
        (Query((ObjectRef(count=2, event="stop"),)), [st1.obj_id, st2.obj_id]),
    ]


def _fam_absent_first_frame(b: _Builder) -> list[_Spec]:
    T, rng = b.T, b.rng
    n = int(rng.integers(2, 4))
    others = []
    for _ in range(n):
        c, s = b.pick()
        sz = b.size()
        others.append(b.place(b.still_or_drift(sz), c, s, sz))
    c, s = b.pick()
    sz = b.size()
    t_x = int(rng.integers(int(0.2 * T), int(0.5 * T)))
    x = b.place(b.appearer(sz, t_x, enter=bool(rng.random() < 0.5)), c, s, sz)
    return [
        (Query((_ref(x),)), [x.obj_id]),
        (Query((ObjectRef(event="appear"),)), [x.obj_id]),
        (Query((_ref(others[0]),)), [others[0].obj_id]),
    ]


def _fam_long(b: _Builder) -> list[_Spec]:
    T, rng, W, H = b.T, b.rng, b.W, b.H
    # the event mover loops slowly in the left part, then stops
    ce, se = b.pick()
    sz = b.size()
    t_e = int(rng.integers(int(0.3 * T), int(0.45 * T)))
    m = sz * 1.3 + b.margin
    pos, events = _loop_path(
        t_e + 1,
        (m, m, W * 0.45, H - m),
        float(rng.uniform(0.5, 0.9)),
        bool(rng.random() < 0.5),
        float(rng.random()),
    )
    full = np.concatenate([pos, np.repeat(pos[-1:], T - t_e - 1, axis=0)])
    e = b.add(ce, se, sz, full, events=[*events, ("stop", t_e)])
    # the target appears well after the stop, in the right part
    cx, sx = b.pick()
    sz = b.size()
    t_x = int(rng.integers(t_e + int(0.15 * T), int(0.8 * T)))
    x = b.place(b.appearer(sz, t_x, enter=False), cx, sx, sz)
    cd = b.fresh_colour(avoid=[cx])
    cd, sd = b.pick(colour=cd, shape=sx)
    sz = b.size()
    d = b.place(b.still_or_drift(sz, max_speed=0.05), cd, sd, sz)
    return [
        (Query((_ref(x, colour=False, after=EventRef(_ref(e), "stop")),)), [x.obj_id]),
        (Query((_ref(d),)), [d.obj_id]),
        (Query((_ref(e),)), [e.obj_id]),
    ]


_FAMILY_FUNCS: dict[str, Callable[[_Builder], list[_Spec]]] = {
    "appears_after": _fam_appears_after,
    "turn": _fam_turn,
    "occlusion": _fam_occlusion,
    "fast_motion": _fam_fast_motion,
    "distractor_colour": _fam_distractor_colour,
    "distractor_shape": _fam_distractor_shape,
    "multi_target": _fam_multi_target,
    "absent_first_frame": _fam_absent_first_frame,
    "long": _fam_long,
}


# --------------------------------------------------------------------------- rendering + facts


def _background(rng: np.random.Generator, W: int, H: int) -> np.ndarray:
    """A pale, low-saturation colour with a mild smooth texture (never mistaken for a shape)."""
    base = np.array(rng.choice([[205, 205, 205], [215, 210, 198], [198, 208, 218], [212, 214, 206]]), float)
    noise = rng.normal(0, 1, (H // 8 + 2, W // 8 + 2)).astype(np.float32)
    noise = cv2.resize(noise, (W, H), interpolation=cv2.INTER_CUBIC)
    noise = noise / (np.abs(noise).max() + 1e-6) * 9.0
    img = base[None, None, :] + noise[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _render(objs: list[_Obj], bg: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    H, W = bg.shape[:2]
    frames = np.empty((T, H, W, 3), np.uint8)
    masks = np.zeros((T, H, W), np.uint8)
    order = sorted(objs, key=lambda o: (o.z, o.obj_id))  # drawn back to front
    for t in range(T):
        frame = bg.copy()
        mask = masks[t]
        for o in order:
            if not o.present[t]:
                continue
            poly = shape_polygon(o.shape, o.pos[t], o.size)
            _fill(frame, poly, COLOURS[o.colour], antialias=True)
            _fill(mask, poly, int(o.obj_id), antialias=False)
        frames[t] = frame
    return frames, masks


def _full_areas(objs: list[_Obj], T: int, W: int, H: int) -> dict[int, np.ndarray]:
    """Per object, the area in frame of its whole (unoccluded) shape at each time."""
    out = {}
    for o in objs:
        areas = np.zeros(T)
        x_lo, x_hi = o.pos[:, 0] - 2 * o.size, o.pos[:, 0] + 2 * o.size
        y_lo, y_hi = o.pos[:, 1] - 2 * o.size, o.pos[:, 1] + 2 * o.size
        on = o.present & (x_hi > 0) & (x_lo < W) & (y_hi > 0) & (y_lo < H)
        for t in np.flatnonzero(on):
            m = np.zeros((H, W), np.uint8)
            _fill(m, shape_polygon(o.shape, o.pos[t], o.size), 1, antialias=False)
            areas[t] = m.sum()
        out[o.obj_id] = areas
    return out


def _facts(objs: list[_Obj], masks: np.ndarray, fps: float) -> World:
    T, H, W = masks.shape
    nominal = {}
    for o in objs:
        m = np.zeros((H * 3, W * 3), np.uint8)
        _fill(m, shape_polygon(o.shape, (W * 1.5, H * 1.5), o.size), 1, antialias=False)
        nominal[o.obj_id] = float(m.sum())
    visible = np.stack([(masks == o.obj_id).sum(axis=(1, 2)) for o in objs]).astype(float)  # (N, T)
    tracks = []
    for i, o in enumerate(objs):
        vis = visible[i] >= VISIBLE_FRACTION * nominal[o.obj_id]
        if not vis.any():
            raise _Retry(f"object {o.obj_id} never visible")
        idx = np.flatnonzero(vis)
        first, last = int(idx[0]), int(idx[-1])
        events = [(k, t / fps) for k, t in o.events if first <= t <= last]
        if first > 0:
            events.append(("appear", first / fps))
        if last < T - 1:
            events.append(("leave", last / fps))
        steps = np.linalg.norm(np.diff(o.pos, axis=0), axis=1)[first:last] if last > first else np.zeros(1)
        tracks.append(
            TrackFacts(
                o.obj_id,
                o.colour,
                o.shape,
                first / fps,
                last / fps,
                sorted(events, key=lambda e: e[1]),
                [],
                float(steps.mean() * fps),
            )
        )
    # occlusion: an object was "hidden behind" another when at some time at least half of its
    # in-frame area was covered by that object (drawn above it)
    full = _full_areas(objs, T, W, H)
    for i, o in enumerate(objs):
        covered = full[o.obj_id] - visible[i]
        bad = np.flatnonzero((full[o.obj_id] > 0) & (covered >= 0.5 * full[o.obj_id]))
        hiders: set[int] = set()
        for t in bad:
            for other in objs:
                if other is o or (other.z, other.obj_id) < (o.z, o.obj_id) or not other.present[t]:
                    continue
                if np.linalg.norm(other.pos[t] - o.pos[t]) < 1.6 * (other.size + o.size):
                    hiders.add(other.obj_id)
        tracks[i].hidden_behind = sorted(hiders)
    return World(tracks=tracks, start=0.0, end=(T - 1) / fps)


# --------------------------------------------------------------------------- entry point


def generate(
    seed: int,
    family: str | None = None,
    *,
    frames: int | None = None,
    size: tuple[int, int] | None = None,
    fps: float = DEFAULT_FPS,
) -> Scenario:
    """A deterministic scenario of ``family`` (random from the seed when None).

    frames: number of frames (default: drawn from the family's range; ``long`` has 2000+);
    size: (width, height), default 320x240 (192x144 for ``long``).
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    if family is None:
        # "long" videos are opt-in: a random pick stays cheap
        short = [f for f in FAMILIES if f != "long"]
        family = short[int(np.random.default_rng([seed, 7]).integers(len(short)))]
    if family not in _FAMILY_FUNCS:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    if frames is not None and frames < _MIN_FRAMES.get(family, 40):
        raise ValueError(
            f"family {family!r} needs at least {_MIN_FRAMES.get(family, 40)} frames, got {frames}"
        )
    W, H = size or (LONG_SIZE if family == "long" else DEFAULT_SIZE)
    if W < 128 or H < 96:
        raise ValueError(f"frame size must be at least 128x96, got {W}x{H}")
    scale = min(W / DEFAULT_SIZE[0], H / DEFAULT_SIZE[1])
    base_w, base_h = LONG_SIZE if family == "long" else DEFAULT_SIZE
    room = min(W / base_w, H / base_h)  # frame size relative to the family's default one
    size_range = (13.0 * scale, 18.0 * scale) if family != "long" else (11.0, 13.0)
    last_error = ""
    for attempt in range(80):
        rng = np.random.default_rng([seed, FAMILIES.index(family), attempt])
        lo, hi = _FRAME_RANGE[family]
        T = int(frames) if frames is not None else int(rng.integers(lo, hi + 1))
        # Clips up to the family's longest default length keep full speed at any size, so every
        # scenario made before long clips were paced stays byte for byte the same.
        pace = 1.0
        if hi < T:
            pace = hi / T * min(1.0, room)
        b = _Builder(rng, T, W, H, size_range, pace=pace)
        try:
            specs = _FAMILY_FUNCS[family](b)
            bg = _background(rng, W, H)
            video, masks = _render(b.objs, bg, T)
            world = _facts(b.objs, masks, fps)
            _check_family(family, b.objs, world, masks, specs, fps)
        except _Retry as exc:
            last_error = str(exc)
            continue
        expressions = [
            Expression(id=str(i), text=query_text(q), type=q.type, obj_ids=sorted(ids))
            for i, (q, ids) in enumerate(specs)
        ]
        objects = [ObjectInfo(o.obj_id, o.colour, o.shape) for o in b.objs]
        return Scenario(video, masks, fps, expressions, family, seed, objects, world)
    raise RuntimeError(f"could not build a {family!r} scenario for seed {seed}: {last_error}")


def _check_family(
    family: str, objs: list[_Obj], world: World, masks: np.ndarray, specs: list[_Spec], fps: float
) -> None:
    """Every expression unambiguous on the ground truth, and the family's events clearly apart."""
    for q, ids in specs:
        if not is_unambiguous(q, world, ids):
            raise _Retry(f"ambiguous: {query_text(q)!r}")
        for i in ids:
            if not (masks == i).any():
                raise _Retry(f"object {i} never visible")
    q0 = specs[0][0].targets[0]
    if q0.after is not None:
        # keep the event and the appearances far enough apart that sparse frames still order them
        ev = q0.after
        subject = next(
            t for t in world.tracks if t.colour == ev.subject.colour and t.shape == ev.subject.shape
        )
        t_ev = subject.event_time(ev.event)
        gap = 1.2 if family != "long" else 8.0
        for t in world.tracks:
            if t.shape != q0.shape or t is subject:
                continue
            appear = t.event_time("appear")
            if appear is None:
                continue
            if t_ev is None or abs(appear - t_ev) < gap:
                raise _Retry("appearance too close to the event")

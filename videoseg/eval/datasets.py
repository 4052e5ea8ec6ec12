"""Readers for the released referring / reasoning video segmentation benchmarks (paper: Experiments).

The paper reports J&F on Ref-YouTube-VOS, Ref-DAVIS17, MeViS and ReVOS. This module reads their
validation data as released, so that ``python -m videoseg benchmark`` (:mod:`videoseg.cli.benchmark`) can
run the method over it and score it the way each benchmark does.

Layouts (``--layout`` / :data:`LAYOUTS`) and where each fact comes from:

- ``mevis``: ``<root>/<split>/JPEGImages/<video>/<frame>.jpg``, ``<root>/<split>/meta_expressions.json``
  = ``{"videos": {video: {"frames": [frame, ...], "expressions": {exp_id: {"exp", "obj_id": [..],
  "anno_id": [..]}}}}}`` and, in ``train`` and ``valid_u`` only, ``<root>/<split>/mask_dict.json`` =
  ``{str(anno_id): [COCO RLE or null per frame]}`` (frames in the order of ``"frames"``). Sources:
  henghuiding/MeViS ``lmpm/data/datasets/mevis.py`` (JSON keys, JPEG paths, mask_dict only beside
  train / valid_u) and cilinyan/VISA ``tools/eval_mevis.py`` (scoring: the expression's ground truth
  is the sum of its ``anno_id`` masks, frame i is ``mask_dict[anno][i]``, null means empty; the
  prediction is ``<pred>/<video>/<exp_id>/<frame>.png`` read as grayscale, non-zero = foreground);
  split names ``train`` / ``valid_u`` / ``valid`` also from VISA ``utils/dataset_config.py``.
- ``revos``: ``<root>/JPEGImages/<video>/<frame>.jpg`` (video names may hold ``/``),
  ``<root>/meta_expressions_<split>_.json`` (the same structure plus ``"type_id"`` per expression:
  0 referring, 1 reasoning, 2 neither; and ``"height"`` / ``"width"`` per video),
  ``<root>/mask_dict.json`` (as MeViS) and ``<root>/mask_dict_foreground.json`` = ``{video:
  {"masks_rle": [RLE per frame], "foreground_ratio": [...]}}``. Sources: VISA
  ``utils/dataset_config.py`` (file names), ``tools/eval_revos.py`` (type ids; referring and
  reasoning means, overall = their mean, type 2 in neither; R uses the foreground file; predictions
  ``<pred>/<video>/<exp_id>/<frame>.png``), ``tools/generate_foreground_mask.py`` (foreground file =
  union of every annotated object of the video per frame). A root without ``JPEGImages`` is read
  as holding the video folders directly (the layout Sa2VA's evaluation configs point at).
- ``refytvos`` (Ref-YouTube-VOS, and Ref-DAVIS17 after ReferFormer's conversion):
  ``<root>/<split>/JPEGImages/<video>/<frame>.jpg``, ``<root>/meta_expressions/<split>/
  meta_expressions.json`` (expressions ``{"exp"}``, plus ``"obj_id"`` where ground truth exists),
  palette PNGs ``<root>/<split>/Annotations/<video>/<frame>.png`` (pixel = object id) where the
  split has them (Ref-DAVIS17 valid; Ref-YouTube-VOS valid has none: it is scored by its server
  from a zip of ``Annotations/<video>/<exp_id>/<frame>.png``). Sources: wjn922/ReferFormer
  ``docs/data.md`` and ``tools/data/convert_davis_to_ytvos.py`` (layout; Ref-DAVIS expression ids
  come in fours per object: annotator 1 first-frame, annotator 1 full-video, annotator 2
  first-frame, annotator 2 full-video, so ``int(exp_id) % 4`` is the annotator set),
  ``inference_ytvos.py`` (the valid meta file also lists the 305 test videos; they are removed
  with ``meta_expressions/test/meta_expressions.json`` when it is there, leaving 202; binary PNG
  per frame), VISA ``tools/zip_mp_refytvos.py`` (the zip holds ``Annotations/<video>/...``).
  DAVIS's void label 255 (davis2017-evaluation ``evaluation.py``) is left out of J and F.
  Ref-YouTube-VOS frames are every 5th frame of 30 fps video, i.e. 6 fps (the Refer-YouTube-VOS
  dataset description, paperswithcode.com/dataset/refer-youtube-vos), hence ``--fps 6`` by default;
  the frame rate of the MeViS / ReVOS frame folders was not verified (it only sets the times in the
  sampler's questions: pass ``--fps`` if known).

:class:`FrameFolder` is a lazy :class:`videoseg.core.interfaces.VideoSource` over one video's JPEG frames:
it reads only image headers when opened and decodes exactly the frames asked for, so HTFS, which
looks at few frames, decodes few. Problems with the data raise :class:`DatasetError` naming the
file and the JSON entry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LAYOUTS = ("mevis", "revos", "refytvos")
DEFAULT_SPLITS = {"mevis": "valid_u", "revos": "valid", "refytvos": "valid"}
FRAME_SUFFIX = ".jpg"
VOID_LABEL = 255  # DAVIS annotation PNGs: pixels to leave out of J and F
REVOS_TYPES = {0: "referring", 1: "reasoning", 2: "other"}  # VISA eval_revos.py type_id
DAVIS_ANNOTATORS = ("annot1-first-frame", "annot1-full-video", "annot2-first-frame", "annot2-full-video")


class DatasetError(ValueError):
    """The benchmark data is missing, malformed or inconsistent (the message names what and where)."""


# ------------------------------------------------------------------------------------- frames


class FrameFolder:
    """A video given as one image file per frame (a benchmark's ``JPEGImages/<video>``).

    Implements :class:`videoseg.core.interfaces.VideoSource`: ``fps``, ``size`` (width, height), ``len()``,
    ``frames(indices)`` -> (N, H, W, 3) uint8 RGB, frame-exact and in the order asked, plus
    ``iter_frames`` (what the XMem and flow propagators stream with). Opening reads only headers
    (to check that every frame exists and all share one size); pixels are decoded on request, and
    :attr:`decoded` records every frame index decoded, in order.
    """

    def __init__(
        self, paths: Sequence[str | Path], fps: float, *, name: str | None = None, cache_bytes: int = 0
    ) -> None:
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        self.paths = [Path(p) for p in paths]
        self.name = name or (self.paths[0].parent.name if self.paths else "?")
        if not self.paths:
            raise DatasetError(f"video {self.name!r} has no frames")
        self.fps = float(fps)
        self.path = self.paths[0].parent  # where the frames are (shown in traces and logs)
        self.size = self._check_sizes()
        self.decoded: list[int] = []
        # Decoded frames kept for later requests (the benchmark runs a video's expressions back to
        # back, each reading every frame): filled until the budget is spent, never evicted, so a
        # video longer than the budget still hits on its first frames instead of thrashing.
        self.cache_bytes = max(int(cache_bytes), 0)
        self._cache: dict[int, np.ndarray] = {}
        self._cached_bytes = 0

    def _check_sizes(self) -> tuple[int, int]:
        from PIL import Image, UnidentifiedImageError

        size: tuple[int, int] | None = None
        for path in self.paths:
            if not path.is_file():
                raise DatasetError(f"video {self.name!r}: frame file {path} is missing")
            try:
                with Image.open(path) as image:  # header only; pixels stay on disk
                    this = (int(image.width), int(image.height))
            except (UnidentifiedImageError, OSError) as exc:
                raise DatasetError(f"video {self.name!r}: {path} is not a readable image ({exc})") from exc
            if size is None:
                size = this
            elif this != size:
                raise DatasetError(
                    f"video {self.name!r}: frames differ in size: {self.paths[0].name} is "
                    f"{size[0]}x{size[1]}, {path.name} is {this[0]}x{this[1]}"
                )
        assert size is not None
        return size

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (
            f"FrameFolder({self.name!r}, {len(self)} frames, {self.size[0]}x{self.size[1]}, {self.fps:g} fps)"
        )

    def _index(self, idx: Any) -> int:
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise TypeError(f"frame indices must be integers, got {idx!r}")
        if not 0 <= int(idx) < len(self.paths):
            raise IndexError(f"frame {idx} is outside video {self.name!r} (frames 0..{len(self.paths) - 1})")
        return int(idx)

    def _decode(self, idx: int) -> np.ndarray:
        cached = self._cache.get(idx)
        if cached is not None:
            return cached.copy()  # a caller may write into its frame; the cache stays as decoded
        frame = self._read(idx)
        if self._cached_bytes + frame.nbytes <= self.cache_bytes:
            self._cache[idx] = frame.copy()
            self._cached_bytes += frame.nbytes
        return frame

    def _read(self, idx: int) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        path = self.paths[idx]
        try:
            with Image.open(path) as image:
                # PIL ignores EXIF orientation, so the pixels match the header size checked above
                # and the ground-truth masks, which are stored in that orientation.
                frame = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"video {self.name!r}: cannot decode frame {path} ({exc})") from exc
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise DatasetError(
                f"video {self.name!r}: frame {path.name} decodes to {frame.shape[1]}x{frame.shape[0]}, "
                f"not {self.size[0]}x{self.size[1]}"
            )
        self.decoded.append(idx)
        return frame

    def frames(self, indices: Sequence[int]) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB of the frames asked, in that order (duplicates decoded once)."""
        wanted = [self._index(i) for i in indices]
        width, height = self.size
        out = np.empty((len(wanted), height, width, 3), dtype=np.uint8)
        cache: dict[int, np.ndarray] = {}
        for k, idx in enumerate(wanted):
            if idx not in cache:
                cache[idx] = self._decode(idx)
            out[k] = cache[idx]
        return out

    def iter_frames(
        self, start: int = 0, stop: int | None = None, step: int = 1, reverse: bool = False
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, frame)`` for ``range(start, stop, step)``, last first when ``reverse``; one
        frame in memory at a time."""
        stop = len(self) if stop is None else min(int(stop), len(self))
        if step < 1:
            raise ValueError(f"step must be >= 1, got {step}")
        indices = list(range(max(int(start), 0), stop, step))
        for idx in reversed(indices) if reverse else indices:
            yield idx, self._decode(idx)

    def close(self) -> None:
        """Drop the cached frames (files are opened per frame); here so callers may treat it as a Video."""
        self._cache.clear()
        self._cached_bytes = 0

    def __enter__(self) -> FrameFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class BenchExpression:
    """One expression of a benchmark video."""

    video: str
    exp_id: str
    text: str
    type: str  # "referring" | "reasoning" | "other" (ReVOS type 2: scored, in neither subset)
    obj_ids: tuple[int, ...] = ()  # palette ids in the Annotations PNGs (refytvos layout)
    anno_ids: tuple[str, ...] = ()  # mask_dict keys (mevis / revos layouts)
    annotator: str | None = None  # Ref-DAVIS17 annotator set (int(exp_id) % 4)

    @property
    def key(self) -> str:
        return f"{self.video}/{self.exp_id}"


@dataclass
class BenchVideo:
    name: str
    frames: list[str]  # frame names without extension, in the benchmark's order
    frame_dir: Path
    expressions: list[BenchExpression] = field(default_factory=list)
    annotation_dir: Path | None = None  # palette PNGs (refytvos layout with ground truth)

    def frame_paths(self) -> list[Path]:
        return [self.frame_dir / f"{name}{FRAME_SUFFIX}" for name in self.frames]


@dataclass
class GroundTruth:
    """What :func:`videoseg.eval.metrics.expression_scores` needs for one expression.

    labels: (T, H, W) uint8; obj_ids: the ids whose union is the target; every non-zero, non-void
    id counts as annotated foreground (ReVOS R); void_label: pixels left out of J and F.
    """

    labels: np.ndarray
    obj_ids: list[int]
    void_label: int | None = None


# ------------------------------------------------------------------------------------ benchmark


class Benchmark:
    """A benchmark split: its videos and expressions, and ground truth where it is released."""

    def __init__(
        self,
        layout: str,
        root: Path,
        split: str,
        videos: list[BenchVideo],
        meta_path: Path,
        mask_dict_path: Path | None = None,
        foreground_path: Path | None = None,
        notes: list[str] | None = None,
    ) -> None:
        self.layout = layout
        self.root = root
        self.split = split
        self.videos = videos
        self.meta_path = meta_path
        self.mask_dict_path = mask_dict_path
        self.foreground_path = foreground_path
        self.notes = notes or []  # things worth telling the user (test videos removed, ...)
        self._mask_dict: dict[str, Any] | None = None
        self._foreground: dict[str, Any] | None = None
        self._by_name = {v.name: v for v in videos}

    @property
    def name(self) -> str:
        if self.layout == "refytvos" and any(e.annotator for e in self.expressions()):
            return f"Ref-DAVIS17 {self.split}"
        titles = {"mevis": "MeViS", "revos": "ReVOS", "refytvos": "Ref-YouTube-VOS"}
        return f"{titles[self.layout]} {self.split}"

    def video(self, name: str) -> BenchVideo:
        return self._by_name[name]

    def expressions(self) -> list[BenchExpression]:
        return [e for v in self.videos for e in v.expressions]

    def has_ground_truth(self, expr: BenchExpression) -> bool:
        if self.layout == "refytvos":
            return self.video(expr.video).annotation_dir is not None and bool(expr.obj_ids)
        return self.mask_dict_path is not None

    def open_video(self, name: str, fps: float, *, cache_bytes: int = 0) -> FrameFolder:
        """The video's frames, decoded lazily; ``cache_bytes`` of decoded frames are kept for reuse."""
        video = self.video(name)
        return FrameFolder(video.frame_paths(), fps, name=name, cache_bytes=cache_bytes)

    # -------------------------------------------------------------- ground truth

    def _masks(self) -> dict[str, Any]:
        if self._mask_dict is None:
            assert self.mask_dict_path is not None
            self._mask_dict = _load_json(self.mask_dict_path, "mask_dict")
            if not isinstance(self._mask_dict, dict):
                raise DatasetError(f"{self.mask_dict_path}: expected a JSON object of anno_id -> masks")
        return self._mask_dict

    def _foreground_dict(self) -> dict[str, Any]:
        if self._foreground is None:
            assert self.foreground_path is not None
            self._foreground = _load_json(self.foreground_path, "foreground mask file")
            if not isinstance(self._foreground, dict):
                raise DatasetError(f"{self.foreground_path}: expected a JSON object of video -> masks")
        return self._foreground

    def check_frames(self, expressions: Sequence[BenchExpression]) -> None:
        """Check that every frame file of these expressions' videos exists (a cheap stat each), so a
        missing frame is named before hours of runs rather than when its video comes up."""
        for name in dict.fromkeys(e.video for e in expressions):
            video = self.video(name)
            if not video.frame_dir.is_dir():
                raise DatasetError(f"video {name!r}: frame folder {video.frame_dir} not found")
            for path in video.frame_paths():
                if not path.is_file():
                    raise DatasetError(f"video {name!r}: frame file {path} is missing")

    def check_ground_truth(self, expressions: Sequence[BenchExpression]) -> None:
        """Check the ground-truth entries of these expressions before any model runs.

        Raises DatasetError naming the first missing or malformed entry.
        """
        for expr in expressions:
            if not self.has_ground_truth(expr):
                continue
            n = len(self.video(expr.video).frames)
            if self.layout == "refytvos":
                ann = self.video(expr.video).annotation_dir
                assert ann is not None
                for frame in self.video(expr.video).frames:
                    if not (ann / f"{frame}.png").is_file():
                        raise DatasetError(f"annotation {ann / (frame + '.png')} is missing")
                continue
            masks = self._masks()
            for anno in expr.anno_ids:
                where = f"{self.mask_dict_path}: entry {anno!r} (expression {expr.key})"
                entry = masks.get(anno)
                if entry is None:
                    raise DatasetError(f"{where} is missing")
                if not isinstance(entry, list) or len(entry) != n:
                    got = f"{len(entry)} entries" if isinstance(entry, list) else type(entry).__name__
                    raise DatasetError(f"{where}: expected a list of {n} per-frame masks, got {got}")
                for i, rle in enumerate(entry):
                    if rle is not None:
                        _check_rle(rle, f"{where}, frame {i}")
            if self.foreground_path is not None:
                where = f"{self.foreground_path}: entry {expr.video!r}"
                entry = self._foreground_dict().get(expr.video)
                frames = entry.get("masks_rle") if isinstance(entry, dict) else None
                if not isinstance(frames, list) or len(frames) != n:
                    raise DatasetError(f"{where}: expected {{'masks_rle': [{n} per-frame masks]}}")

    def ground_truth(self, expr: BenchExpression, size: tuple[int, int]) -> GroundTruth:
        """The expression's ground truth at frame size ``size`` (width, height)."""
        video = self.video(expr.video)
        width, height = size
        n = len(video.frames)
        if self.layout == "refytvos":
            assert video.annotation_dir is not None
            labels = np.stack(
                [_read_palette_png(video.annotation_dir / f"{f}.png", size) for f in video.frames]
            )
            void = VOID_LABEL if VOID_LABEL not in expr.obj_ids else None
            return GroundTruth(labels, list(expr.obj_ids), void)
        masks = self._masks()
        target = np.zeros((n, height, width), dtype=bool)
        for anno in expr.anno_ids:
            for i, rle in enumerate(masks[anno]):
                if rle is not None:
                    target[i] |= _decode_rle(rle, size, f"{self.mask_dict_path}: entry {anno!r}, frame {i}")
        # 1 = the expression's target; 2 = other annotated objects (ReVOS R counts them as foreground).
        labels = target.astype(np.uint8)
        if self.foreground_path is not None:
            fg_rles = self._foreground_dict()[expr.video]["masks_rle"]
            for i, rle in enumerate(fg_rles):
                where = f"{self.foreground_path}: entry {expr.video!r}, frame {i}"
                fg = _decode_rle(rle, size, where)
                labels[i][fg & ~target[i]] = 2
        return GroundTruth(labels, [1])


# ---------------------------------------------------------------------------------- loading


def load_benchmark(layout: str, root: str | Path, split: str | None = None) -> Benchmark:
    """Read a benchmark split's expression file (ground truth is read later, per expression).

    Raises DatasetError with what is missing or malformed, and where.
    """
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"--root {root} is not a folder")
    split = split or DEFAULT_SPLITS[layout]
    if layout == "mevis":
        return _load_mevis(root, split)
    if layout == "revos":
        return _load_revos(root, split)
    return _load_refytvos(root, split)


def _load_mevis(root: Path, split: str) -> Benchmark:
    base = root / split
    meta_path = base / "meta_expressions.json"
    if not meta_path.is_file():
        hint = ""
        if (root / "meta_expressions.json").is_file():
            hint = f"; {root} looks like a split folder itself: give its parent as --root"
        elif (root / "mask_dict_foreground.json").is_file() or any(root.glob("meta_expressions_*_.json")):
            hint = "; this looks like ReVOS: use --layout revos"
        raise DatasetError(f"MeViS layout: {meta_path} not found{hint}")
    videos = _parse_meta(meta_path, base / "JPEGImages", with_anno_ids=(base / "mask_dict.json").is_file())
    mask_dict = base / "mask_dict.json"
    notes = [] if mask_dict.is_file() else [f"{split}: no mask_dict.json, so predictions only (no scores)"]
    return Benchmark(
        "mevis", root, split, videos, meta_path, mask_dict if mask_dict.is_file() else None, notes=notes
    )


def _load_revos(root: Path, split: str) -> Benchmark:
    meta_path = root / f"meta_expressions_{split}_.json"
    if not meta_path.is_file():
        found = sorted(p.name for p in root.glob("meta_expressions*.json"))
        hint = f" (found: {', '.join(found)})" if found else ""
        if any(root.glob("*/meta_expressions.json")):
            hint = "; this looks like MeViS: use --layout mevis"
        raise DatasetError(f"ReVOS layout: {meta_path} not found{hint}")
    image_root = root / "JPEGImages" if (root / "JPEGImages").is_dir() else root
    mask_dict = root / "mask_dict.json"
    foreground = root / "mask_dict_foreground.json"
    notes = []
    if not mask_dict.is_file():
        notes.append(f"{mask_dict} not found: predictions only (no scores)")
    elif not foreground.is_file():
        raise DatasetError(f"ReVOS layout: {foreground} not found (needed for the robustness score R)")
    videos = _parse_meta(meta_path, image_root, with_anno_ids=mask_dict.is_file(), revos=True)
    return Benchmark(
        "revos",
        root,
        split,
        videos,
        meta_path,
        mask_dict if mask_dict.is_file() else None,
        foreground if mask_dict.is_file() else None,
        notes,
    )


def _load_refytvos(root: Path, split: str) -> Benchmark:
    meta_path = root / "meta_expressions" / split / "meta_expressions.json"
    if not meta_path.is_file():
        hint = ""
        if any(root.glob("*/meta_expressions.json")):
            hint = "; this looks like MeViS: use --layout mevis"
        elif any(root.glob("meta_expressions_*_.json")):
            hint = "; this looks like ReVOS: use --layout revos"
        raise DatasetError(f"Ref-YouTube-VOS layout: {meta_path} not found{hint}")
    videos = _parse_meta(meta_path, root / split / "JPEGImages", refytvos=True)
    notes: list[str] = []
    test_meta = root / "meta_expressions" / "test" / "meta_expressions.json"
    if split == "valid" and test_meta.is_file():
        # The competition's valid file also lists the test videos (ReferFormer inference_ytvos.py).
        test_videos = set(_load_json(test_meta, "meta file").get("videos", {}))
        kept = [v for v in videos if v.name not in test_videos]
        if len(kept) != len(videos):
            notes.append(f"left out {len(videos) - len(kept)} test videos listed in {meta_path.name}")
        videos = kept
    annotations = root / split / "Annotations"
    without = 0
    for video in videos:
        folder = annotations / video.name
        if folder.is_dir() and all((folder / f"{f}.png").is_file() for f in video.frames):
            video.annotation_dir = folder
        elif any(e.obj_ids for e in video.expressions):
            without += 1
    if without:
        notes.append(f"{without} videos have no complete Annotations folder: predictions only for them")
    # Ref-DAVIS17 (ReferFormer's conversion): ids 0..4k-1 in fours per object, one per annotator set.
    if videos and all(v.annotation_dir is not None for v in videos) and all(_in_fours(v) for v in videos):
        for video in videos:
            video.expressions = [
                BenchExpression(**{**e.__dict__, "annotator": DAVIS_ANNOTATORS[int(e.exp_id) % 4]})
                for e in video.expressions
            ]
    return Benchmark("refytvos", root, split, videos, meta_path, notes=notes)


def _in_fours(video: BenchVideo) -> bool:
    ids = [e.exp_id for e in video.expressions]
    return (
        len(ids) % 4 == 0
        and len(ids) > 0
        and sorted(ids, key=_int_or_max) == [str(i) for i in range(len(ids))]
    )


def _int_or_max(text: str) -> int:
    return int(text) if text.isdigit() else 1 << 30


def _parse_meta(
    meta_path: Path,
    image_root: Path,
    *,
    with_anno_ids: bool = False,
    revos: bool = False,
    refytvos: bool = False,
) -> list[BenchVideo]:
    data = _load_json(meta_path, "meta file")
    if not isinstance(data, dict) or not isinstance(data.get("videos"), dict):
        raise DatasetError(f"{meta_path}: expected a JSON object with a 'videos' object")
    videos = []
    for name, entry in data["videos"].items():
        where = f"{meta_path}: videos[{name!r}]"
        if not isinstance(entry, dict):
            raise DatasetError(f"{where}: expected an object with 'frames' and 'expressions'")
        frames = entry.get("frames")
        if not isinstance(frames, list) or not frames or not all(isinstance(f, str) and f for f in frames):
            raise DatasetError(f"{where}: 'frames' must be a non-empty list of frame names")
        expressions = entry.get("expressions")
        if not isinstance(expressions, dict):
            raise DatasetError(f"{where}: 'expressions' must be an object of exp_id -> expression")
        video = BenchVideo(name=str(name), frames=list(frames), frame_dir=image_root / str(name))
        for exp_id, exp in expressions.items():
            video.expressions.append(
                _parse_expression(
                    f"{where}.expressions[{exp_id!r}]",
                    str(name),
                    str(exp_id),
                    exp,
                    with_anno_ids=with_anno_ids,
                    revos=revos,
                    refytvos=refytvos,
                )
            )
        videos.append(video)
    return videos


def _parse_expression(
    where: str, video: str, exp_id: str, exp: Any, *, with_anno_ids: bool, revos: bool, refytvos: bool
) -> BenchExpression:
    if not isinstance(exp, dict):
        raise DatasetError(f"{where}: expected an object with 'exp'")
    text = exp.get("exp")
    if not isinstance(text, str) or not text.strip():
        raise DatasetError(f"{where}: 'exp' must be a non-empty text, got {text!r}")
    text = " ".join(text.split())  # MeViS / VISA loaders collapse whitespace the same way
    kind = "referring"
    if revos:
        type_id = exp.get("type_id")
        if isinstance(type_id, bool) or type_id not in REVOS_TYPES:
            raise DatasetError(
                f"{where}: 'type_id' must be 0 (referring), 1 (reasoning) or 2, got {type_id!r}"
            )
        kind = REVOS_TYPES[type_id]
    anno_ids: tuple[str, ...] = ()
    if with_anno_ids:
        raw = exp.get("anno_id")
        if not isinstance(raw, list) or not raw or not all(_is_id(a) for a in raw):
            raise DatasetError(f"{where}: 'anno_id' must be a non-empty list of ids, got {raw!r}")
        anno_ids = tuple(str(a) for a in raw)
    obj_ids: tuple[int, ...] = ()
    if refytvos and "obj_id" in exp:
        raw = exp["obj_id"]
        if not _is_id(raw) or not 1 <= int(raw) <= 255:
            raise DatasetError(f"{where}: 'obj_id' must be an object id 1..255, got {raw!r}")
        obj_ids = (int(raw),)
    return BenchExpression(video, exp_id, text, kind, obj_ids, anno_ids)


def _is_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and value.isdigit()


def _load_json(path: Path, what: str) -> Any:
    try:
        with path.open("r", encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise DatasetError(f"{what} {path} not found") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {what} {path}: {exc}") from exc


# ------------------------------------------------------------------------------------- masks


def _check_rle(rle: Any, where: str) -> None:
    for item in rle if isinstance(rle, list) else [rle]:
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("size"), list)
            and len(item["size"]) == 2
            and all(isinstance(v, int) and v > 0 for v in item["size"])
            and isinstance(item.get("counts"), (str, list))
        )
        if not ok:
            raise DatasetError(f"{where}: expected a COCO RLE {{'size': [h, w], 'counts': ...}} or null")


def _decode_rle(rle: Any, size: tuple[int, int], where: str) -> np.ndarray:
    """COCO RLE (or a list of them, united) -> (H, W) bool at ``size`` (width, height)."""
    from pycocotools import mask as coco_mask

    _check_rle(rle, where)
    width, height = size
    out = np.zeros((height, width), dtype=bool)
    for item in rle if isinstance(rle, list) else [rle]:
        h, w = item["size"]
        if (w, h) != (width, height):
            raise DatasetError(f"{where}: mask is {w}x{h}, the frames are {width}x{height}")
        counts = item["counts"]
        try:
            if isinstance(counts, list):  # uncompressed RLE
                encoded = coco_mask.frPyObjects({"size": [h, w], "counts": counts}, h, w)
            else:
                encoded = {"size": [h, w], "counts": counts.encode("ascii")}
            out |= coco_mask.decode(encoded).astype(bool)
        except Exception as exc:  # pycocotools raises assorted types on bad counts
            raise DatasetError(f"{where}: cannot decode the RLE ({exc})") from exc
    return out


def _read_palette_png(path: Path, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise DatasetError(
                    f"annotation {path} is a {image.mode} image, not a palette PNG of object ids"
                )
            labels = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"cannot read annotation {path} ({exc})") from exc
    if (labels.shape[1], labels.shape[0]) != size:
        raise DatasetError(
            f"annotation {path} is {labels.shape[1]}x{labels.shape[0]}, the frames are {size[0]}x{size[1]}"
        )
    return labels


# ------------------------------------------------------------------------------ writing layouts
# The same layouts written from generated scenarios (``python -m videoseg synth --layout``), so the
# benchmark command can be tried, taught and tested without downloading a dataset. The writers
# follow the readers above field by field; the tests read every written layout back.


def frame_names(count: int) -> list[str]:
    """``00000``, ``00001``, ...: the frame names the writers use (as the released sets do)."""
    return [f"{i:05d}" for i in range(count)]


def _write_jpegs(folder: Path, frames: np.ndarray) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(frame_names(len(frames)), frames):
        Image.fromarray(frame).save(folder / f"{name}{FRAME_SUFFIX}", quality=95)


def _rle_or_null(mask: np.ndarray) -> dict[str, Any] | None:
    from videoseg.core.masks import encode_rle

    return encode_rle(mask) if mask.any() else None  # MeViS writes null for an empty frame


def _write_mask_dict_layout(
    videos: Iterable[tuple[str, Any]],
    image_root: Path,
    meta_path: Path,
    mask_root: Path | None,
    *,
    revos: bool,
) -> None:
    """Frames, meta_expressions (+ mask_dict, + the foreground file for ReVOS) for MeViS or ReVOS,
    one video at a time (only the JSON entries stay in memory)."""
    from videoseg.core.masks import encode_rle

    meta: dict[str, Any] = {"videos": {}}
    mask_dict: dict[str, Any] = {}
    foreground: dict[str, Any] = {}
    for name, sc in videos:
        _write_jpegs(image_root / name, sc.frames)
        anno_of: dict[int, str] = {}
        for obj_id in sorted({i for e in sc.expressions for i in e.obj_ids}):
            anno_of[obj_id] = str(len(mask_dict))  # one annotation per object of the video
            mask_dict[anno_of[obj_id]] = [_rle_or_null(m == obj_id) for m in sc.masks]
        expressions: dict[str, Any] = {}
        for e in sc.expressions:
            entry: dict[str, Any] = {"exp": e.text, "obj_id": list(e.obj_ids)}
            if mask_root is not None:
                entry["anno_id"] = [anno_of[i] for i in e.obj_ids]
            if revos:
                entry["type_id"] = 0 if e.type == "referring" else 1
            expressions[str(e.id)] = entry
        meta["videos"][name] = {"frames": frame_names(sc.num_frames), "expressions": expressions}
        if revos:
            meta["videos"][name].update(width=sc.size[0], height=sc.size[1])
            # every annotated object of the frame (VISA generate_foreground_mask.py)
            foreground[name] = {"masks_rle": [encode_rle(m != 0) for m in sc.masks], "foreground_ratio": []}
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    if mask_root is not None:
        (mask_root / "mask_dict.json").write_text(json.dumps(mask_dict), encoding="utf-8")
        if revos:
            (mask_root / "mask_dict_foreground.json").write_text(json.dumps(foreground), encoding="utf-8")


def write_layout(
    layout: str,
    root: str | Path,
    videos: Mapping[str, Any] | Iterable[tuple[str, Any]],
    *,
    split: str | None = None,
    ground_truth: bool = True,
    davis: bool = False,
) -> list[str]:
    """Write ``videos`` (name -> a shapes-world ``Scenario``, or anything with ``frames`` (T, H, W, 3)
    uint8, ``masks`` (T, H, W) object ids, ``expressions`` (``id``, ``text``, ``type``, ``obj_ids``),
    ``num_frames`` and ``size``; a mapping or (name, scenario) pairs, read once, one at a time) under
    ``root`` as a split of ``layout``, readable by :func:`load_benchmark`. Returns notes on what
    could not be expressed in the layout.

    ``ground_truth=False`` leaves the masks out (a predictions-only split, like Ref-YouTube-VOS
    valid); ``davis=True`` (refytvos only) writes ReferFormer's Ref-DAVIS17 conversion: four
    expressions per object (ids 4k..4k+3, one per annotator set).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if davis and layout != "refytvos":
        raise ValueError("davis=True is the Ref-DAVIS17 form of the refytvos layout")
    root = Path(root)
    split = split or DEFAULT_SPLITS[layout]
    pairs = videos.items() if isinstance(videos, Mapping) else videos
    if layout == "mevis":
        base = root / split
        _write_mask_dict_layout(
            pairs,
            base / "JPEGImages",
            base / "meta_expressions.json",
            base if ground_truth else None,
            revos=False,
        )
        return []
    if layout == "revos":
        _write_mask_dict_layout(
            pairs,
            root / "JPEGImages",
            root / f"meta_expressions_{split}_.json",
            root if ground_truth else None,
            revos=True,
        )
        return []
    return _write_refytvos(root, pairs, split, ground_truth=ground_truth, davis=davis)


def _write_refytvos(
    root: Path, videos: Iterable[tuple[str, Any]], split: str, *, ground_truth: bool, davis: bool
) -> list[str]:
    from videoseg.io.video import write_mask_pngs

    meta: dict[str, Any] = {"videos": {}}
    notes: list[str] = []
    left_out = 0
    for name, sc in videos:
        _write_jpegs(root / split / "JPEGImages" / name, sc.frames)
        if ground_truth:
            write_mask_pngs(root / split / "Annotations" / name, sc.masks)  # pixel = object id
        single = [e for e in sc.expressions if len(e.obj_ids) == 1]
        left_out += len(sc.expressions) - len(single)  # an expression names one object here
        expressions: dict[str, Any] = {}
        if davis:
            texts: dict[int, str] = {}
            for e in single:
                texts.setdefault(int(e.obj_ids[0]), e.text)
            for k, (obj_id, text) in enumerate(sorted(texts.items())):
                for annotator in range(4):
                    expressions[str(4 * k + annotator)] = {"exp": text, "obj_id": str(obj_id)}
        else:
            for e in single:
                expressions[str(e.id)] = {"exp": e.text, "obj_id": str(e.obj_ids[0])}
        meta["videos"][name] = {"frames": frame_names(sc.num_frames), "expressions": expressions}
    if left_out:
        notes.append(
            f"left out {left_out} multi-object expressions (a Ref-YouTube-VOS expression names one object)"
        )
    if not davis and ground_truth and meta["videos"]:
        entries = [v["expressions"] for v in meta["videos"].values()]
        as_videos = [
            BenchVideo(n, [], root, [BenchExpression(n, i, "", "referring") for i in ex])
            for n, ex in zip(meta["videos"], entries)
        ]
        if all(_in_fours(v) for v in as_videos):
            # Every video would hold ids 0..4k-1: the reader would take it for Ref-DAVIS17.
            last = entries[-1]
            last.pop(max(last, key=int))
            notes.append("left out one expression so the set is not read as Ref-DAVIS17 (ids in fours)")
    meta_path = root / "meta_expressions" / split / "meta_expressions.json"
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return notes


__all__ = [
    "DAVIS_ANNOTATORS",
    "DEFAULT_SPLITS",
    "LAYOUTS",
    "BenchExpression",
    "BenchVideo",
    "Benchmark",
    "DatasetError",
    "FrameFolder",
    "GroundTruth",
    "frame_names",
    "load_benchmark",
    "write_layout",
]

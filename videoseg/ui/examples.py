"""The explorer's bundled shapes-world examples and the ground truth that comes with them.

Shapes-world scenarios (the weights-free test bed) are folders in the DAVIS layout: ``video.mp4``,
``Annotations/%05d.png`` (object ids) and ``expressions.json`` (text + object ids per expression).
:func:`find_examples` lists those under ``examples/``; when none are there (a bare checkout) a few are
generated once into the explorer's temp root, so the app always opens on something that runs on a
CPU in seconds. :func:`ground_truth_for` recognises an example video by its content (an upload is a
copy under another name) and returns the ground truth of the expression whose text is the query,
which lets the Compare tab score runs. :func:`match_recorded_example` recognises an example from a
trace's recorded video metadata when the recorded file is gone (a replay of a run on an example).
:func:`load_gt_zip` reads user-given ground truth instead.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = REPO_ROOT / "examples"
TRACES_DIR = EXAMPLES_DIR / "traces"
# (seed, family) generated when the repository has no examples folder of its own.
FALLBACK_SCENARIOS = ((3, "turn"), (5, "appears_after"), (7, "distractor_colour"))


@dataclass
class Example:
    """One example video folder with its expressions ({"id", "text", "type", "obj_ids"} dicts)."""

    directory: Path
    expressions: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def video(self) -> Path:
        return self.directory / "video.mp4"

    @property
    def annotations(self) -> Path:
        return self.directory / "Annotations"

    def expression_for(self, query: str) -> dict | None:
        q = " ".join(query.lower().split())
        return next((e for e in self.expressions if " ".join(e["text"].lower().split()) == q), None)


def _read_example(directory: Path) -> Example | None:
    if not ((directory / "video.mp4").is_file() and (directory / "Annotations").is_dir()):
        return None
    try:
        expressions = json.loads((directory / "expressions.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(expressions, list):
        return None
    good = [e for e in expressions if isinstance(e, dict) and "text" in e and "obj_ids" in e]
    return Example(directory, good) if good else None


def find_examples(root: Path = EXAMPLES_DIR) -> list[Example]:
    """Example folders under ``root`` (any depth), sorted by path."""
    if not root.is_dir():
        return []
    found = [_read_example(p.parent) for p in sorted(root.rglob("expressions.json"))]
    return [e for e in found if e is not None]


_lock = threading.Lock()


def fallback_examples(cache_root: Path) -> list[Example]:
    """Generate :data:`FALLBACK_SCENARIOS` once into ``cache_root/examples`` (reused afterwards)."""
    out_root = cache_root / "examples"
    with _lock:
        examples = []
        for seed, family in FALLBACK_SCENARIOS:
            d = out_root / f"{family}_{seed}"
            ex = _read_example(d)
            if ex is None:
                from videoseg.shapes.world.generator import generate

                generate(seed, family).save(d)
                ex = _read_example(d)
            if ex is not None:
                examples.append(ex)
        return examples


def available_examples(cache_root: Path) -> list[Example]:
    return find_examples() or fallback_examples(cache_root)


def example_rows(examples: list[Example], preset: str = "shapes", limit: int = 8) -> list[list[str]]:
    """[video path, query, preset] rows for ``gr.Examples``: the first expressions of each example,
    taken round-robin so every video shows up."""
    rows: list[list[str]] = []
    depth = 0
    while len(rows) < limit and any(depth < len(e.expressions) for e in examples):
        for e in examples:
            if depth < len(e.expressions) and len(rows) < limit:
                rows.append([str(e.video), e.expressions[depth]["text"], preset])
        depth += 1
    return rows


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_hashes: dict[Path, tuple[float, str]] = {}


def match_example(video_path: str | Path, examples: list[Example]) -> Example | None:
    """The example whose video has the same bytes as ``video_path`` (uploads are renamed copies)."""
    p = Path(video_path)
    if not p.is_file():
        return None
    size = p.stat().st_size
    digest = None
    for ex in examples:
        if not ex.video.is_file() or ex.video.stat().st_size != size:
            continue
        mtime = ex.video.stat().st_mtime
        cached = _hashes.get(ex.video)
        if cached is None or cached[0] != mtime:
            cached = (mtime, _sha1(ex.video))
            _hashes[ex.video] = cached
        digest = digest or _sha1(p)
        if cached[1] == digest:
            return ex
    return None


# video -> (mtime, (num_frames, width, height, fps)); an example is opened once to learn these
_infos: dict[Path, tuple[float, tuple[int, int, int, float] | None]] = {}


def video_info(ex: Example) -> tuple[int, int, int, float] | None:
    """(num_frames, width, height, fps) of the example's video; None when it cannot be read."""
    from videoseg.io.video import open_video

    try:
        mtime = ex.video.stat().st_mtime
    except OSError:
        return None
    cached = _infos.get(ex.video)
    if cached is None or cached[0] != mtime:
        try:
            with open_video(ex.video) as video:
                width, height = video.size
                info: tuple[int, int, int, float] | None = (len(video), width, height, float(video.fps))
        except (OSError, ValueError):
            info = None
        cached = (mtime, info)
        _infos[ex.video] = cached
    return cached[1]


def match_recorded_example(
    recorded: dict, examples: list[Example], path_parts: Sequence[str] = ()
) -> Example | None:
    """The one example whose video has the recorded frame count, size and frame rate, else None.

    For a trace whose recorded video file is no longer there (Gradio's cache copy of an example, a
    run on another machine). Several examples alike are told apart only by their folder's name among
    ``path_parts`` (the recorded path's parts); when that leaves more than one, none is guessed.
    """
    try:
        frames, width, height = (int(recorded[k]) for k in ("num_frames", "width", "height"))
        fps = float(recorded["fps"])
    except (KeyError, TypeError, ValueError):
        return None
    found = []
    for ex in examples:
        info = video_info(ex)
        # the fps is written as a float: compare it with a tolerance, the rest exactly
        if (
            info is not None
            and info[:3] == (frames, width, height)
            and abs(info[3] - fps) <= 1e-3 * max(fps, 1.0)
        ):
            found.append(ex)
    if len(found) > 1:
        found = [ex for ex in found if ex.name in path_parts]
    return found[0] if len(found) == 1 else None


def read_annotations(directory: Path) -> np.ndarray:
    """(T, H, W) uint8 object ids from a folder of palette PNGs."""
    from videoseg.io.video import read_mask_pngs

    return read_mask_pngs(directory)


def ground_truth_for(
    video_path: str | Path, query: str, examples: list[Example]
) -> tuple[np.ndarray, str] | None:
    """((T, H, W) bool union of the expression's objects, a description) or None when unknown."""
    ex = match_example(video_path, examples)
    return example_ground_truth(ex, query) if ex is not None else None


def example_ground_truth(ex: Example, query: str) -> tuple[np.ndarray, str] | None:
    """As :func:`ground_truth_for`, for a known example: None when no expression has the query's text."""
    expression = ex.expression_for(query)
    if expression is None:
        return None
    ids = np.asarray(expression["obj_ids"], dtype=np.uint8)
    gt = np.isin(read_annotations(ex.annotations), ids)
    return gt, f"example {ex.name}, expression {expression.get('id')} (objects {list(expression['obj_ids'])})"


def load_gt_zip(directory: Path) -> np.ndarray:
    """(T, H, W) bool from an unpacked zip of per-frame PNG masks (any non-zero pixel is the target).

    The PNGs may sit in a sub-folder; they are read in name order. Raises ValueError when there are none.
    """
    pngs = sorted(directory.rglob("*.png"))
    if not pngs:
        raise ValueError("the ground-truth zip holds no PNG masks")
    folders = {p.parent for p in pngs}
    if len(folders) > 1:
        raise ValueError(f"the ground-truth zip has PNGs in {len(folders)} folders; put them in one")
    return read_annotations(next(iter(folders))) > 0


# (example folder, expression, preset A, preset B, what the pair shows): the paper's ablations on the
# bundled clips. Table 5: where to look (a target absent from the first frame defeats first-frame
# reasoning); Table 6: which cues.
COMPARISONS = (
    ("absent_first_frame", 0, "shapes", "shapes-first-frame", "HTFS vs first frame (Table 5)"),
    ("appears_after", 0, "shapes", "shapes-first-frame", "HTFS vs first frame (Table 5)"),
    ("occlusion", 0, "shapes", "shapes-box-only", "all cues vs box only (Table 6)"),
    ("turn", 0, "shapes", "shapes-point-only", "all cues vs centre point only (Table 6)"),
    # Beyond the paper (real weights; the preset list marks them when absent): reasoning vs SAM 3
    # segmenting the query's noun phrase (two triangles here), and propagators on an occlusion.
    ("appears_after", 0, "paper", "sam3-text", "VideoSeg-R1 vs SAM 3 text"),
    ("occlusion", 0, "shapes-xmem", "shapes-sam2-video", "XMem vs SAM 2.1 (propagation)"),
    ("occlusion", 0, "shapes-sam2-video", "shapes-edgetam", "SAM 2.1 vs EdgeTAM (propagation)"),
)


def compare_rows(examples: list[Example]) -> tuple[list[list[str]], list[str]]:
    """([video, query, preset A, preset B] rows, their labels) for the Compare tab's one-click
    examples: the :data:`COMPARISONS` whose clip is among ``examples``; when none is (other
    examples), the first expression of each example under HTFS vs first frame."""
    by_name = {
        e.name.rsplit("_", 1)[0] if e.name.rsplit("_", 1)[-1].isdigit() else e.name: e for e in examples
    }
    rows, labels = [], []
    for name, index, a, b, what in COMPARISONS:
        ex = by_name.get(name)
        if ex is None or index >= len(ex.expressions):
            continue
        text = ex.expressions[index]["text"]
        rows.append([str(ex.video), text, a, b])
        labels.append(f"{what}: {text}")
    if not rows:
        for ex in examples[:4]:
            text = ex.expressions[0]["text"]
            rows.append([str(ex.video), text, "shapes", "shapes-first-frame"])
            labels.append(f"HTFS vs first frame (Table 5): {text}")
    return rows, labels


__all__ = [
    "COMPARISONS",
    "EXAMPLES_DIR",
    "TRACES_DIR",
    "Example",
    "available_examples",
    "compare_rows",
    "example_ground_truth",
    "example_rows",
    "find_examples",
    "ground_truth_for",
    "load_gt_zip",
    "match_example",
    "match_recorded_example",
    "video_info",
]

"""One writer for every artefact of a run (the outputs of paper steps 1-3), from a :class:`RunState`.

The command line (``run`` / ``replay``), the explorer's downloads, ``benchmark`` and the shapes
evaluation all write (or compute) their artefacts here, so each artefact has one format:

``masks/%05d.png``
    one palette PNG per frame (DAVIS palette): pixel = target index + 1, 0 = background; where
    targets overlap the later one wins (:func:`videoseg.core.masks.labels_from_masks`).
``overlay.mp4``
    the video with each target's mask blended in its explorer colour and outlined
    (:func:`videoseg.viz.overlay.overlay_masks`, the look of the Run tab); H.264, browser-playable.
    Without the video (a replayed trace whose video moved) the explorer draws on a dark canvas.
``cues.json``
    what the reasoner decided (step 2) and around it; schema below.
``reasoning.txt``
    the reasoner's raw text (``<think>...</think><answer>...</answer>``).
benchmark PNGs
    single-channel 0 / 255 PNGs of the union of the targets, one per benchmark frame name (what the
    MeViS / ReVOS scripts and the Ref-YouTube-VOS server read): :func:`write_benchmark_pngs`.

cues.json, schema ``videoseg-cues/2`` (one JSON object)::

    schema           "videoseg-cues/2"
    query            the query text
    preset           preset name or null
    video            {"path", "num_frames", "fps", "width", "height", "duration"} as the run recorded it
    frame_idx        the keyframe the cues are on (step 1's target frame), or null
    targets          [{"obj_id", "frame_idx", "box": [x1, y1, x2, y2] | null, "point": [x, y] | null,
                       "negatives": [[x, y], ...]}, ...] in original-frame pixels (TargetCues.to_dict)
    used             cue kinds kept by the cue ablation: subset of ["box", "point", "negative"]
    keyframe_scores  the segmenter's score per target, in target order (null where none)
    parse_error      why the answer could not be read, or null
    sampler          {"strategy", "key_segment", "target_frame", "key_frames", "reference_frames"} | null
    reasoning        {"think", "answer", "num_tokens"} | null
    timings          {stage: seconds}

Files written before this schema have two older shapes: the command line's (``targets``, ``used``,
``keyframe_scores`` as a list, no ``schema``) and the explorer's (``cues``, ``cues_used``,
``keyframe_scores`` as a ``{"0": score}`` dict); :func:`read_cues` reads all three into this one.

Writing is streamed (:class:`RunExport`): a mask PNG is written as soon as its frame's masks arrive
(in a writer thread), and the overlay is encoded in chunks of :data:`OVERLAY_CHUNK` frames, each as
soon as all its masks are known (forward propagation fills chunks after the keyframe first, backward
the ones before it), in a second thread; at the end the chunks are joined into one mp4 without
re-encoding. Memory stays bounded: the queues are bounded, and masks are kept as RLE only until the
chunk they belong to is encoded. The outputs go into a new folder beside ``--out`` that replaces it
in one step (:class:`videoseg.io.outputs.FolderReplacement`).
"""

from __future__ import annotations

import json
import queue
import shutil
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from videoseg.core import events as ev
from videoseg.core.masks import decode_rle, labels_from_masks, union
from videoseg.core.state import RunState
from videoseg.io.outputs import MASK_NAME, FolderReplacement, crash_point, same_file

CUES_SCHEMA = "videoseg-cues/2"
MASKS_DIR = "masks"
OVERLAY_NAME = "overlay.mp4"
CUES_NAME = "cues.json"
REASONING_NAME = "reasoning.txt"
OUTPUT_NAMES = (MASKS_DIR, CUES_NAME, REASONING_NAME, OVERLAY_NAME)
OVERLAY_CHUNK = 256  # frames per overlay segment: one seek + one IDR frame per chunk
CANVAS_GREY = 40  # background of an overlay drawn without its video (a replay whose video moved)
PNG_LEVEL = 6  # zlib level of mask PNGs (with the run-length strategy the level barely matters)
OVERLAY_PRESET = "ultrafast"  # x264 preset of the streamed overlay: ~2.5x faster than veryfast at 1080p
_QUEUE = 32  # bounded queues: a writer that falls behind slows the run instead of growing memory


# --------------------------------------------------------------------------- single artefacts


def cues_document(state: RunState) -> dict[str, Any]:
    """The ``cues.json`` object (schema ``videoseg-cues/2``, see the module docstring) of a run."""
    r = state.sampler_result
    num_targets = max([len(state.cues or [])] + [k + 1 for k in state.keyframe_masks])
    scores = [
        float(state.keyframe_masks[t].score) if t in state.keyframe_masks else None
        for t in range(num_targets)
    ]
    return {
        "schema": CUES_SCHEMA,
        "query": state.query,
        "preset": state.preset,
        "video": dict(state.video),
        "frame_idx": state.keyframe,
        "targets": list(state.cues or []),
        "used": list(state.cues_used),
        "keyframe_scores": scores,
        "parse_error": None if state.parse_error is None else state.parse_error.message,
        "sampler": None
        if r is None
        else {
            "strategy": r.strategy,
            "key_segment": r.key_segment,
            "target_frame": r.target_frame,
            "key_frames": r.key_frames,
            "reference_frames": r.reference_frames,
        },
        "reasoning": None
        if state.reasoning is None
        else {
            "think": state.reasoning.think,
            "answer": state.reasoning.answer,
            "num_tokens": state.reasoning.num_tokens,
        },
        "timings": dict(state.timings),
    }


def read_cues(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A ``cues.json`` (path or parsed object) of any version, as a schema-2 object.

    Older files: the command line's (``targets`` / ``used`` / scores as a list) and the explorer's
    (``cues`` / ``cues_used`` / scores as a ``{"0": score}`` dict). ValueError names what is wrong."""
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        try:
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{source}: not a readable cues.json ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError("a cues.json holds one JSON object")
    schema = data.get("schema")
    if schema not in (None, CUES_SCHEMA):
        raise ValueError(f"unknown cues.json schema {schema!r} (this version reads {CUES_SCHEMA})")
    targets = data.get("targets", data.get("cues")) or []
    used = data.get("used", data.get("cues_used")) or []
    if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
        raise ValueError("cues.json: 'targets' must be a list of objects")
    if not isinstance(used, list):
        raise ValueError("cues.json: 'used' must be a list")
    scores: Any = data.get("keyframe_scores") or []
    if isinstance(scores, dict):  # the explorer's {"0": score, ...}
        try:
            by_target = {int(k): v for k, v in scores.items()}
        except ValueError as exc:
            raise ValueError("cues.json: 'keyframe_scores' keys must be target numbers") from exc
        scores = [by_target.get(t) for t in range(max(by_target, default=-1) + 1)]
    if not isinstance(scores, list):
        raise ValueError("cues.json: 'keyframe_scores' must be a list")
    frame_idx = data.get("frame_idx")
    if frame_idx is None and targets:
        frame_idx = targets[0].get("frame_idx")
    return {
        "schema": CUES_SCHEMA,
        "query": data.get("query", ""),
        "preset": data.get("preset"),
        "video": data.get("video") or {},
        "frame_idx": frame_idx,
        "targets": targets,
        "used": used,
        "keyframe_scores": scores,
        "parse_error": data.get("parse_error"),
        "sampler": data.get("sampler"),
        "reasoning": data.get("reasoning"),
        "timings": data.get("timings") or {},
    }


def write_cues(path: str | Path, state: RunState) -> Path:
    path = Path(path)
    path.write_text(json.dumps(cues_document(state), indent=2), encoding="utf-8")
    return path


def reasoning_text(state: RunState) -> str:
    """The reasoner's full text (streamed pieces joined while the reasoning is unfinished)."""
    return state.reasoning.raw_text if state.reasoning is not None else state.text


def write_reasoning(path: str | Path, state: RunState) -> Path:
    path = Path(path)
    # errors=: a query or answer with undecodable bytes must not stop the write.
    path.write_text(reasoning_text(state), encoding="utf-8", errors="backslashreplace")
    return path


def frame_masks(rles: Sequence[Mapping[str, Any]], size: tuple[int, int], frame_idx: int) -> np.ndarray:
    """(K, H, W) bool masks of one frame from its RLEs; ValueError naming the frame when they cannot
    be decoded or do not have the video's size ``(width, height)``."""
    width, height = size
    try:
        masks = [decode_rle(dict(r)) for r in rles]
    except Exception as exc:  # a damaged trace: say which frame
        raise ValueError(f"the mask of frame {frame_idx} cannot be decoded ({exc})") from exc
    for m in masks:
        if m.shape != (height, width):
            raise ValueError(
                f"the mask of frame {frame_idx} is {m.shape[1]}x{m.shape[0]}, the video {width}x{height}"
            )
    return np.stack(masks) if masks else np.zeros((0, height, width), dtype=bool)


def write_mask_png(path: str | Path, labels: np.ndarray) -> None:
    """One (H, W) uint8 label map as a DAVIS-palette PNG."""
    from PIL import Image

    from videoseg.io.video import davis_palette

    height, width = labels.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    image.putpalette(davis_palette().tobytes())
    # zlib's run-length strategy: label maps are runs, so it is both faster and smaller than the
    # default (1080p: ~10 ms and 5 KB vs ~20 ms and 13 KB at level 1).
    image.save(path, compress_level=PNG_LEVEL, compress_type=zlib.Z_RLE)


def label_maps(state: RunState, *, missing: str = "error") -> Iterator[np.ndarray]:
    """(H, W) uint8 label maps of frames 0..T-1; a frame without masks raises (``missing="error"``)
    or is empty (``"empty"``, the explorer after a stopped run)."""
    width, height = _size(state)
    for idx in range(state.num_frames):
        if idx not in state.masks:
            if missing == "empty":
                yield np.zeros((height, width), dtype=np.uint8)
                continue
            raise ValueError(f"frame {idx} has no mask in this run")
        masks = frame_masks(state.masks.rles(idx), (width, height), idx)
        yield labels_from_masks(masks) if masks.shape[0] else np.zeros((height, width), dtype=np.uint8)


def write_masks(folder: str | Path, state: RunState, *, missing: str = "error") -> list[Path]:
    """``folder/%05d.png`` for every frame; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for idx, labels in enumerate(label_maps(state, missing=missing)):
        path = folder / f"{idx:05d}.png"
        write_mask_png(path, labels)
        paths.append(path)
    return paths


def zip_masks(folder: Path, paths: Iterable[Path], zip_path: Path) -> Path:
    """The mask PNGs as ``masks/%05d.png`` entries of one zip (the explorer's download)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
        for p in paths:
            archive.write(p, f"{MASKS_DIR}/{Path(p).name}")
    return zip_path


def overlay_frame(frame: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The explorer's look: each target blended in its colour and outlined."""
    from videoseg.viz.overlay import overlay_masks

    return overlay_masks(frame, masks) if masks.shape[0] and masks.any() else frame


def overlay_frames(
    state: RunState, video: Any | None, start: int = 0, stop: int | None = None
) -> Iterator[np.ndarray]:
    """Overlay frames ``start..stop-1`` of a run (the video's pixels, or a dark canvas without it);
    a frame without masks is shown as it is."""
    width, height = _size(state)
    stop = state.num_frames if stop is None else stop
    source = (
        video.iter_frames(start, stop)
        if video is not None
        else ((i, np.full((height, width, 3), CANVAS_GREY, dtype=np.uint8)) for i in range(start, stop))
    )
    for idx, frame in source:
        if idx in state.masks:
            frame = overlay_frame(frame, frame_masks(state.masks.rles(idx), (width, height), idx))
        yield frame


def write_overlay(path: str | Path, state: RunState, video: Any | None = None) -> Path:
    """``overlay.mp4`` of a run in one pass (the explorer; :class:`RunExport` streams it instead)."""
    from videoseg.io.video import write_mp4

    return write_mp4(path, overlay_frames(state, video), _fps(state, video))


def write_benchmark_pngs(
    folder: str | Path,
    masks_by_frame: Mapping[int, np.ndarray],
    names: Sequence[str],
    size: tuple[int, int],
) -> list[Path]:
    """``folder/<name>.png`` for frame i = ``names[i]``: single-channel PNG, 255 where any target is
    (the union the benchmarks score), 0 elsewhere; a frame with no mask or another size is empty."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size
    paths = []
    for idx, name in enumerate(names):
        mask = np.zeros((height, width), dtype=np.uint8)
        if idx in masks_by_frame:
            masks = masks_by_frame[idx]
            if masks.shape[0] and masks.shape[1:] == (height, width):
                mask[union(masks)] = 255
        path = folder / f"{name}.png"
        Image.fromarray(mask).save(path)  # 2-D uint8 -> a single-channel ("L") PNG
        paths.append(path)
    return paths


def _size(state: RunState) -> tuple[int, int]:
    width, height = state.video.get("width"), state.video.get("height")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
        raise ValueError(f"the run records no usable frame size ({width!r}x{height!r})")
    return int(width), int(height)  # type: ignore[arg-type]


def _fps(state: RunState, video: Any | None) -> float:
    fps = state.video.get("fps")
    if isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0:
        return float(fps)
    return float(getattr(video, "fps", 0) or 12.0)


# --------------------------------------------------------------------------- streaming export


class _Worker:
    """One writer thread running jobs from a bounded queue in order; the first error is kept,
    later jobs are skipped, and :meth:`close` re-raises it in the caller's thread."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=_QUEUE)
        self.error: BaseException | None = None
        self.busy_s = 0.0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        import time

        while True:
            job = self._jobs.get()
            if job is None:
                self._jobs.task_done()
                return
            if self.error is None:
                start = time.perf_counter()
                try:
                    job()
                except BaseException as exc:  # kept and re-raised by close()
                    self.error = exc
                self.busy_s += time.perf_counter() - start
            self._jobs.task_done()

    def put(self, job: Callable[[], None]) -> None:
        if self.error is not None:
            raise self.error
        self._jobs.put(job)

    def wait(self) -> None:
        """Block until every job queued so far is done."""
        self._jobs.join()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


class RunExport:
    """Writes a run's artefacts as its events arrive; :meth:`finish` switches them into ``out``.

    Feed every event (after or before folding it into the state, it does not matter) with
    :meth:`feed`; then :meth:`finish` with the final state writes ``cues.json`` and
    ``reasoning.txt``, waits for the writer threads, joins the overlay, and replaces ``out`` in one
    step (the user's own files in it stay). :meth:`abort` (or leaving the ``with`` block by an
    exception) removes what was written; ``out`` is untouched until :meth:`finish` commits.

    ``video``: an opened video for the overlay (else the path the run records is opened);
    ``overlay=False``: no ``overlay.mp4``; ``keep``: a file in ``out`` never replaced (the run's
    input video, when it lies there under an output's name).
    """

    def __init__(
        self,
        out: str | Path,
        *,
        video: Any | None = None,
        video_path: str | Path | None = None,
        overlay: bool = True,
        chunk: int = OVERLAY_CHUNK,
    ) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.out = Path(out)
        self.replacement = FolderReplacement(self.out)
        self.folder = self.replacement.path
        (self.folder / MASKS_DIR).mkdir()
        self.notes: list[str] = []
        self._video = video
        self._own_video = False
        self._video_path = None if video_path is None else str(video_path)
        self._want_overlay = overlay
        self._chunk = chunk
        self._size: tuple[int, int] | None = None
        self._num_frames = 0
        self._fps = 12.0
        self._written: set[int] = set()
        self._pending: dict[int, dict[int, list[dict[str, Any]]]] = {}  # chunk -> frame -> rles
        self._chunks_done: set[int] = set()
        self._overlay_ok = False
        self._parts = self.folder / ".overlay-parts"
        self._pngs = _Worker("videoseg-export-masks")
        self._overlay = _Worker("videoseg-export-overlay")
        self._closed = False

    # ------------------------------------------------------------------ feeding

    def __enter__(self) -> RunExport:
        return self

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if kind is not None:
            self.abort()

    def feed(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self.start(event.video)
        elif isinstance(event, ev.PropagatedMask):
            self.add_mask(event.frame_idx, list(event.rles))

    def start(self, video_info: Mapping[str, Any]) -> None:
        """The run's video facts (``RunStarted.video``): frame count, size, fps, path."""
        n, w, h = video_info.get("num_frames"), video_info.get("width"), video_info.get("height")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (n, w, h)):
            return  # the video did not open: the run fails and nothing is written
        self._num_frames, self._size = int(n), (int(w), int(h))  # type: ignore[arg-type]
        fps = video_info.get("fps")
        if isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0:
            self._fps = float(fps)
        if self._video_path is None and video_info.get("path"):
            self._video_path = str(video_info["path"])
        if self._want_overlay:
            self._overlay.put(self._open_overlay_video)

    def add_mask(self, frame_idx: int, rles: list[dict[str, Any]]) -> None:
        """One frame's masks (RLE per target): its PNG now, its overlay chunk once complete."""
        if self._size is None:
            raise ValueError("masks arrived before the run's video facts (run_started)")
        if not 0 <= frame_idx < self._num_frames:
            raise ValueError(f"frame {frame_idx} is outside the video (0..{self._num_frames - 1})")
        self._written.add(frame_idx)
        if len(self._written) == 2:
            crash_point("writing")  # the kill test: a run dies with its outputs half written
        size, folder = self._size, self.folder / MASKS_DIR

        def png() -> None:
            masks = frame_masks(rles, size, frame_idx)
            labels = labels_from_masks(masks) if masks.shape[0] else np.zeros(size[::-1], np.uint8)
            write_mask_png(folder / f"{frame_idx:05d}.png", labels)

        self._pngs.put(png)
        if self._want_overlay:
            chunk = frame_idx // self._chunk
            pending = self._pending.setdefault(chunk, {})
            pending[frame_idx] = rles
            start, stop = self._chunk_range(chunk)
            if len(pending) == stop - start and chunk not in self._chunks_done:
                self._chunks_done.add(chunk)
                frames = self._pending.pop(chunk)
                self._overlay.put(lambda: self._encode_chunk(chunk, frames))

    def flush(self) -> None:
        """Wait until everything fed so far is written (tests and the writing bench)."""
        self._pngs.wait()
        self._overlay.wait()

    def pending_frames(self) -> list[int]:
        """Frames whose masks are held (as RLE) until their overlay chunk is complete."""
        return sorted(idx for frames in self._pending.values() for idx in frames)

    def _chunk_range(self, chunk: int) -> tuple[int, int]:
        start = chunk * self._chunk
        return start, min(start + self._chunk, self._num_frames)

    # ------------------------------------------------------------------ overlay (writer thread)

    def _open_overlay_video(self) -> None:
        from videoseg.io.video import VideoError, open_video

        if self._video is None:
            if not self._video_path:
                self.notes.append("no video path recorded: overlay.mp4 not written")
                return
            try:
                self._video = open_video(self._video_path)
                self._own_video = True
            except (VideoError, OSError) as exc:
                self.notes.append(f"overlay.mp4 not written: {exc}")
                return
        if same_file(self.out / OVERLAY_NAME, self._video_path or ""):
            self.notes.append(f"overlay.mp4 not written: {self.out / OVERLAY_NAME} is the run's video itself")
            return
        video_size = tuple(self._video.size)
        if len(self._video) != self._num_frames or video_size != self._size:
            assert self._size is not None
            self.notes.append(
                f"overlay.mp4 not written: {self._video_path} has {len(self._video)} frames of "
                f"{video_size[0]}x{video_size[1]}, the run {self._num_frames} of "
                f"{self._size[0]}x{self._size[1]}"
            )
            return
        self._parts.mkdir()
        self._overlay_ok = True

    def _encode_chunk(self, chunk: int, rles: dict[int, list[dict[str, Any]]]) -> None:
        from videoseg.io.video import write_mp4

        if not self._overlay_ok:
            return
        assert self._size is not None
        start, stop = self._chunk_range(chunk)
        size = self._size

        def frames() -> Iterator[np.ndarray]:
            for idx, frame in self._video.iter_frames(start, stop):
                yield overlay_frame(frame, frame_masks(rles[idx], size, idx))

        write_mp4(self._parts / f"{chunk:06d}.mp4", frames(), self._fps, preset=OVERLAY_PRESET)

    # ------------------------------------------------------------------ the end

    def finish(self, state: RunState) -> list[str]:
        """Write the rest, wait for the writers, check every frame is there, switch ``out``.

        Returns notes for the user (an overlay not written and why, earlier outputs replaced)."""
        try:
            self._close_workers()
            missing = next((i for i in range(self._num_frames) if i not in self._written), None)
            if self._size is None:
                raise ValueError("the run records no usable video (no run_started with its size)")
            if missing is not None:
                raise ValueError(f"frame {missing} has no mask in this run")
            if self._overlay_ok:
                chunks = range((self._num_frames + self._chunk - 1) // self._chunk)
                join_mp4([self._parts / f"{c:06d}.mp4" for c in chunks], self.folder / OVERLAY_NAME)
            shutil.rmtree(self._parts, ignore_errors=True)
            write_cues(self.folder / CUES_NAME, state)
            write_reasoning(self.folder / REASONING_NAME, state)
            notes = self._earlier_notes()
            self.replacement.commit(self._replaced)
        except BaseException:
            self.abort()
            raise
        return self.notes + notes

    def _close_workers(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._pngs.close()
        finally:
            try:
                self._overlay.close()
            finally:
                if self._own_video and self._video is not None:
                    self._video.close()

    def abort(self) -> None:
        """Stop the writers and remove what was written; ``out`` stays as it was."""
        # The run already failed: its first error is what the user is told, not a writer's.
        with suppress(Exception):
            self._close_workers()
        self.replacement.discard()

    def _keep(self, path: Path) -> bool:
        return bool(self._video_path) and same_file(path, self._video_path or "")

    def _replaced(self, rel: Path) -> bool | None:
        """Of an entry of the earlier ``out``: True = an output of the earlier run (the new one
        replaces it), None = a folder the new run writes too (look inside), False = keep it."""
        parts = rel.parts
        if parts == (MASKS_DIR,):
            return (
                None if (self.out / MASKS_DIR).is_dir() and not (self.out / MASKS_DIR).is_symlink() else True
            )
        if len(parts) == 2 and parts[0] == MASKS_DIR:
            return bool(MASK_NAME.fullmatch(parts[1]))
        if len(parts) == 1 and parts[0] in OUTPUT_NAMES:
            return not self._keep(self.out / parts[0])
        return False

    def _earlier_notes(self) -> list[str]:
        out = self.out
        earlier = [n for n in OUTPUT_NAMES if (out / n).exists() and not self._keep(out / n)]
        notes = []
        if earlier:
            notes.append(f"replaced the outputs of an earlier run in {out} ({', '.join(earlier)})")
        if (out / OVERLAY_NAME).is_file() and not self._keep(out / OVERLAY_NAME) and not self._overlay_ok:
            notes.append(f"removed the earlier run's overlay.mp4 from {out} (it would not match these masks)")
        return notes

    @property
    def writer_seconds(self) -> float:
        """Seconds the writer threads spent writing (for the writing bench)."""
        return self._pngs.busy_s + self._overlay.busy_s


def join_mp4(parts: Sequence[Path], path: Path) -> Path:
    """Join mp4 segments of one encoder setting into one file without re-encoding.

    Each segment starts with a key frame, so its packets can follow the previous segment's once
    their timestamps are shifted by the frames before them (decoding stays frame-exact; checked in
    tests/io/test_export.py)."""
    import av

    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as output:
        stream = None
        offset = 0
        for part in parts:
            with av.open(str(part)) as source:
                src = source.streams.video[0]
                if stream is None:
                    stream = output.add_stream_from_template(src)
                last = offset
                for packet in source.demux(src):
                    if packet.dts is None:  # the flush packet at the end of a stream
                        continue
                    end = packet.pts + (packet.duration or 0)
                    packet.pts += offset
                    packet.dts += offset
                    last = max(last, end + offset)
                    packet.stream = stream
                    output.mux(packet)
                offset = last
    return path


def export_run(
    state: RunState,
    out: str | Path,
    *,
    video: Any | None = None,
    video_path: str | Path | None = None,
    overlay: bool = True,
) -> list[str]:
    """Write every artefact of a finished run (a replayed trace) into ``out`` at once, through the
    same streaming writer the live run uses; returns notes."""
    num_frames = state.video.get("num_frames")
    if not isinstance(num_frames, int) or isinstance(num_frames, bool) or num_frames < 1:
        raise ValueError(f"the run records no usable frame count ({num_frames!r})")
    _size(state)  # a usable frame size, or the reason
    export = RunExport(out, video=video, video_path=video_path, overlay=overlay)
    with export:
        export.start(state.video)
        for idx in range(state.num_frames):
            if idx not in state.masks:
                raise ValueError(f"frame {idx} has no mask in this run")
            export.add_mask(idx, state.masks.rles(idx))
        return export.finish(state)


__all__ = [
    "CUES_SCHEMA",
    "OUTPUT_NAMES",
    "OVERLAY_CHUNK",
    "RunExport",
    "cues_document",
    "export_run",
    "frame_masks",
    "join_mp4",
    "label_maps",
    "overlay_frame",
    "overlay_frames",
    "read_cues",
    "reasoning_text",
    "write_benchmark_pngs",
    "write_cues",
    "write_mask_png",
    "write_masks",
    "write_overlay",
    "write_reasoning",
    "zip_masks",
]

"""Per-session files and upload limits of the explorer (the demo around the paper's pipeline).

A Space serves many visitors from one disk, so everything a run writes (frames, overlays, mp4s, zips,
traces) goes under one root, in one folder per browser session (``gr.Request.session_hash``) and one
sub-folder per run. :class:`SessionStore` bounds that tree: folders older than ``max_age_s`` go first,
then the oldest sessions until the whole tree is under ``max_total_bytes``; one session keeps its
newest runs within ``max_session_bytes``. :class:`UploadCaps` rejects uploads that are too big (file
bytes, duration, resolution, frames) before any decoding work, with messages a visitor can act on.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from videoseg.core import limits
from videoseg.core.trace import TraceBounds
from videoseg.io.video import Video, VideoCaps, VideoError, open_video


class UploadError(ValueError):
    """An upload is missing, too large or not what was asked for; the message says what to do."""


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class UploadCaps:
    """Limits on user uploads. Environment variables of the same name (upper case, prefixed
    ``VIDEOSEG_``) override the defaults, so a Space can tighten them without code changes."""

    max_file_mb: float = 200.0
    max_duration_s: float = 120.0
    max_side: int = 1920
    max_frames: int = 3600
    max_zip_mb: float = 200.0  # trace / ground-truth / prediction archives, uncompressed

    @classmethod
    def from_env(cls) -> UploadCaps:
        return cls(
            max_file_mb=_env_float("VIDEOSEG_MAX_FILE_MB", cls.max_file_mb),
            max_duration_s=_env_float("VIDEOSEG_MAX_DURATION_S", cls.max_duration_s),
            max_side=int(_env_float("VIDEOSEG_MAX_SIDE", cls.max_side)),
            max_frames=int(_env_float("VIDEOSEG_MAX_FRAMES", cls.max_frames)),
            max_zip_mb=_env_float("VIDEOSEG_MAX_ZIP_MB", cls.max_zip_mb),
        )

    def video_caps(self) -> VideoCaps:
        return VideoCaps(
            max_width=self.max_side,
            max_height=self.max_side,
            max_duration_s=self.max_duration_s,
            max_file_bytes=int(self.max_file_mb * 1024**2),
            max_frames=self.max_frames,
        )

    def describe(self) -> str:
        return (
            f"videos up to {self.max_file_mb:g} MB, {self.max_duration_s:g} s, {self.max_frames} frames "
            f"and {self.max_side} px on the longer side"
        )

    def check_file(
        self,
        path: str | Path | None,
        what: str = "video",
        max_mb: float | None = None,
        missing: str = "upload one",
    ) -> Path:
        """The path of an existing, non-empty file within the size cap, else :class:`UploadError`.

        ``missing``: what the visitor can do when no file was given, which differs per tab (only
        the Run tab has examples to pick)."""
        if path is None or (isinstance(path, str) and not path.strip()):
            raise UploadError(f"No {what} given: {missing}.")
        p = Path(path)
        if not p.is_file():
            raise UploadError(f"The {what} file {p.name!r} was not found on the server; upload it again.")
        size = p.stat().st_size
        if size == 0:
            raise UploadError(f"The {what} file {p.name!r} is empty.")
        limit = self.max_file_mb if max_mb is None else max_mb
        if size > limit * 1024**2:
            raise UploadError(
                f"The {what} file {p.name!r} is {size / 1024**2:.1f} MB; the limit here is {limit:g} MB."
            )
        return p

    def open(self, path: str | Path | None, missing: str = "upload one") -> Video:
        """Open an uploaded video within the caps (the caller closes it).

        Raises :class:`UploadError` with the video module's own explanation (not a video, corrupt,
        unsupported codec, too long / too large); ``missing`` as in :meth:`check_file`.
        """
        p = self.check_file(path, "video", missing=missing)
        try:
            return open_video(p, caps=self.video_caps())
        except VideoError as exc:
            # the library names the setting for developers ("(VideoCaps.max_frames)"); a visitor
            # gets the limits in words right after
            reason = re.sub(r" \(VideoCaps\.\w+\)", "", hide_paths(str(exc), p.parent))
            raise UploadError(
                f"This video cannot be used: {reason}. Limits here: {self.describe()}."
            ) from exc

    def check_video(self, path: str | Path | None, missing: str = "upload one") -> dict[str, float]:
        """Open the video once to check it; returns its metadata (see :meth:`open`)."""
        with self.open(path, missing) as video:
            width, height = video.size
            return {
                "num_frames": len(video),
                "fps": float(video.fps),
                "width": width,
                "height": height,
                "duration": float(video.duration),
            }

    def trace_bounds(self) -> TraceBounds:
        """How large a run a trace replayed here may describe: the video limits of an upload
        (a replay draws every recorded frame at the recorded size) and the archive size cap."""
        return TraceBounds(
            max_bytes=int(self.max_zip_mb * 1024**2),
            max_side=min(self.max_side, limits.MAX_SIDE),
            max_pixels=min(self.max_side**2, limits.MAX_PIXELS),
            max_frames=min(self.max_frames, limits.MAX_FRAMES),
        )

    def extract_zip(self, path: str | Path | None, dest: Path, what: str = "archive") -> Path:
        """Unpack a zip safely into ``dest``, or refuse it in words (:class:`UploadError`).

        Nothing the archive claims is trusted: the entry count, each name (no absolute paths or
        ``..``, no part longer than a file system allows, at most :data:`~videoseg.core.limits.MAX_ZIP_NAME_BYTES`),
        the sizes its entries declare (summed against the cap first) and the bytes they really
        unpack to (counted while writing, so an entry that lies about its size, or a zip bomb, stops
        at the cap); encrypted, damaged or unsupported entries are named; and the PNG masks are
        checked by their headers against :data:`~videoseg.core.limits.MAX_SIDE` and
        :data:`~videoseg.core.limits.MAX_ARCHIVE_PIXELS`, since reading them allocates width x height each.
        """
        p = self.check_file(path, what, max_mb=self.max_zip_mb)
        budget = int(self.max_zip_mb * 1024**2)
        try:
            archive = zipfile.ZipFile(p)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
            raise UploadError(f"The {what} {p.name!r} is not a zip file ({_reason(exc)}).") from None
        with archive:
            members = archive.infolist()
            if len(members) > limits.MAX_ZIP_ENTRIES:
                raise UploadError(
                    f"The {what} holds {len(members):,} entries; at most {limits.MAX_ZIP_ENTRIES:,} are unpacked here."
                )
            total = sum(m.file_size for m in members)
            if total > budget:
                raise UploadError(
                    f"The {what} unpacks to {total / 1024**2:.0f} MB; the limit here is {self.max_zip_mb:g} MB."
                )
            dest.mkdir(parents=True, exist_ok=True)
            root = dest.resolve()
            for m in members:
                problem = _entry_problem(m, dest, root)
                if problem:
                    raise UploadError(f"The {what} holds {problem}.")
            written, pixels = 0, 0
            for m in members:
                target = dest / m.filename
                try:
                    if m.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(m) as source, target.open("wb") as out:
                        while chunk := source.read(1 << 20):
                            written += len(chunk)
                            if written > budget:
                                raise UploadError(
                                    f"The {what} unpacks to more than {self.max_zip_mb:g} MB (more than its "
                                    "entries declare); the limit here is that size."
                                )
                            out.write(chunk)
                except UploadError:
                    raise
                except (
                    zipfile.BadZipFile,
                    zlib.error,
                    EOFError,
                    RuntimeError,
                    NotImplementedError,
                    OSError,
                    ValueError,
                ) as exc:
                    raise UploadError(
                        f"The {what} cannot be unpacked: its entry {_name(m.filename)} is {_reason(exc)}."
                    ) from None
                size = png_size(target)
                if size is not None:
                    width, height = size
                    if not (0 < width <= limits.MAX_SIDE and 0 < height <= limits.MAX_SIDE):
                        raise UploadError(
                            f"The {what} holds a PNG of {width}x{height} ({_name(m.filename)}); masks of at most "
                            f"{limits.MAX_SIDE} px a side are read here."
                        )
                    pixels += width * height
                    if pixels > limits.MAX_ARCHIVE_PIXELS:
                        raise UploadError(
                            f"The {what}'s PNG masks hold more than {limits.MAX_ARCHIVE_PIXELS / 1e9:.1f} "
                            "billion pixels together; fewer or smaller masks are read here."
                        )
        return dest


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG file's header, or None when the file is not a PNG."""
    try:
        with path.open("rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _entry_problem(member: zipfile.ZipInfo, dest: Path, root: Path) -> str | None:
    """Why an archive entry may not be unpacked (its name or kind), or None."""
    name = member.filename
    shown = _name(name)
    if len(name.encode("utf-8", "surrogateescape")) > limits.MAX_ZIP_NAME_BYTES:
        return f"an entry name of more than {limits.MAX_ZIP_NAME_BYTES} bytes ({shown})"
    if "\x00" in name or any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in name.split("/")):
        return f"an entry name no file system can hold ({shown})"
    if name.startswith("/") or ".." in name.split("/"):
        return f"an unsafe path {shown}"
    try:
        target = (dest / name).resolve()
    except (OSError, ValueError, RuntimeError):
        return f"an unsafe path {shown}"
    if not target.is_relative_to(root) or (target == root and not member.is_dir()):
        return f"an unsafe path {shown}"
    if member.flag_bits & 0x1:
        return f"an encrypted entry {shown}; give an archive without a password"
    return None


def _name(name: str) -> str:
    shown = repr(name)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _reason(exc: BaseException) -> str:
    """A damaged archive's problem in words (zipfile's "Bad CRC-32 for file 'x'" and the like)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, zipfile.BadZipFile) and "CRC" in text:
        return "damaged (its data does not match its checksum; an entry may lie about its size)"
    if isinstance(exc, (zlib.error, EOFError)):
        return "damaged (its compressed data is cut off or corrupt)"
    if isinstance(exc, NotImplementedError):
        return f"in a form this server cannot unpack ({text})"
    if isinstance(exc, OSError):
        return f"not writable here ({exc.strerror or text})"
    return text[:160]


def hide_paths(text: str, *folders: str | Path | None) -> str:
    """``text`` without the server ``folders`` (and what follows them up to a file's name): a visitor
    needs the name of their file, not where it sits on this machine."""
    for folder in folders:
        if not folder:
            continue
        for form in {str(folder), str(Path(folder).resolve())}:
            if form.rstrip("/") in ("", "."):
                continue  # the root or the working folder: nothing to hide, much to mangle
            text = re.sub(re.escape(form.rstrip("/")) + r"/(?:[^/'\"\s]+/)*", "", text)
    return text


_SAFE = re.compile(r"[^A-Za-z0-9_-]")


class SessionStore:
    """One folder per session under ``root``, each holding one folder per run; bounded in age and size."""

    def __init__(
        self,
        root: str | Path | None = None,
        max_total_bytes: int = 2 * 1024**3,
        max_session_bytes: int = 512 * 1024**2,
        max_age_s: float = 6 * 3600,
    ) -> None:
        default = Path(tempfile.gettempdir()) / "videoseg-explorer"
        self.root = Path(root or os.environ.get("VIDEOSEG_UI_TMP") or default)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_total_bytes = max_total_bytes
        self.max_session_bytes = max_session_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._counter = 0

    def session_dir(self, session_hash: str | None) -> Path:
        # The hash comes from the client; keep only safe characters so it cannot name another path.
        name = _SAFE.sub("", session_hash or "")[:64] or "anonymous"
        path = self.root / f"s-{name}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def new_run_dir(self, session_hash: str | None, kind: str = "run") -> Path:
        """A fresh folder for one run; trims this session to its size cap and the store to its caps."""
        self.cleanup()
        session = self.session_dir(session_hash)
        self._trim_session(session)
        with self._lock:
            self._counter += 1
            name = f"{_SAFE.sub('', kind)}-{time.strftime('%H%M%S')}-{os.getpid()}-{self._counter}"
        path = session / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def drop(self, session_hash: str | None) -> None:
        """Delete a session's folder (called when its browser tab closes)."""
        name = _SAFE.sub("", session_hash or "")[:64]
        if name:
            shutil.rmtree(self.root / f"s-{name}", ignore_errors=True)

    def total_bytes(self) -> int:
        return _tree_bytes(self.root)

    def cleanup(self, now: float | None = None) -> list[Path]:
        """Remove sessions older than ``max_age_s``, then the oldest until under ``max_total_bytes``."""
        now = time.time() if now is None else now
        removed: list[Path] = []
        with self._lock:
            sessions = sorted((p for p in self.root.glob("s-*") if p.is_dir()), key=_mtime)
            sizes = {p: _tree_bytes(p) for p in sessions}
            for p in list(sessions):
                if now - _mtime(p) > self.max_age_s:
                    shutil.rmtree(p, ignore_errors=True)
                    removed.append(p)
                    sessions.remove(p)
            total = sum(sizes[p] for p in sessions)
            while sessions and total > self.max_total_bytes:
                p = sessions.pop(0)
                total -= sizes[p]
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
        return removed

    def _trim_session(self, session: Path) -> None:
        runs = sorted((p for p in session.iterdir() if p.is_dir()), key=_mtime)
        total = sum(_tree_bytes(p) for p in runs)
        while runs and total > self.max_session_bytes:
            p = runs.pop(0)
            total -= _tree_bytes(p)
            shutil.rmtree(p, ignore_errors=True)


def _mtime(path: Path) -> float:
    # A session's age is its newest file's: a visitor still working keeps their folder.
    try:
        newest = path.stat().st_mtime
        for p in path.rglob("*"):
            newest = max(newest, p.stat().st_mtime)
        return newest
    except OSError:
        return 0.0


def _tree_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            continue
    return total


__all__ = ["SessionStore", "UploadCaps", "UploadError", "hide_paths"]

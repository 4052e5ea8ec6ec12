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
from dataclasses import dataclass
from pathlib import Path

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

    def extract_zip(self, path: str | Path | None, dest: Path, what: str = "archive") -> Path:
        """Unpack a zip safely (no absolute paths or ``..``, bounded total size) into ``dest``."""
        p = self.check_file(path, what, max_mb=self.max_zip_mb)
        if not zipfile.is_zipfile(p):
            raise UploadError(f"The {what} {p.name!r} is not a zip file.")
        with zipfile.ZipFile(p) as archive:
            members = archive.infolist()
            total = sum(m.file_size for m in members)
            if total > self.max_zip_mb * 1024**2:
                raise UploadError(
                    f"The {what} unpacks to {total / 1024**2:.0f} MB; the limit here is {self.max_zip_mb:g} MB."
                )
            dest.mkdir(parents=True, exist_ok=True)
            root = dest.resolve()
            for m in members:
                target = (dest / m.filename).resolve()
                if not target.is_relative_to(root):
                    raise UploadError(f"The {what} holds an unsafe path {m.filename!r}.")
            archive.extractall(dest)
        return dest


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

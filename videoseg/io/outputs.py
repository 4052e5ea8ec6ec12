"""Writing a command's outputs without losing what the user made (``run``, ``replay``, ``eval``, ``synth``).

Output paths are checked before any work (:func:`check_output_dir`, :func:`check_output_file`);
outputs are written into a staging folder inside the output folder (:func:`staging_folder`) and moved
into place only when all of them are written, so a failed write leaves earlier outputs whole; a folder
of numbered mask PNGs is replaced completely (:func:`replace_numbered_pngs`), so a shorter new run
leaves no stale frames of a longer earlier one, while the user's own files there stay.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MASK_NAME = re.compile(r"\d{5}\.png")  # the per-frame PNGs of a mask folder (DAVIS layout)


def check_output_dir(path: Path, option: str) -> str | None:
    """Why ``path`` cannot be (created as) an output folder, or None when it can."""
    if path.exists():
        if not path.is_dir():
            return f"{option} {path} is a file, not a folder"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{option} {path} is not writable"
        return None
    return _creatable(path, path, option)


def check_output_file(
    path: Path, option: str, *, keep_unless: Callable[[Path], bool] | None = None
) -> str | None:
    """Why ``path`` cannot be written as an output file, or None when it can.

    ``keep_unless(path) -> bool``: an existing non-empty file is refused unless this says it is an
    earlier output of the same kind (so a command never overwrites, say, a video given by mistake).
    """
    if path.is_dir():
        return f"{option} {path} is a folder, not a file"
    if path.exists():
        if keep_unless is not None and path.stat().st_size and not keep_unless(path):
            return (
                f"{option} {path} already exists and is not an earlier output of this command; "
                "refusing to overwrite it (delete it or choose another path)"
            )
        if not os.access(path, os.W_OK):
            return f"{option} {path} is not writable"
        return None
    return _creatable(path, path.parent, option)


def _creatable(path: Path, folder: Path, option: str) -> str | None:
    """Why ``path`` cannot be created, judged by the nearest existing ancestor of ``folder``."""
    ancestor = Path(os.path.abspath(folder))
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{option} {path}: {ancestor} is a file, not a folder"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{option} {path}: cannot create it, {ancestor} is not writable"
    return None


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether both paths exist and are the same file (False on any error)."""
    try:
        return Path(a).exists() and Path(b).exists() and os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"
# ".videoseg-partial-<host>-<pid>-<mkdtemp suffix>": whose staging folder it is, so a later run can
# tell one left behind by a killed process from one a live run is writing.
_STAGING = re.compile(r"\.videoseg-partial-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: checks only
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process (or no such pid number): do not touch its folder
    return True


def remove_abandoned_staging(out: Path) -> list[Path]:
    """Remove the staging folders in ``out`` left by runs of this host whose process is gone (a
    SIGKILL or power cut skips the clean-up); folders of live processes and other hosts stay."""
    removed: list[Path] = []
    if os.name != "posix" or not out.is_dir():
        return removed
    for path in out.iterdir():
        match = _STAGING.fullmatch(path.name)
        if match is None or match["host"] != _HOST or not path.is_dir():
            continue
        if not _alive(int(match["pid"])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A hidden staging folder inside ``out`` (created if needed), removed afterwards whatever happens.

    Abandoned staging folders of earlier, killed runs in ``out`` are removed first."""
    out.mkdir(parents=True, exist_ok=True)
    remove_abandoned_staging(out)
    staging = Path(tempfile.mkdtemp(prefix=f".videoseg-partial-{_HOST}-{os.getpid()}-", dir=out))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_numbered_pngs(staged: Path, target: Path) -> None:
    """Move the files of ``staged`` into ``target``, first removing the numbered PNGs (``%05d.png``)
    an earlier run left there; other files in ``target`` stay."""
    if target.exists() and not target.is_dir():
        raise OSError(f"{target} exists and is not a folder")
    target.mkdir(exist_ok=True)
    for path in target.iterdir():
        if MASK_NAME.fullmatch(path.name):
            path.unlink()
    for path in staged.iterdir():
        os.replace(path, target / path.name)


__all__ = [
    "MASK_NAME",
    "check_output_dir",
    "check_output_file",
    "remove_abandoned_staging",
    "replace_numbered_pngs",
    "same_file",
    "staging_folder",
]

"""Writing a command's outputs without losing what the user made (``run``, ``replay``, ``eval``, ``synth``).

Output paths are checked before any work (:func:`check_output_dir`, :func:`check_output_file`).

``run`` and ``replay`` replace their ``--out`` folder as a whole (:class:`FolderReplacement`): the new
run is written into a folder beside it and switched in with one rename, so at every instant ``--out``
holds either the complete earlier run or the complete new one, whatever step a crash or SIGKILL
hits (tests/io/test_crash_safe.py kills a run at each step). What ``--out`` means to the user is
kept: the same path (a symbolic link given as ``--out`` stays and shows the new folder), the same
permissions, and every file of the user's own in it (carried over as hard links: no data copied).

``eval`` and ``synth`` write into a staging folder inside the output folder (:func:`staging_folder`)
and move the outputs into place only when all of them are written, so a failed write leaves earlier
outputs whole; a folder of numbered mask PNGs is replaced completely (:func:`replace_numbered_pngs`),
so a shorter new run leaves no stale frames of a longer earlier one, while the user's own files stay.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
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


def check_replaceable_dir(path: Path, option: str) -> str | None:
    """Why ``path`` cannot be an output folder replaced as a whole (:class:`FolderReplacement`), or None.

    Besides :func:`check_output_dir`: the new run is written beside it, so its parent must be
    writable; and it may not hold the working folder (a shell there would be left in the earlier
    folder, which is removed, and see nothing)."""
    problem = check_output_dir(path, option)
    if problem is not None:
        return problem
    real = Path(os.path.realpath(path))
    try:
        cwd = Path(os.path.realpath(os.getcwd()))
    except OSError:
        cwd = None
    if cwd is not None and (cwd == real or real in cwd.parents):
        return (
            f"{option} {path} is (or holds) the working folder; the outputs replace that folder as a "
            "whole, so give them a folder of their own (e.g. --out out)"
        )
    if real.exists():
        parent = real.parent
        if not os.access(parent, os.W_OK | os.X_OK):
            return (
                f"{option} {path}: its parent folder {parent} is not writable (the new outputs are "
                "written beside the folder and switched in at once)"
            )
    return None


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


# --------------------------------------------------------------------------- whole-folder replacement

# The new run is written into a folder BESIDE --out (same parent, so the switch is a rename on one
# file system) named ".<out name>.videoseg-<kind>-<host>-<pid>-<random>": whose it is, so a later run
# removes one left by a killed process and never one a live run is writing.
_BESIDE = re.compile(r"\.(?P<name>.+)\.videoseg-(?P<kind>new|old)-(?P<host>[^-]+)-(?P<pid>\d+)-[0-9a-f]+")
CRASH_HOOK = "VIDEOSEG_CRASH_AT"  # tests only: SIGKILL this process at the named step (see _step)
RENAME_EXCHANGE = 2  # linux/fs.h: swap two names in one step


def crash_point(name: str) -> None:
    """A step of the replacement where a crash must be survivable: the kill test
    (tests/io/test_crash_safe.py) sets ``VIDEOSEG_CRASH_AT`` to a step name and the process dies
    there, as if the power went. Steps: ``writing`` (outputs half written), ``staged``, ``carried``
    (the user's files linked over), ``moved-aside`` (fallback only), ``exchanged``, ``cleaned``."""
    if os.environ.get(CRASH_HOOK) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` in one step (Linux renameat2 RENAME_EXCHANGE); False where
    the system or the file system cannot, so the caller falls back to two renames."""
    if not sys.platform.startswith("linux") or os.environ.get("VIDEOSEG_NO_EXCHANGE"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # a libc without renameat2 (glibc < 2.28, musl)
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # not supported here: fall back
        return False
    raise OSError(err, os.strerror(err), str(b))


def _link_tree(src: Path, dst: Path) -> None:
    """Give ``dst`` the entries of ``src`` without copying data: files hard-linked (copied where
    the file system refuses links), folders recreated, symbolic links recreated as they are."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        dst.mkdir()
        shutil.copystat(src, dst, follow_symlinks=False)
        for child in src.iterdir():
            _link_tree(child, dst / child.name)
    else:
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)


class FolderReplacement:
    """A new version of the folder ``target``, written beside it and switched in by one rename.

    At every instant ``target`` is either the complete earlier folder or the complete new one:
    :meth:`commit` first gives the new folder the entries of the earlier one that the new run does
    not replace (the user's own files, as hard links: no data copied), then swaps the two names in
    one ``renameat2(RENAME_EXCHANGE)``, then removes the earlier folder under its new hidden name.
    Where the system cannot exchange (not Linux, or a file system without it) the switch is two
    renames (earlier folder aside, new one in): a crash between them leaves ``target`` missing and
    the earlier folder beside it, which the next replacement (of any run) renames back first.

    ``target`` is the folder the user named, a symbolic link followed (the link stays and shows
    the new folder). Folders a killed run left beside ``target`` are removed (or, an earlier folder
    put aside, restored) when a replacement starts.
    """

    def __init__(self, target: Path) -> None:
        self.given = Path(target)
        self.target = Path(os.path.realpath(target))
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.recovered = recover_beside(self.target)
        self.path = self._new_folder("new")
        self.committed = False

    def _new_folder(self, kind: str) -> Path:
        for _ in range(100):
            path = self.target.parent / (
                f".{self.target.name}.videoseg-{kind}-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"
            )
            try:
                # os.mkdir honours the umask (mkdtemp would make it private), so the new folder
                # gets the permissions a folder made by the user would have.
                path.mkdir(parents=False)
                return path
            except FileExistsError:
                continue
        raise OSError(f"could not create a folder beside {self.target}")

    def commit(self, replaced: Callable[[Path], bool | None]) -> None:
        """Switch the new folder in.

        ``replaced(relative_path)`` judges each entry of the earlier folder: True = an output of the
        earlier run (left behind, so no stale output survives), False = the user's (carried over
        unless the new folder has that name), None = a folder both write into (judged entry by
        entry, e.g. ``masks/`` with the user's own files beside the numbered PNGs)."""
        crash_point("staged")
        if self.target.is_dir():
            self._carry_over(self.target, self.path, Path(), replaced)
            with suppress(OSError):  # keep the folder's permissions (mode only; owner stays)
                shutil.copymode(self.target, self.path)
        crash_point("carried")
        if not self.target.exists():
            os.rename(self.path, self.target)
        elif _exchange(self.path, self.target):
            crash_point("exchanged")
        else:
            aside = self._new_folder("old")
            aside.rmdir()
            os.rename(self.target, aside)
            crash_point("moved-aside")
            os.rename(self.path, self.target)
            self.path = aside
            crash_point("exchanged")
        self.committed = True
        shutil.rmtree(self.path, ignore_errors=True)  # the earlier folder, under the hidden name
        crash_point("cleaned")

    def _carry_over(self, src: Path, dst: Path, rel: Path, replaced: Callable[[Path], bool | None]) -> None:
        for entry in src.iterdir():
            sub = rel / entry.name
            if _BESIDE.fullmatch(entry.name) or _STAGING.fullmatch(entry.name):
                continue  # another run's working folder, not the user's
            verdict = replaced(sub)
            if verdict is True:
                continue
            target = dst / entry.name
            if verdict is None and entry.is_dir() and not entry.is_symlink():
                # a folder the new run writes into too (masks/): keep the user's files in it
                target.mkdir(exist_ok=True)
                self._carry_over(entry, target, sub, replaced)
            elif not os.path.lexists(target):
                _link_tree(entry, target)

    def discard(self) -> None:
        """Remove the new folder (a failed run): ``target`` stays as it was."""
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)


def recover_beside(target: Path) -> list[Path]:
    """Clean up after killed replacements of ``target`` (this host's dead processes only): a new
    folder never switched in is removed; an earlier folder put aside is renamed back when
    ``target`` is missing (a crash between the two renames of the fallback), else removed."""
    found: list[Path] = []
    parent = target.parent
    if not parent.is_dir():
        return found
    for path in sorted(parent.iterdir()):
        match = _BESIDE.fullmatch(path.name)
        if match is None or match["name"] != target.name or match["host"] != _HOST:
            continue
        if _alive(int(match["pid"])) or not path.is_dir() or path.is_symlink():
            continue
        if match["kind"] == "old" and not os.path.lexists(target):
            os.rename(path, target)
        else:
            shutil.rmtree(path, ignore_errors=True)
        found.append(path)
    return found


__all__ = [
    "CRASH_HOOK",
    "MASK_NAME",
    "FolderReplacement",
    "check_output_dir",
    "check_output_file",
    "check_replaceable_dir",
    "crash_point",
    "recover_beside",
    "remove_abandoned_staging",
    "replace_numbered_pngs",
    "same_file",
    "staging_folder",
]

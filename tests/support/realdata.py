"""Real footage for tests and benchmarks: the sample clips of Debian's ``opencv-doc`` package.

The clips matter because they break naive readers: Megamind.avi emits frames out of timestamp
order, box.mp4 declares one frame more than its decoder emits, tree.avi declares 444 time units for
68 frames. They are fetched with ``apt-get download`` and unpacked with ``dpkg-deb`` (the package is
not installed), then cached in ``tests/.data/opencv`` (gitignored). Set ``VIDEOSEG_OPENCV_DEB`` to
a local ``opencv-doc_*.deb`` to skip the download.

When apt is unreachable, :func:`opencv_clip` raises :class:`RealDataUnavailable` with the reason, so
the tests that need real footage fail loudly instead of being skipped.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CACHE_DIR = Path(__file__).resolve().parents[1] / ".data" / "opencv"
PACKAGE = "opencv-doc"

# Member paths inside opencv-doc 4.6.0 (Debian 12), listed with `dpkg-deb -c`.
_DATA = "./usr/share/doc/opencv-doc/examples/data/"
_HTML = "./usr/share/doc/opencv-doc/opencv4/html/"
CLIPS: dict[str, str] = {
    "vtest.avi": _DATA + "vtest.avi",  # 768x576, 795 frames, msmpeg4, pedestrians
    "Megamind.avi": _DATA + "Megamind.avi",  # 720x528, 270 frames, MPEG-4 with packed B-frames
    "Megamind_bugy.avi": _DATA + "Megamind_bugy.avi",  # same scene, damaged timing
    "tree.avi": _DATA + "tree.avi",  # 320x240, 68 frames, cinepak, sparse timestamps
    "box.mp4": _HTML + "box.mp4.gz",  # 640x480, H.264 with B-frames, container over-counts
    "cup.mp4": _HTML + "cup.mp4.gz",  # 640x480, H.264
}


class RealDataUnavailable(RuntimeError):
    """The opencv-doc clips could not be fetched (no apt, no network, package changed)."""


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def _download_deb(workdir: Path) -> Path:
    local = os.environ.get("VIDEOSEG_OPENCV_DEB")
    if local:
        if not Path(local).is_file():
            raise RealDataUnavailable(f"VIDEOSEG_OPENCV_DEB={local} is not a file")
        return Path(local)
    if shutil.which("apt-get") is None:
        raise RealDataUnavailable("apt-get is not available: cannot fetch the opencv-doc test clips")
    result = _run(["apt-get", "download", PACKAGE], workdir)
    if result.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
        # A fresh machine may have empty package lists; refresh them once and retry.
        _run(["apt-get", "update", "-qq"], workdir)
        result = _run(["apt-get", "download", PACKAGE], workdir)
    debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    if result.returncode != 0 or not debs:
        raise RealDataUnavailable(
            f"`apt-get download {PACKAGE}` failed (exit {result.returncode}): "
            f"{(result.stderr or result.stdout).strip()[-500:]}\n"
            "The real-footage tests need Debian's apt repository (or VIDEOSEG_OPENCV_DEB=/path/to/deb)."
        )
    return debs[0]


def _extract(deb: Path, workdir: Path) -> None:
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    members = sorted(set(CLIPS.values()))
    untar = subprocess.run(
        ["tar", "-x", "-C", str(workdir), *members], stdin=tar.stdout, capture_output=True, text=True
    )
    tar.stdout.close()
    if tar.wait() != 0 or untar.returncode != 0:
        raise RealDataUnavailable(
            f"could not unpack the clips from {deb.name}: {untar.stderr.strip()[-500:]} "
            "(did the package layout change? list it with `dpkg-deb -c`)"
        )
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    for name, member in CLIPS.items():
        source = workdir / member
        partial = CACHE_DIR / (name + ".part")
        if member.endswith(".gz"):
            with gzip.open(source, "rb") as fin, partial.open("wb") as fout:
                shutil.copyfileobj(fin, fout)
        else:
            shutil.copyfile(source, partial)
        partial.replace(CACHE_DIR / name)  # atomic: a cached clip is always complete


def opencv_clip(name: str) -> Path:
    """Path to a cached opencv-doc clip (fetching the package once if needed)."""
    if name not in CLIPS:
        raise KeyError(f"unknown clip {name!r}; known: {', '.join(CLIPS)}")
    target = CACHE_DIR / name
    if target.is_file():
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # One process fetches; others wait on the lock and then find the cache filled.
    with (CACHE_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():
            with tempfile.TemporaryDirectory(prefix="opencv-doc-") as tmp:
                workdir = Path(tmp)
                _extract(_download_deb(workdir), workdir)
    return target


if __name__ == "__main__":
    for clip in CLIPS:
        print(opencv_clip(clip))

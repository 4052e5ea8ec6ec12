"""Crash-safe output replacement (issue 14 item 5): at every instant ``--out`` holds either the complete
earlier run or the complete new one, whatever step a SIGKILL hits; the user's own files survive."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from videoseg.io import outputs
from videoseg.io.outputs import CRASH_HOOK, FolderReplacement, recover_beside
from videoseg.io.video import write_mp4

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and process liveness are POSIX")
REPO = Path(__file__).resolve().parents[2]


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes); symbolic links as their target."""
    out: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            out[rel] = path.read_bytes()
    return out


def _beside(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.videoseg-"))


def _keep_user_files(rel: Path) -> bool | None:
    """The earlier run's outputs are out.txt and run/ (replaced); everything else is the user's."""
    if rel.parts == ("run",):
        return None
    if rel.parts[0] == "run":
        return rel.name.startswith("frame")
    return rel.parts == ("out.txt",)


def _earlier(folder: Path) -> None:
    (folder / "run").mkdir(parents=True)
    (folder / "out.txt").write_text("earlier")
    (folder / "run" / "frame1").write_text("earlier 1")
    (folder / "run" / "frame2").write_text("earlier 2")
    (folder / "run" / "mine.txt").write_text("user file in an output folder")
    (folder / "notes").mkdir()
    (folder / "notes" / "a.txt").write_text("user notes")
    os.symlink("notes/a.txt", folder / "link")


def _replace(folder: Path) -> None:
    r = FolderReplacement(folder)
    (r.path / "run").mkdir()
    (r.path / "out.txt").write_text("new")
    (r.path / "run" / "frame1").write_text("new 1")
    r.commit(_keep_user_files)


EXPECTED_NEW = {
    "link": b"-> notes/a.txt",
    "notes/a.txt": b"user notes",
    "out.txt": b"new",
    "run/frame1": b"new 1",
    "run/mine.txt": b"user file in an output folder",
}


@pytest.mark.parametrize("exchange", [True, False])
def test_replacement_keeps_the_users_files_by_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setenv("VIDEOSEG_NO_EXCHANGE", "1")
    out = tmp_path / "out"
    _earlier(out)
    os.chmod(out, 0o751)
    notes_inode = (out / "notes" / "a.txt").stat().st_ino
    _replace(out)
    assert _tree(out) == EXPECTED_NEW  # run/frame2 of the earlier run is gone, no stale output
    assert (out / "notes" / "a.txt").stat().st_ino == notes_inode  # linked, not copied
    assert stat.S_IMODE(out.stat().st_mode) == 0o751
    assert _beside(out) == []


def test_a_symlinked_out_keeps_its_link_and_a_missing_out_is_created(tmp_path: Path) -> None:
    real = tmp_path / "real"
    _earlier(real)
    (tmp_path / "link").symlink_to(real)
    _replace(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and _tree(real) == EXPECTED_NEW
    fresh = tmp_path / "a" / "b" / "new"
    _replace(fresh)
    assert _tree(fresh) == {"out.txt": b"new", "run/frame1": b"new 1"}


def test_a_failed_run_discards_the_new_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _earlier(out)
    before = _tree(out)
    r = FolderReplacement(out)
    (r.path / "out.txt").write_text("half")
    r.discard()
    assert _tree(out) == before and _beside(out) == []


@pytest.mark.parametrize(
    ("step", "exchange", "holds"),
    [
        ("staged", True, "earlier"),
        ("carried", True, "earlier"),
        ("exchanged", True, "new"),
        ("cleaned", True, "new"),
        ("carried", False, "earlier"),
        ("moved-aside", False, "missing"),  # the fallback's one window: restored by the next start
        ("exchanged", False, "new"),
    ],
)
def test_a_kill_at_each_step_leaves_one_whole_run(
    tmp_path: Path, step: str, exchange: bool, holds: str
) -> None:
    out = tmp_path / "out"
    _earlier(out)
    earlier = _tree(out)
    env = {**os.environ, CRASH_HOOK: step, "PYTHONPATH": str(REPO)}
    if not exchange:
        env["VIDEOSEG_NO_EXCHANGE"] = "1"
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from tests.io.test_crash_safe import _replace\n"
        "_replace(Path(sys.argv[1]))\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(out)], env=env, cwd=REPO)
    assert killed.returncode == -9  # SIGKILL at that step: no clean-up ran
    if holds == "earlier":
        assert _tree(out) == earlier
    elif holds == "new":
        assert _tree(out) == EXPECTED_NEW
    else:
        assert not out.exists()
        recover_beside(out)  # what the next replacement does first
        assert _tree(out) == earlier
    _replace(out)  # the next run cleans up what the killed one left and replaces whole
    assert _tree(out) == EXPECTED_NEW and _beside(out) == []


def test_leftovers_of_live_processes_and_other_hosts_stay(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = outputs._HOST
    names = {
        f".out.videoseg-new-{host}-{dead.pid}-ab12": False,  # killed run: removed
        f".out.videoseg-new-{host}-{os.getpid()}-cd34": True,  # a live run (this one)
        f".out.videoseg-new-otherhost-{dead.pid}-ef56": True,  # another machine sharing the folder
        f".other.videoseg-new-{host}-{dead.pid}-ab12": True,  # beside another output folder
    }
    for name in names:
        (tmp_path / name).mkdir()
    recover_beside(out)
    for name, kept in names.items():
        assert (tmp_path / name).exists() == kept, name


# --------------------------------------------------------------------------- the command line


def _clip(path: Path, frames: int) -> Path:
    rng = np.random.default_rng(frames)
    return write_mp4(path, rng.integers(0, 255, (frames, 48, 64, 3), dtype=np.uint8), 10)


def _run_tree(folder: Path) -> dict[str, bytes]:
    """:func:`_tree` of an output folder, without cues.json's timings (they differ run to run)."""
    import json

    files = _tree(folder)
    if "cues.json" in files:
        doc = json.loads(files["cues.json"])
        doc.pop("timings", None)
        files["cues.json"] = json.dumps(doc, sort_keys=True).encode()
    return files


def _cli(video: Path, out: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    args = [
        sys.executable,
        "-m",
        "videoseg",
        "run",
        str(video),
        "the red square",
        "--out",
        str(out),
        "--quiet",
    ]
    return subprocess.run(args, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True)


@pytest.mark.slow
def test_killing_the_cli_at_every_step_keeps_a_whole_run(tmp_path: Path) -> None:
    six, three = _clip(tmp_path / "six.mp4", 6), _clip(tmp_path / "three.mp4", 3)
    out = tmp_path / "out"
    assert _cli(six, out).returncode == 0
    (out / "masks" / "mine.txt").write_text("the user's own file")
    earlier = _run_tree(out)
    new_dir = tmp_path / "new"
    shutil.copytree(out, new_dir, symlinks=True)
    assert _cli(three, new_dir).returncode == 0
    new = _run_tree(new_dir)
    assert new != earlier and new["masks/mine.txt"] == b"the user's own file"
    assert sorted(k for k in new if k.startswith("masks/0")) == [f"masks/0000{i}.png" for i in range(3)]

    for step, holds in [
        ("writing", earlier),
        ("staged", earlier),
        ("carried", earlier),
        ("exchanged", new),
        ("cleaned", new),
    ]:
        killed = _cli(three, out, {CRASH_HOOK: step})
        assert killed.returncode == -9, (step, killed.stderr.decode()[-500:])
        assert _run_tree(out) == holds, step
        # the next run removes what the killed one left beside --out
        assert _cli(three, out).returncode == 0
        assert _run_tree(out) == new and _beside(out) == [], step
        _restore(out, earlier)  # the next step starts from the earlier run again


def _restore(folder: Path, files: dict[str, bytes]) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_an_out_holding_the_working_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from videoseg.io.outputs import check_replaceable_dir

    inner = tmp_path / "results" / "sub"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    for given in (Path("."), tmp_path / "results"):  # the working folder, or a folder around it
        problem = check_replaceable_dir(given, "--out")
        assert problem is not None and "working folder" in problem
    assert check_replaceable_dir(tmp_path / "other", "--out") is None

"""Output staging: folders abandoned by killed runs are cleaned up, live ones and foreign ones stay."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from videoseg.io import outputs
from videoseg.io.outputs import remove_abandoned_staging, staging_folder

pytestmark = pytest.mark.skipif(os.name != "posix", reason="process liveness is checked on POSIX only")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_killed_mid_write_leaves_a_staging_folder_the_next_run_removes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # A process that is SIGKILLed inside the staging block: its finally clause never runs.
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from videoseg.io.outputs import staging_folder\n"
        "with staging_folder(Path(sys.argv[1])) as s:\n"
        "    (s / '00000.png').write_bytes(b'partial')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(out)], cwd=Path(__file__).parents[2])
    assert killed.returncode == -9
    left = [p for p in out.iterdir() if p.name.startswith(".videoseg-partial-")]
    assert len(left) == 1 and (left[0] / "00000.png").exists()

    with staging_folder(out) as staging:
        assert not left[0].exists()
        assert [p for p in out.iterdir() if p.name.startswith(".videoseg-partial-")] == [staging]
    assert list(out.iterdir()) == []


def test_only_this_hosts_folders_of_dead_processes_are_removed(tmp_path: Path) -> None:
    host, dead = outputs._HOST, _dead_pid()
    names = {
        f".videoseg-partial-{host}-{dead}-ab1_x": False,  # this host, process gone: removed
        f".videoseg-partial-{host}-{os.getpid()}-cd2": True,  # a live run (this one)
        f".videoseg-partial-{host}-{os.getppid()}-ef3": True,  # a live run (another process)
        f".videoseg-partial-otherhost-{dead}-gh4": True,  # another machine sharing the folder
        ".videoseg-partial-ij5": True,  # the older name without owner: unknown, kept
        "masks": True,
    }
    for name in names:
        (tmp_path / name).mkdir()
    (tmp_path / f".videoseg-partial-{host}-{dead}-file").write_text("a file, not a staging folder")

    removed = remove_abandoned_staging(tmp_path)

    assert removed == [tmp_path / f".videoseg-partial-{host}-{dead}-ab1_x"]
    for name, kept in names.items():
        assert (tmp_path / name).exists() == kept, name
    assert (tmp_path / f".videoseg-partial-{host}-{dead}-file").is_file()
    assert remove_abandoned_staging(tmp_path / "missing") == []

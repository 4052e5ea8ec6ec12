"""XMem as the pipeline's propagator on a shapes-world clip (paper step 3b, bidirectional).

A random-weight XMem checkpoint is saved and loaded through the real ``xmem_checkpoint`` path; masks
are meaningless, the plumbing is exact: every frame is filled once, forward then backward, and the
keyframe keeps the segmenter's mask.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from videoseg.core import events as ev
from videoseg.core.config import preset
from videoseg.core.masks import decode_rle
from videoseg.core.state import RunState
from videoseg.pipeline.orchestrator import run
from videoseg.propagation.xmem import XMem
from videoseg.propagation.xmem import propagator as xmem_propagator
from videoseg.propagation.xmem.network import XMEM_URL, XMemCheckpointError
from videoseg.propagation.xmem.propagator import download_checkpoint, resolve_checkpoint
from videoseg.shapes import generate


def _random_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    net = XMem({"key_dim": 16, "value_dim": 32, "hidden_dim": 8})
    with torch.no_grad():  # random keys underflow the similarity softmax; scale them as trained ones are
        net.key_proj.key_proj.weight.mul_(0.05)
        net.key_proj.d_proj.weight.mul_(0.01)
    torch.save(net.state_dict(), path)
    return path


def test_xmem_fills_both_directions_from_the_keyframe(tmp_path: Path) -> None:
    scenario = generate(3, "turn", frames=48)
    scenario.save(tmp_path / "clip")
    expression = scenario.expressions[0]
    config = preset(
        "shapes-xmem",
        xmem_checkpoint=str(_random_checkpoint(tmp_path / "XMem.pth")),
        xmem_size=64,
        xmem_top_k=8,
    )
    events = list(run(tmp_path / "clip" / "video.mp4", expression.text, config))
    state = RunState.from_events(events)
    assert state.finished is not None, [e for e in events if isinstance(e, ev.RunError)]
    backend = next(e for e in events if isinstance(e, ev.BackendInfo) and e.for_stage == "propagator")
    assert backend.name == "xmem" and not backend.weights_free

    propagated = [e for e in events if isinstance(e, ev.PropagatedMask)]
    key = state.keyframe
    assert key is not None and 0 < key < scenario.num_frames - 1  # both directions have frames
    assert propagated[0].direction == "keyframe" and propagated[0].frame_idx == key
    order = [e.frame_idx for e in propagated[1:]]
    assert order == [*range(key + 1, scenario.num_frames), *range(key - 1, -1, -1)]
    assert {e.direction for e in propagated[1:]} == {"forward", "backward"}

    keyframe_mask = decode_rle(next(e for e in events if isinstance(e, ev.KeyframeMask)).rle)
    assert keyframe_mask.any()
    assert np.array_equal(state.masks[key][0], keyframe_mask)  # the keyframe keeps the segmenter's mask
    width, height = scenario.size
    assert all(state.masks[i].shape == (1, height, width) for i in range(scenario.num_frames))


# ------------------------------------------------------------------ where the checkpoint comes from


def test_an_existing_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _random_checkpoint(tmp_path / "mine.pth")
    monkeypatch.setattr(xmem_propagator, "download_checkpoint", _fail_if_called)
    assert resolve_checkpoint(str(path)) == path


def test_the_default_name_uses_the_cache_then_downloads_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./XMem.pth
    monkeypatch.setenv("VIDEOSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VIDEOSEG_XMEM_DOWNLOAD", raising=False)
    calls: list[tuple[str, Path]] = []

    def fake_download(url: str, dest: Path, timeout_s: float = 60.0) -> Path:
        calls.append((url, dest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"weights")
        return dest

    monkeypatch.setattr(xmem_propagator, "download_checkpoint", fake_download)
    first = resolve_checkpoint("XMem.pth")
    second = resolve_checkpoint("XMem.pth")
    assert first == second == tmp_path / "cache" / "XMem.pth"
    assert calls == [(XMEM_URL, tmp_path / "cache" / "XMem.pth")]  # downloaded once, then cached


@pytest.mark.parametrize(
    ("setting", "env", "fragment"),
    [
        ("XMem.pth", "1", "downloading it"),  # download attempted and failed: says so and why
        ("XMem.pth", "0", "releases/download"),  # downloads switched off: no attempt, the address
        ("elsewhere/XMem.pth", "1", "releases/download"),  # an explicit path is never downloaded
    ],
)
def test_missing_checkpoint_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, env: str, fragment: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VIDEOSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VIDEOSEG_XMEM_DOWNLOAD", env)

    def offline(url: str, dest: Path, timeout_s: float = 60.0) -> Path:
        if env == "0" or setting != "XMem.pth":
            raise AssertionError("must not download")
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(xmem_propagator, "download_checkpoint", offline)
    with pytest.raises(XMemCheckpointError, match=fragment) as info:
        resolve_checkpoint(setting)
    assert isinstance(info.value, FileNotFoundError)


def test_download_is_atomic(tmp_path: Path) -> None:
    source = tmp_path / "release.pth"
    source.write_bytes(b"x" * 3_000_000)
    dest = download_checkpoint(source.as_uri(), tmp_path / "cache" / "XMem.pth")
    assert dest.read_bytes() == source.read_bytes()
    with pytest.raises(OSError):
        download_checkpoint((tmp_path / "missing.pth").as_uri(), tmp_path / "cache" / "other.pth")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["XMem.pth"]  # no partial file left


def _fail_if_called(*args: object, **kwargs: object) -> Path:
    raise AssertionError("must not download")

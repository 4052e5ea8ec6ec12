"""Hub ids on a machine that cannot reach the hub: read the local cache at once, or fail at once.

Without this the hub clients retry for ~30 s per file, even for a model already in the cache. The
tests build a real Hugging Face cache layout (``models--org--name/snapshots/<commit>/``) holding the
tiny random models, point the hub endpoint at a closed local port, and load by hub id through the
real loaders, recording every DNS look-up and connection attempted meanwhile.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from huggingface_hub import constants

from tests.support.tiny_models import (  # noqa: F401  (fixtures)
    tiny_official_sam2_dir,
    tiny_qwen_dir,
    tiny_sam2_dir,
    tiny_sam2_video_dir,
    torch_single_thread,
)
from videoseg.core.config import PipelineConfig
from videoseg.propagation.sam2_video import _load_sam2_video
from videoseg.reasoning.qwen import _load_qwen
from videoseg.runtime import loading as models
from videoseg.segmentation.sam2 import OfficialSam2Segmenter, _load_transformers_sam2

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache_entry(cache: Path, repo_id: str, files: dict[str, Path]) -> Path:
    """Put ``files`` (name in the repo -> source) into ``cache`` as the hub client lays out a download."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for name, source in files.items():
        shutil.copyfile(source, snapshot / name)
    return snapshot


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once this socket is closed


class _NetLog:
    """Records the DNS look-ups and connections made while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, Any]] = []
        lookup, connect = socket.getaddrinfo, socket.socket.connect

        def logged_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls.append(("lookup", host))
            return lookup(host, *args, **kwargs)

        def logged_connect(sock: socket.socket, address: Any) -> Any:
            self.calls.append(("connect", address))
            return connect(sock, address)

        monkeypatch.setattr(socket, "getaddrinfo", logged_lookup)
        monkeypatch.setattr(socket.socket, "connect", logged_connect)


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache and an unreachable hub; returns the cache folder."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the suite runs in offline mode (conftest)
    monkeypatch.setattr(models, "_probes", {})
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # the probe would ask a proxy of this machine instead
    return cache


def test_the_probe_connects_once_and_remembers(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = _NetLog(monkeypatch)
    assert models.hub_reachable() is False
    assert models.hub_reachable() is False
    assert [kind for kind, _ in net.calls].count("connect") == 1  # the second answer is remembered

    with socket.socket() as server:  # a listening endpoint is reachable
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setattr(models, "_probes", {})
        assert models.hub_reachable() is True

    monkeypatch.setattr(models, "_probes", {})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    net.calls.clear()
    assert models.hub_reachable() is False and net.calls == []  # offline mode: not even tried


def test_behind_a_proxy_the_probe_asks_the_proxy(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The hub (a closed port) cannot be reached directly; the clients would go through the proxy.
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen()
        address = f"http://127.0.0.1:{proxy.getsockname()[1]}"
        monkeypatch.setenv("http_proxy", address)  # the endpoint of the fixture is http://
        monkeypatch.setenv("no_proxy", "")
        net = _NetLog(monkeypatch)
        assert models.hub_reachable() is True
        assert ("connect", ("127.0.0.1", proxy.getsockname()[1])) in net.calls


def test_local_folders_never_probe_the_hub(tiny_sam2_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    net = _NetLog(monkeypatch)
    monkeypatch.setattr(models, "_probes", {})
    assert models.hub_offline(str(tiny_sam2_dir)) is False
    assert net.calls == []


def _files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir() if p.is_file()}


LOADERS: dict[str, tuple[str, Callable[..., Any], str]] = {
    "qwen": ("Qwen/Qwen2.5-VL-3B-Instruct", _load_qwen, "tiny_qwen_dir"),
    "sam2": ("facebook/sam2.1-hiera-tiny", _load_transformers_sam2, "tiny_sam2_dir"),
    "sam2-video": ("facebook/sam2.1-hiera-small", _load_sam2_video, "tiny_sam2_video_dir"),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_a_cached_hub_id_loads_without_any_network_attempt(
    name: str, offline: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo_id, load, fixture = LOADERS[name]
    folder = request.getfixturevalue(fixture)
    _cache_entry(offline, repo_id, _files(folder))
    assert models.hub_reachable() is False  # the probe's one attempt, before the log starts
    net = _NetLog(monkeypatch)

    model, processor = load(repo_id, torch.device("cpu"), torch.float32)

    assert net.calls == []  # the cache only: no look-up of the hub, no retries
    reference = type(model).from_pretrained(folder)
    for key, value in reference.state_dict().items():  # the cached weights, not a fresh init
        assert torch.equal(model.state_dict()[key], value), key
    assert processor is not None


def test_an_uncached_hub_id_fails_at_once_and_says_why(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models.hub_reachable()
    net = _NetLog(monkeypatch)
    with pytest.raises(models.ModelLoadError) as exc:
        models.cached_model(
            "SAM2",
            "facebook/sam2.1-hiera-large",
            torch.device("cpu"),
            torch.float32,
            lambda: _load_transformers_sam2(
                "facebook/sam2.1-hiera-large", torch.device("cpu"), torch.float32
            ),
        )
    assert net.calls == []
    message = str(exc.value)
    assert (
        "'facebook/sam2.1-hiera-large'" in message and "not in this machine's Hugging Face cache" in message
    )
    assert constants.ENDPOINT in message and "local folder" in message


def test_official_sam2_hub_id_reads_the_packages_file_from_the_cache(
    offline: Path,
    tiny_official_sam2_dir: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sam2.build_sam

    from videoseg.segmentation import sam2 as sam2_module

    yaml_file, checkpoint = (
        next(tiny_official_sam2_dir.glob("*.yaml")),
        next(tiny_official_sam2_dir.glob("*.pt")),
    )
    snapshot = _cache_entry(offline, "facebook/sam2.1-hiera-tiny", {"sam2.1_hiera_tiny.pt": checkpoint})
    asked: dict[str, Any] = {}

    def build(config_name: str, ckpt_path: str, device: str) -> Any:
        # The package's tiny config is a 39 M-parameter network; build our tiny one from the cached file.
        asked.update(config=config_name, checkpoint=ckpt_path, device=device)
        return sam2_module._build_official(yaml_file, Path(ckpt_path), torch.device(device))

    monkeypatch.setattr(sam2.build_sam, "build_sam2", build)
    monkeypatch.setattr(models, "_CACHE", {})  # keep this entry out of the process cache
    models.hub_reachable()
    net = _NetLog(monkeypatch)

    OfficialSam2Segmenter(PipelineConfig(sam2_model="tiny", device="cpu"))

    assert net.calls == []
    assert asked == {
        "config": "configs/sam2.1/sam2.1_hiera_t.yaml",  # the package's own table for this id
        "checkpoint": str(snapshot / "sam2.1_hiera_tiny.pt"),
        "device": "cpu",
    }


def test_official_sam2_unknown_hub_id_names_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "_CACHE", {})
    with pytest.raises(
        models.ModelLoadError, match=r"has no hub id 'facebook/sam3'.*facebook/sam2.1-hiera-large"
    ):
        OfficialSam2Segmenter(PipelineConfig(sam2_model="facebook/sam3", device="cpu"))

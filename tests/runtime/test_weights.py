"""Which weights a configuration needs (per stage role), where they are, and the one refusal naming
every missing checkpoint when the hub cannot be reached (``videoseg.runtime.weights``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from videoseg.core.config import PRESETS, PipelineConfig, preset
from videoseg.runtime import loading as models
from videoseg.runtime import weights

QWEN7 = "Qwen/Qwen2.5-VL-7B-Instruct"
SAM2L = "facebook/sam2.1-hiera-large"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (preset("shapes"), []),
        (preset("shapes-box-only"), []),
        (preset("shapes-xmem"), [("propagator", "XMem.pth")]),
        (preset("paper"), [("reasoner", QWEN7), ("segmenter", SAM2L), ("propagator", "XMem.pth")]),
        (preset("paper-3b"), [("reasoner", "Qwen/Qwen2.5-VL-3B-Instruct"), ("segmenter", SAM2L),
                              ("propagator", "XMem.pth")]),
        # SAM2 as segmenter and propagator: one checkpoint, listed once
        (preset("paper-sam2-video"), [("reasoner", QWEN7), ("segmenter", SAM2L)]),
        # command-line overrides count: --vlm, --sam2 (a size name), --xmem, --segmenter, --propagator
        (preset("paper", vlm="./my-qwen", sam2_model="tiny", xmem_checkpoint="/w/x.pth"),
         [("reasoner", "./my-qwen"), ("segmenter", "facebook/sam2.1-hiera-tiny"), ("propagator", "/w/x.pth")]),
        (preset("paper", vlm="manual", segmenter="grabcut"), [("propagator", "XMem.pth")]),
        (preset("shapes", propagator="sam2", sam2_model="small"),
         [("propagator", "facebook/sam2.1-hiera-small")]),
        (preset("shapes", segmenter="sam2-official"), [("segmenter", SAM2L)]),
    ],
)  # fmt: skip
def test_needed_lists_the_checkpoints_of_the_stages_the_config_uses(
    config: PipelineConfig, expected: list[tuple[str, str]]
) -> None:
    assert weights.needed(config) == expected


def test_requirements_keep_only_the_asked_roles_and_use_the_locator() -> None:
    asked: list[str] = []

    def locate(model_id: str) -> tuple[bool, str]:
        asked.append(model_id)
        return model_id == SAM2L, "here" if model_id == SAM2L else "elsewhere"

    reqs = weights.requirements(preset("paper"), ("segmenter", "propagator"), locate_fn=locate)
    assert [(r.what, r.model_id, r.present, r.where) for r in reqs] == [
        ("segmenter", SAM2L, True, "here"),
        ("propagator", "XMem.pth", False, "elsewhere"),
    ]
    assert asked == [SAM2L, "XMem.pth"]  # the reasoner, not asked for, is not even looked up
    assert reqs[0].approx_gb == 0.9 and reqs[1].approx_gb == 0.25
    assert weights.Requirement("propagator", "/w/XMem.pth", False, "").approx_gb == 0.25  # by file name
    assert weights.Requirement("reasoner", "./mine", False, "").approx_gb is None


def _probe_counter(
    monkeypatch: pytest.MonkeyPatch, reachable: bool, xmem_server: bool | None = None
) -> list[str]:
    """Record the servers probed: "hub" for the Hugging Face hub, else the probed URL's host."""
    calls: list[str] = []

    def hub() -> bool:
        calls.append("hub")
        return reachable

    def url(address: str) -> bool:
        calls.append(str(urlsplit(address).hostname))
        return reachable if xmem_server is None else xmem_server

    monkeypatch.setattr(models, "hub_reachable", hub)
    monkeypatch.setattr(models, "url_reachable", url)
    return calls


@pytest.mark.parametrize("name", [n for n in PRESETS if preset(n).weights_free])
def test_weights_free_presets_never_probe_the_hub(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    def probe(*_: object) -> bool:
        raise AssertionError("the hub was probed")

    monkeypatch.setattr(models, "hub_reachable", probe)
    monkeypatch.setattr(models, "url_reachable", probe)
    assert weights.unavailable(preset(name), locate_fn=lambda m: (False, "")) == []


def test_unavailable_only_when_something_is_missing_and_the_hub_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def nothing_here(model_id: str) -> tuple[bool, str]:
        return False, "not here"

    def all_here(model_id: str) -> tuple[bool, str]:
        return True, "here"

    calls = _probe_counter(monkeypatch, reachable=False)
    assert weights.unavailable(preset("paper"), locate_fn=all_here) == []
    assert calls == []  # everything present: no probe
    missing = weights.unavailable(preset("paper"), locate_fn=nothing_here)
    assert [r.model_id for r in missing] == [QWEN7, SAM2L, "XMem.pth"]
    assert set(calls) == {"hub", "github.com"}  # each from where it would come
    only_segmenter = weights.unavailable(preset("paper"), ("segmenter",), locate_fn=nothing_here)
    assert [r.what for r in only_segmenter] == ["segmenter"]

    calls = _probe_counter(monkeypatch, reachable=True)
    assert weights.unavailable(preset("paper"), locate_fn=nothing_here) == []  # they download
    assert set(calls) == {"hub", "github.com"}


@pytest.mark.parametrize(
    ("hub", "xmem_server", "refused"),
    [
        (True, False, ["XMem.pth"]),  # the hub answers, the XMem release's server does not
        (False, True, [QWEN7, SAM2L]),  # and the other way round
    ],
)
def test_each_checkpoint_is_judged_by_the_server_it_comes_from(
    monkeypatch: pytest.MonkeyPatch, hub: bool, xmem_server: bool, refused: list[str]
) -> None:
    _probe_counter(monkeypatch, reachable=hub, xmem_server=xmem_server)
    missing = weights.unavailable(preset("paper"), locate_fn=lambda m: (False, "not here"))
    assert [r.model_id for r in missing] == refused
    text = weights.listing(missing)
    assert ("no connection to github.com" in text) == (not xmem_server), text
    assert ("no connection to huggingface.co" in text) == (not hub), text


def test_a_missing_local_path_or_a_switched_off_download_is_refused_even_online(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _probe_counter(monkeypatch, reachable=True)
    config = preset("paper", vlm=str(tmp_path / "no-such-qwen"))
    missing = weights.unavailable(config, locate_fn=lambda m: (m != SAM2L and m != "XMem.pth", ""))
    assert missing == []  # nothing missing: nothing refused
    missing = weights.unavailable(config, locate_fn=lambda m: (m != str(tmp_path / "no-such-qwen"), ""))
    assert [r.model_id for r in missing] == [str(tmp_path / "no-such-qwen")]
    assert "no such file or folder" in weights.listing(missing)
    monkeypatch.setenv("VIDEOSEG_XMEM_DOWNLOAD", "0")
    missing = weights.unavailable(config, locate_fn=lambda m: (m != "XMem.pth", ""))
    assert [r.model_id for r in missing] == ["XMem.pth"]
    assert "VIDEOSEG_XMEM_DOWNLOAD=0" in weights.listing(missing)


def test_unavailable_uses_locate_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    _probe_counter(monkeypatch, reachable=False)
    monkeypatch.setattr(weights, "locate", lambda model_id: (model_id == QWEN7, "x"))
    assert [r.model_id for r in weights.unavailable(preset("paper"))] == [SAM2L, "XMem.pth"]


def test_locate_finds_local_paths_the_hub_cache_and_the_xmem_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    hub_cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("VIDEOSEG_CACHE", str(tmp_path / "videoseg-cache"))

    folder = tmp_path / "my-qwen"
    folder.mkdir()
    assert weights.locate(str(folder)) == (True, f"local path {folder}")

    present, where = weights.locate("org/not-cached-model")
    assert not present and where == "hub download (org/not-cached-model)"
    # a hub snapshot as huggingface_hub lays it out: refs/main names the snapshot holding config.json
    repo = hub_cache / "models--org--cached-model"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    assert weights.locate("org/cached-model") == (True, "Hugging Face cache")

    present, where = weights.locate("./missing.pth")
    assert not present and "not found" in where
    present, where = weights.locate("XMem.pth")
    assert not present and "github.com/hkchengrex/XMem" in where
    (tmp_path / "videoseg-cache").mkdir()
    (tmp_path / "videoseg-cache" / "XMem.pth").write_bytes(b"w")
    present, where = weights.locate("XMem.pth")
    assert present and str(tmp_path / "videoseg-cache" / "XMem.pth") in where


def test_the_command_line_message_names_every_missing_checkpoint_on_one_line() -> None:
    config = preset("paper")
    missing = weights.requirements(config, locate_fn=lambda m: (False, "not here"))
    text = weights.command_line_message("paper", config, missing, with_options=True)
    assert "\n" not in text
    for model_id in (QWEN7, SAM2L, "XMem.pth"):
        assert f"`{model_id}`" in text
    assert "~16.6 GB, no connection to huggingface.co" in text and "--preset paper" in text
    assert "`XMem.pth` (~0.25 GB, no connection to github.com)" in text  # each says why
    assert "--vlm / --sam2 / --xmem PATH" in text and "shapes" in text

    # SAM2 used as the propagator only: its option is --sam2, and options are not repeated
    video = preset("shapes", propagator="sam2")
    text = weights.command_line_message("shapes", video, weights.requirements(video, locate_fn=lambda m: (False, "")),
                                        with_options=True)  # fmt: skip
    assert "--sam2 PATH" in text and "--xmem" not in text and "--vlm" not in text

    # benchmark has no such options: it says where the files go instead
    text = weights.command_line_message("paper", config, missing, with_options=False)
    assert "--vlm" not in text and "Hugging Face cache" in text
    assert f"the XMem checkpoint as {weights.xmem_cache_hint()}" in text
    video = preset("paper-sam2-video")
    missing = weights.requirements(video, locate_fn=lambda m: (False, ""))
    assert "XMem" not in weights.command_line_message("paper-sam2-video", video, missing, with_options=False)

"""Which weights a configuration needs, whether they are on this machine, and refusing early when not.

The paper's three stages use three models: the Qwen2.5-VL reasoner (stage 1's HTFS questions and
stage 2's reasoning), SAM2 for the keyframe masks (stage 3a) and XMem or SAM2-video for propagation
(stage 3b). :func:`requirements` lists the checkpoints a :class:`~videoseg.core.config.PipelineConfig`
needs, per stage role, and where each one is, without any network access (a local path, the
Hugging Face cache, the XMem cache). :func:`unavailable` names the missing ones when the hub cannot
be reached, so a command or the explorer can refuse *before* any work with one message naming every
missing checkpoint (:func:`unavailable_message`), instead of the first stage to need one failing
after the others ran, with a message about that one only.

The hub is probed only when something is missing: a weights-free configuration never touches the
network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from videoseg.core.config import WEIGHTS_FREE_VLMS, PipelineConfig

STAGE_ROLES: tuple[str, ...] = ("sampler", "reasoner", "segmenter", "propagator")

# Approximate download sizes (GB) of the checkpoints the presets name, for the "what would it
# download" hint only (bf16 / fp32 safetensors as published on the hub).
APPROX_GB = {
    "Qwen/Qwen2.5-VL-7B-Instruct": 16.6,
    "Qwen/Qwen2.5-VL-3B-Instruct": 7.5,
    "Ricky06662/VisionReasoner-7B": 16.6,
    "Ricky06662/Seg-Zero-7B": 16.6,
    "facebook/sam2.1-hiera-tiny": 0.16,
    "facebook/sam2.1-hiera-small": 0.18,
    "facebook/sam2.1-hiera-base-plus": 0.32,
    "facebook/sam2.1-hiera-large": 0.9,
    "XMem.pth": 0.25,
    "yonigozlan/EdgeTAM-hf": 0.06,
    "facebook/sam3": 3.4,
    "Qwen/Qwen3-VL-8B-Instruct": 17.5,
}

# Hub repositories that serve their files only to an account that accepted the licence, with that
# account's token (the licence named for the refusal message).
GATED = {"facebook/sam3": "SAM License"}

Locator = Callable[[str], tuple[bool, str]]


@dataclass
class Requirement:
    """One set of weights a configuration needs."""

    what: str  # "reasoner" | "segmenter" | "propagator"
    model_id: str
    present: bool
    where: str  # where it was found, or where it would come from

    @property
    def approx_gb(self) -> float | None:
        return APPROX_GB.get(self.model_id) or APPROX_GB.get(Path(self.model_id).name)


def _hub_cached(model_id: str) -> str | None:
    """Path of the cached config of a hub model, without network; None when not cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in ("config.json", "model.safetensors.index.json"):
        try:
            found = try_to_load_from_cache(model_id, filename)
        except Exception:  # a malformed id is simply "not cached"
            return None
        if isinstance(found, str):
            return found
    return None


def locate(model_id: str) -> tuple[bool, str]:
    """(present, where): whether ``model_id`` is on this machine, and where it is or would come from."""
    p = Path(model_id).expanduser()
    if p.exists():
        return True, f"local path {p}"
    if model_id == "XMem.pth":
        from videoseg.propagation.xmem.propagator import xmem_cache_path

        cached_xmem = xmem_cache_path()
        if cached_xmem.is_file():
            return True, f"local path {cached_xmem}"
        return False, "download of the official release on first use (github.com/hkchengrex/XMem)"
    if _hub_cached(model_id):
        return True, "Hugging Face cache"
    if looks_like_hub_id(model_id):
        return False, f"hub download ({model_id})"
    return False, f"file {model_id} not found (download it and give its path)"


def needed(config: PipelineConfig) -> list[tuple[str, str]]:
    """(role, model id) of every checkpoint the stages of ``config`` load; SAM2 once when the
    segmenter and the propagator share it."""
    needs: list[tuple[str, str]] = []
    if config.vlm not in WEIGHTS_FREE_VLMS:
        needs.append(("reasoner", config.vlm))
        # A grounding-only reasoner profile sends the HTFS / difficulty questions to another model.
        sampler = config.sampler_vlm
        if sampler and sampler != config.vlm and sampler not in WEIGHTS_FREE_VLMS:
            from videoseg.reasoning.profiles import get_profile

            if get_profile(config.profile).grounding_only:
                needs.append(("sampler", sampler))
    if config.segmenter in ("sam2", "sam2-official"):
        needs.append(("segmenter", config.sam2_model))
    if config.propagator == "xmem":
        needs.append(("propagator", config.xmem_checkpoint))
    elif config.propagator == "sam2" and config.sam2_model not in {m for _, m in needs}:
        needs.append(("propagator", config.sam2_model))
    elif config.propagator == "edgetam":
        needs.append(("propagator", config.edgetam_model))
    elif config.propagator == "sam3-tracker":
        needs.append(("propagator", config.sam3_model))
    if config.method == "sam3-text":  # no reasoner, segmenter or propagator of the pipeline: SAM 3 alone
        needs = [("segmenter", config.sam3_model)]
    return needs


def requirements(
    config: PipelineConfig, roles: Iterable[str] = STAGE_ROLES, locate_fn: Locator | None = None
) -> list[Requirement]:
    """The weights ``config`` needs for the stage ``roles`` (empty for weights-free configs), each
    located on this machine without network. ``locate_fn`` defaults to :func:`locate`."""
    find = locate_fn if locate_fn is not None else locate
    wanted = set(roles)
    return [
        Requirement(what, model_id, *find(model_id)) for what, model_id in needed(config) if what in wanted
    ]


def unavailable(
    config: PipelineConfig, roles: Iterable[str] = STAGE_ROLES, locate_fn: Locator | None = None
) -> list[Requirement]:
    """The weights of ``roles`` that are neither here nor downloadable now; empty when everything
    is here or can be fetched. Probes only where something is missing: the hub for hub ids, the
    XMem release's server for the default XMem checkpoint (a local path that does not exist cannot
    be fetched at all)."""
    return [
        r for r in requirements(config, roles, locate_fn) if not r.present and not downloadable(r.model_id)
    ]


def looks_like_hub_id(model_id: str) -> bool:
    """``org/name``: fetched from the hub; anything else not on disk is a local path or file name.
    (Whether it is on disk is :func:`videoseg.runtime.loading.is_hub_id`'s question.)"""
    return "/" in model_id and not model_id.startswith((".", "/", "~"))


def _xmem_download_on() -> bool:
    return os.environ.get("VIDEOSEG_XMEM_DOWNLOAD", "1") != "0"


def downloadable(model_id: str) -> bool:
    """Whether a checkpoint not on this machine could be fetched from here now."""
    from videoseg.runtime import loading as models  # looked up at call time: tests replace the probes

    if model_id == "XMem.pth":  # the default: the official release, downloaded on first use
        from videoseg.propagation.xmem.network import XMEM_URL

        return _xmem_download_on() and models.url_reachable(XMEM_URL)
    if not (looks_like_hub_id(model_id) and models.hub_reachable()):  # a missing local path never is
        return False
    return gated_refusal(model_id) is None


def _hub_token() -> str | None:
    """The token the hub clients would send (``HF_TOKEN`` or a saved login), without network."""
    try:
        from huggingface_hub import get_token
    except ImportError:
        return None
    return get_token()


_AUTHORISED: dict[tuple[str, str], bool] = {}  # (repo, token) -> may download (asked once per process)


def _authorised(model_id: str, token: str) -> bool:
    """Whether ``token`` may download the gated ``model_id`` (asks the hub; only called when reachable).
    An answer other than "gated, not authorised" (a network hiccup) counts as yes: the load then says why."""
    key = (model_id, token)
    if key not in _AUTHORISED:
        try:
            from huggingface_hub import auth_check
            from huggingface_hub.errors import GatedRepoError
        except ImportError:
            return True
        try:
            auth_check(model_id, token=token)
            _AUTHORISED[key] = True
        except GatedRepoError:
            _AUTHORISED[key] = False
        except Exception:  # an unknown answer: let from_pretrained report it
            return True
    return _AUTHORISED[key]


def gated_refusal(model_id: str) -> str | None:
    """Why a gated checkpoint cannot be downloaded with this machine's credentials, else None.

    No token: refused without asking anyone. A token: the hub is asked (when it can be reached)
    whether that token's account accepted the licence."""
    licence = GATED.get(model_id)
    if licence is None:
        return None
    from videoseg.runtime import loading as models

    page = f"{models.hub_endpoint().rstrip('/')}/{model_id}"
    token = _hub_token()
    if not token:
        return (
            f"gated on the hub ({licence}): accept the licence at {page} and give this machine that "
            "account's token (HF_TOKEN, or `hf auth login`)"
        )
    if models.hub_reachable() and not _authorised(model_id, token):
        return f"gated on the hub ({licence}): this machine's token is not authorised; accept the licence at {page}"
    return None


def why_not_fetched(model_id: str) -> str:
    """Why a missing checkpoint cannot be fetched: the server it would come from, or no such file."""
    from videoseg.runtime.loading import hub_endpoint

    if model_id == "XMem.pth":
        from videoseg.propagation.xmem.network import XMEM_URL

        if not _xmem_download_on():
            return "its download is switched off (VIDEOSEG_XMEM_DOWNLOAD=0)"
        return f"no connection to {urlsplit(XMEM_URL).hostname}"
    if not looks_like_hub_id(model_id):
        return "no such file or folder"
    gated = gated_refusal(model_id)
    if gated is not None:
        return gated
    return f"no connection to {urlsplit(hub_endpoint()).hostname}"


def listing(missing: Iterable[Requirement]) -> str:
    """``reasoner `id` (~16.6 GB, no connection to huggingface.co); ...``: every missing checkpoint
    in one line, with its size and why it cannot be fetched."""
    return "; ".join(
        f"{r.what} `{r.model_id}` ("
        + ", ".join([*([f"~{r.approx_gb:g} GB"] if r.approx_gb else []), why_not_fetched(r.model_id)])
        + ")"
        for r in missing
    )


def weights_free_presets() -> list[str]:
    """Names of the presets that need no weights at all."""
    from videoseg.core.config import PRESETS, preset

    return [name for name in PRESETS if not needed(preset(name))]


def unavailable_message(subject: str, missing: list[Requirement], place: str, advice: str) -> str:
    """One message naming every missing checkpoint: ``subject`` (e.g. "The `paper` preset") needs
    weights that are not on ``place`` ("this server", "this machine") and cannot be downloaded from
    here (each one says why); then ``advice`` (what to do instead)."""
    return f"{subject} needs weights that are not on {place} and cannot be fetched from here: {listing(missing)}. {advice}"


# Where a command-line user can give a local copy of each checkpoint instead (``run`` options).
_LOCAL_OPTIONS = {"reasoner": "--vlm", "segmenter": "--sam2"}
_PROPAGATOR_OPTIONS = {"xmem": "--xmem", "sam2": "--sam2", "edgetam": "--edgetam", "sam3-tracker": "--sam3"}


def command_line_message(
    preset_name: str, config: PipelineConfig, missing: list[Requirement], with_options: bool
) -> str:
    """The one-line refusal of ``run`` / ``benchmark``: every missing checkpoint, then what to do.

    ``with_options``: the command takes ``--vlm`` / ``--sam2`` / ``--xmem`` (``run``), so name the
    ones that would point at local copies of exactly what is missing."""
    options: list[str] = []
    for r in missing:
        option = _LOCAL_OPTIONS.get(r.what)
        if r.what == "propagator":  # the propagator's own checkpoint option
            option = _PROPAGATOR_OPTIONS.get(config.propagator)
        if config.method == "sam3-text":  # the direct method's one model
            option = "--sam3"
        if option and option not in options:
            options.append(option)
    if with_options:
        where = f"give local copies with {' / '.join(options)} PATH"
    else:
        xmem = any(r.what == "propagator" and config.propagator == "xmem" for r in missing)
        where = "put them in this machine's Hugging Face cache" + (
            f" (the XMem checkpoint as {xmem_cache_hint()})" if xmem else ""
        )
    return unavailable_message(
        f"--preset {preset_name}",
        missing,
        "this machine",
        f"Run where the hub can be reached, {where}, or use a weights-free preset such as shapes.",
    )


def command_line_refusal(preset_name: str, config: PipelineConfig, with_options: bool) -> str | None:
    """``run`` / ``benchmark``: the ``error:`` line refusing ``config`` before any work when weights
    it needs are missing and cannot be downloaded from here, else None (see :func:`unavailable`)."""
    missing = unavailable(config)
    if not missing:
        return None
    return f"error: {command_line_message(preset_name, config, missing, with_options)}"


def xmem_cache_hint() -> str:
    """Where the XMem checkpoint is looked for without a path (``$VIDEOSEG_CACHE`` or ~/.cache/videoseg)."""
    from videoseg.propagation.xmem.propagator import xmem_cache_path

    return str(xmem_cache_path())


__all__ = [
    "APPROX_GB",
    "GATED",
    "STAGE_ROLES",
    "Requirement",
    "command_line_message",
    "command_line_refusal",
    "downloadable",
    "gated_refusal",
    "listing",
    "locate",
    "needed",
    "requirements",
    "unavailable",
    "unavailable_message",
    "weights_free_presets",
    "why_not_fetched",
    "xmem_cache_hint",
]

"""Two runs at once on ONE cached model (issue 11 item 2): each trace equals its solo run.

The Qwen2.5-VL object is shared by every run in the process (weights and processors only). Two
pipelines with different presets (profile, seed, temperature, K / M, cues, difficulty rating) run in
two threads on the same tiny checkpoint; their event streams, without wall-clock fields, must be
exactly those of the same runs made one after the other. A per-run setting leaking through the shared
object (a prompt, a seed, a token cap) or sampling from torch's global RNG would break this.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from tests.support.tiny_models import tiny_qwen_dir, torch_single_thread  # noqa: F401
from videoseg.core.config import PipelineConfig
from videoseg.io.video import ArrayVideo
from videoseg.pipeline import run
from videoseg.runtime import backends, loading

# Wall-clock and memory readings differ between any two runs; everything else must not.
_CLOCK_FIELDS = {"seconds", "timings", "peak_cuda_mb", "peak_rss_mb", "frames_per_second"}


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _CLOCK_FIELDS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _video() -> ArrayVideo:
    frames = np.random.default_rng(11).integers(0, 256, (10, 48, 64, 3), dtype=np.uint8)
    return ArrayVideo(frames, fps=5.0)


def _trace(config: PipelineConfig, query: str, start: threading.Barrier | None = None) -> list[dict]:
    if start is not None:
        start.wait()
    return [_strip(e.to_dict()) for e in run(_video(), query, config)]


@pytest.mark.slow
def test_two_presets_at_once_on_one_cached_model_match_their_solo_runs(tiny_qwen_dir):  # noqa: F811
    model = str(tiny_qwen_dir)
    common = dict(
        vlm=model,
        device="cpu",
        frames_per_question=4,
        num_key_frames=2,
        num_reference_frames=2,
        max_new_tokens=20,
    )
    a = PipelineConfig(
        **common, profile="qwen2.5-vl", seed=1, temperature=0.7, num_interval_answers=3, num_percent_answers=2
    )
    b = PipelineConfig(
        **common,
        profile="visionreasoner",
        sampler_vlm=model,
        seed=7,
        temperature=1.3,
        num_interval_answers=2,
        num_percent_answers=3,
        cues=("box",),
        rate_difficulty=False,
    )
    loading.clear_cache()
    solo_a = _trace(a, "the square that moves left")
    solo_b = _trace(b, "the largest object")
    # one model object served both presets (and both stages of b)
    assert backends.make_vqa(a) is backends.make_vqa(b) is backends.make_sampler_vqa(b)
    assert (
        len([k for k in loading.cached_keys() if k[:2] == ("qwen2.5-vl", model) and k[3] == "float32"]) == 1
    )

    results: dict[str, list[dict]] = {}
    start = threading.Barrier(2)
    threads = [
        threading.Thread(
            target=lambda: results.__setitem__("a", _trace(a, "the square that moves left", start))
        ),
        threading.Thread(target=lambda: results.__setitem__("b", _trace(b, "the largest object", start))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert results["a"] == solo_a
    assert results["b"] == solo_b
    # The two runs really differ (so equality above is not trivially the same trace twice).
    assert solo_a != solo_b
    prompts_a = {e["purpose"]: e["text"] for e in solo_a if e["type"] == "prompt"}
    prompts_b = {e["purpose"]: e["text"] for e in solo_b if e["type"] == "prompt"}
    assert prompts_a["reason"] != prompts_b["reason"]  # each run kept its own profile's prompt
    assert "difficulty" in prompts_a and "difficulty" not in prompts_b
    calls_a = [e for e in solo_a if e["type"] == "model_call" and e["purpose"] == "interval"]
    assert calls_a and all(c["num_sequences"] == 3 for c in calls_a)  # K answers, one generate per level
    assert not any(e["type"] == "error" for e in solo_a + solo_b)

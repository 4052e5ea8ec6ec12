"""HTFS arithmetic (K / M averaging, zoom stop rules, fallbacks, clamping) and the Table 5 baselines."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import pytest

from tests.support.fakes import ScriptedVideoQA
from videoseg.core import events as ev
from videoseg.core.config import PipelineConfig
from videoseg.io.video import ArrayVideo
from videoseg.sampling.baselines import run_sampler
from videoseg.sampling.htfs import (
    FrameReader,
    htfs,
    key_frames_with_target,
    target_from_percent,
    uniform_indices,
)


def _video(num_frames: int = 100, fps: float = 10.0) -> ArrayVideo:
    # Each frame carries its own index in its pixels, so a test can see which frames were decoded.
    frames = np.zeros((num_frames, 4, 4, 3), dtype=np.uint8)
    frames[..., 0] = (np.arange(num_frames) % 256)[:, None, None]
    return ArrayVideo(frames, fps=fps)


def _drive(gen: Generator[ev.Event, None, Any]) -> tuple[list[ev.Event], Any]:
    events: list[ev.Event] = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


CFG = PipelineConfig(
    num_interval_answers=3,
    num_percent_answers=3,
    delta=0.25,
    frames_per_question=5,
    num_key_frames=3,
    num_reference_frames=4,
)


def test_k_intervals_and_m_percentages_are_averaged_exactly() -> None:
    qa = ScriptedVideoQA(
        intervals=[
            ["1 to 5 s", "2 to 6 s", "3 to 7 s"],  # frames (10,50) (20,60) (30,70) -> mean (20, 60)
            [
                "0 to 1 s",
                "0.5 to 1.5 s",
                "1 to 2 s",
            ],  # in window [20, 60]: (20,30) (25,35) (30,40) -> (25, 35)
        ],
        percents=["10%", "20%", "60%"],  # mean 0.3; T_key = 11 -> floor(3.3) = 3 -> frame 28
    )
    reader = FrameReader(_video())
    events, decision = _drive(htfs(reader, "q", qa, CFG))
    levels = [e for e in events if isinstance(e, ev.SamplerLevel)]
    assert [lv.window for lv in levels] == [[0, 99], [20, 60]]
    assert [lv.intervals for lv in levels] == [[[10, 50], [20, 60], [30, 70]], [[20, 30], [25, 35], [30, 40]]]
    assert [lv.mean_interval for lv in levels] == [[20, 60], [25, 35]]
    assert [lv.zoom for lv in levels] == [True, False]  # 41 > 0.25 * 100 zooms; 11 <= 25 stops
    assert levels[1].frame_indices == [20, 30, 40, 50, 60]  # 5 frames uniform over the zoomed window
    assert [c.window for c in qa.interval_clips] == [(0, 99), (20, 60)]
    percent = next(e for e in events if isinstance(e, ev.SamplerPercent))
    assert percent.percents == pytest.approx([0.1, 0.2, 0.6])
    assert percent.mean_percent == pytest.approx(0.3)
    assert percent.target_frame == 28 and not percent.fallback
    assert qa.percent_clips[0].window == (25, 35)
    assert decision.key_segment == (25, 35) and decision.target_frame == 28
    assert decision.key_frames == [25, 28, 35]  # uniform 25, 30, 35 with the nearest replaced by the target
    assert decision.reference_frames == [0, 33, 66, 99]
    assert not decision.fallback and decision.levels == 2
    prompts = [e for e in events if isinstance(e, ev.PromptShown)]
    assert [p.purpose for p in prompts] == ["interval", "interval", "percentage"]


def _first_half(clip: Any, sample: int) -> str:
    return f"from 0 to {clip.duration / 2 - 1 / clip.fps:.4f} seconds"


def test_zoom_stops_at_max_levels() -> None:
    qa = ScriptedVideoQA(intervals=[[_first_half]], percents=["0%"])
    cfg = CFG.replace(delta=0.01, max_levels=3)
    events, decision = _drive(htfs(FrameReader(_video()), "q", qa, cfg))
    levels = [e for e in events if isinstance(e, ev.SamplerLevel)]
    assert [lv.mean_interval for lv in levels] == [[0, 49], [0, 24], [0, 12]]
    assert [lv.zoom for lv in levels] == [True, True, False]
    assert decision.key_segment == (0, 12) and decision.target_frame == 0


def test_zoom_stops_when_the_segment_stops_shrinking() -> None:
    qa = ScriptedVideoQA(intervals=[["from 0 to 1000 seconds"]], percents=["50%"])
    events, decision = _drive(htfs(FrameReader(_video()), "q", qa, CFG))
    levels = [e for e in events if isinstance(e, ev.SamplerLevel)]
    assert len(levels) == 1 and levels[0].mean_interval == [0, 99] and not levels[0].zoom
    assert not decision.fallback  # the answers parsed; they just named the whole video
    assert decision.target_frame == 50


def test_zoom_stops_once_within_delta() -> None:
    # 30 frames > 0.25 * 100 -> zoom; then the answer keeps 20 frames <= 25 -> stop.
    qa = ScriptedVideoQA(intervals=[["from 0 to 2.9 s"], ["from 0 to 1.9 s"]], percents=["50%"])
    events, decision = _drive(htfs(FrameReader(_video()), "q", qa, CFG.replace(max_levels=10)))
    levels = [e for e in events if isinstance(e, ev.SamplerLevel)]
    assert [lv.mean_interval for lv in levels] == [[0, 29], [0, 19]]
    assert decision.levels == 2


def test_nothing_parsed_keeps_the_window_and_falls_back() -> None:
    qa = ScriptedVideoQA(intervals=[["I cannot tell.", "", "```json\n{}\n```"]], percents=["no", "idea", "?"])
    events, decision = _drive(htfs(FrameReader(_video()), "q", qa, CFG))
    level = next(e for e in events if isinstance(e, ev.SamplerLevel))
    assert level.intervals == [None, None, None]
    assert level.mean_interval == [0, 99] and not level.zoom
    warnings = [e for e in events if isinstance(e, ev.RunWarning)]
    assert len(warnings) == 1 and "no interval answer parsed" in warnings[0].message
    percent = next(e for e in events if isinstance(e, ev.SamplerPercent))
    assert percent.fallback and percent.mean_percent == 0.5 and percent.percents == [None, None, None]
    assert decision.fallback and decision.target_frame == 50  # 0 + floor(100 * 0.5)


def test_fallback_percent_is_configurable() -> None:
    qa = ScriptedVideoQA(intervals=[["0 to 1000 s"]], percents=["?"])
    _, decision = _drive(htfs(FrameReader(_video()), "q", qa, CFG.replace(fallback_percent=0.2)))
    assert decision.target_frame == 20


def test_unparsable_answers_are_left_out_of_the_means() -> None:
    qa = ScriptedVideoQA(intervals=[["garbage", "2 to 4 s", "4 to 6 s"]], percents=["90%", "nope", "70%"])
    events, decision = _drive(htfs(FrameReader(_video()), "q", qa, CFG))
    level = next(e for e in events if isinstance(e, ev.SamplerLevel))
    assert level.intervals == [None, [20, 40], [40, 60]] and level.mean_interval == [30, 50]
    percent = next(e for e in events if isinstance(e, ev.SamplerPercent))
    assert percent.mean_percent == pytest.approx(0.8) and not percent.fallback
    assert decision.target_frame == 30 + 16  # floor(21 * 0.8) = 16


@pytest.mark.parametrize(
    ("segment", "p", "expected"),
    [
        ((10, 19), 0.0, 10),
        ((10, 19), 0.55, 15),  # floor(10 * 0.55) = 5
        ((10, 19), 0.999, 19),
        ((10, 19), 1.0, 19),  # floor(10 * 1.0) = 10 would step past the segment: clamped
        ((7, 7), 0.9, 7),
    ],
)
def test_target_from_percent(segment: tuple[int, int], p: float, expected: int) -> None:
    assert target_from_percent(segment, p) == expected


@pytest.mark.parametrize(
    ("start", "end", "count", "expected"),
    [
        (0, 99, 4, [0, 33, 66, 99]),
        (5, 7, 10, [5, 6, 7]),  # fewer frames than asked: each once
        (3, 9, 1, [6]),
        (0, 9, 0, []),
    ],
)
def test_uniform_indices(start: int, end: int, count: int, expected: list[int]) -> None:
    assert uniform_indices(start, end, count) == expected


def test_key_frames_always_include_the_target() -> None:
    for target in range(20, 41):
        frames = key_frames_with_target(20, 40, 4, target)
        assert target in frames and frames == sorted(set(frames)) and len(frames) <= 4


def test_only_shown_frames_are_decoded_on_a_long_video() -> None:
    video = _video(num_frames=3000, fps=25.0)
    qa = ScriptedVideoQA(intervals=[["from 10 to 30 s"], ["from 5 to 10 s"]], percents=["40%"])
    reader = FrameReader(video)
    cfg = PipelineConfig(frames_per_question=16)
    events, _ = _drive(htfs(reader, "q", qa, cfg))
    decoded = [e for e in events if isinstance(e, ev.FramesDecoded)]
    shown = set()
    for e in decoded:
        shown.update(e.frame_indices)
    assert reader.decoded == shown
    assert decoded[-1].total_decoded == len(shown) <= 3 * 16
    assert len(shown) / len(video) < 0.02
    # The clip handed to the model holds the frames it names (pixel value = frame index % 256).
    for clip in qa.interval_clips + qa.percent_clips:
        assert [int(f[0, 0, 0]) for f in clip.frames] == [i % 256 for i in clip.frame_indices]


# --------------------------------------------------------------------------- baselines (Table 5)


def _scripted() -> ScriptedVideoQA:
    return ScriptedVideoQA(intervals=[["4 to 6 s"]], percents=["50%"])  # key segment [40, 60], target 50


def test_first_frame_asks_nothing_and_puts_cues_on_frame_0() -> None:
    qa = _scripted()
    events, decision = _drive(run_sampler(FrameReader(_video()), "q", qa, CFG.replace(sampler="first_frame")))
    assert qa.interval_clips == [] and qa.percent_clips == []
    assert [type(e) for e in events] == [ev.SamplerResult]
    assert (decision.target_frame, decision.key_segment, decision.key_frames) == (0, (0, 0), [0])
    assert decision.reference_frames == [0, 33, 66, 99]


def test_target_only_shows_only_the_htfs_target() -> None:
    events, decision = _drive(
        run_sampler(FrameReader(_video()), "q", _scripted(), CFG.replace(sampler="target_only"))
    )
    result = events[-1]
    assert isinstance(result, ev.SamplerResult) and result.strategy == "target_only"
    assert decision.target_frame == 50 and decision.key_frames == [50] and decision.reference_frames == []
    assert decision.key_segment == (40, 60)


def test_random_key_is_seeded_and_inside_the_key_segment() -> None:
    targets = []
    for seed in range(8):
        cfg = CFG.replace(sampler="random_key", seed=seed)
        _, decision = _drive(run_sampler(FrameReader(_video()), "q", _scripted(), cfg))
        _, again = _drive(run_sampler(FrameReader(_video()), "q", _scripted(), cfg))
        assert decision.target_frame == again.target_frame  # same seed, same frame
        assert 40 <= decision.target_frame <= 60 and decision.target_frame in decision.key_frames
        assert decision.reference_frames == [0, 33, 66, 99]
        targets.append(decision.target_frame)
    assert len(set(targets)) > 1  # the seed matters


def test_htfs_result_event_matches_the_decision() -> None:
    events, decision = _drive(run_sampler(FrameReader(_video()), "q", _scripted(), CFG))
    result = events[-1]
    assert isinstance(result, ev.SamplerResult)
    assert (result.strategy, result.target_frame, result.key_segment) == ("htfs", 50, [40, 60])
    assert result.key_frames == decision.key_frames and result.reference_frames == decision.reference_frames


# --------------------------------------------------------------------------- GPU cost (issue 12 item 5)


def test_each_level_is_one_model_call_with_k_sequences_and_its_prompt_first() -> None:
    qa = ScriptedVideoQA(
        intervals=[["1 to 5 s", "2 to 6 s", "3 to 7 s"], ["0 to 1 s", "0.5 to 1.5 s", "1 to 2 s"]],
        percents=["10%", "20%", "60%"],
    )
    events, _ = _drive(htfs(FrameReader(_video()), "q", qa, CFG.replace(num_percent_answers=2)))
    calls = [e for e in events if isinstance(e, ev.ModelCall)]
    assert [(c.purpose, c.level, c.num_sequences) for c in calls] == [
        ("interval", 0, 3),
        ("interval", 1, 3),
        ("percentage", None, 2),
    ]
    assert len(qa.interval_clips) == 2  # one call per level, not K
    # The run's settings reach every call; the level numbers the draw.
    assert [s.level for s in qa.settings] == [0, 1, 2] and {s.seed for s in qa.settings} == {CFG.seed}
    # Each call's prompt is shown before the call, then its cost, then what it decided.
    kinds = [type(e).__name__ for e in events if not isinstance(e, ev.FramesDecoded)]
    assert kinds == [
        "PromptShown", "ModelCall", "SamplerLevel",
        "PromptShown", "ModelCall", "SamplerLevel",
        "PromptShown", "ModelCall", "SamplerPercent",
    ]  # fmt: skip


def test_the_key_segment_never_shrinks_below_min_key_frames() -> None:
    # Every answer names one instant (frame 52): the segment is widened about it to 8 frames.
    qa = ScriptedVideoQA(intervals=[["5.2 to 5.2 s"]], percents=["50%"])
    events, decision = _drive(htfs(FrameReader(_video()), "q", qa, CFG.replace(min_key_frames=8)))
    assert decision.key_segment == (49, 56)  # 3 frames before frame 52, 4 after
    assert any("widened" in n and "min_key_frames 8" in n for n in decision.notes)
    level = next(e for e in events if isinstance(e, ev.SamplerLevel))
    assert level.mean_interval == [49, 56] and not level.zoom  # 8 frames is within the limit: no zoom
    # Near the video's end the widened segment stays inside the window.
    qa = ScriptedVideoQA(intervals=[["9.9 to 9.9 s"]], percents=["50%"])
    _, decision = _drive(htfs(FrameReader(_video()), "q", qa, CFG.replace(min_key_frames=8)))
    assert decision.key_segment == (92, 99)


@pytest.mark.parametrize(
    ("segment", "window", "minimum", "expected"),
    [
        ((10, 20), (0, 99), 5, (10, 20)),  # long enough
        ((50, 50), (0, 99), 4, (49, 52)),  # the odd frame goes after
        ((0, 0), (0, 99), 5, (0, 4)),
        ((99, 99), (0, 99), 5, (95, 99)),
        ((3, 4), (0, 5), 10, (0, 5)),  # never more than the window
    ],
)
def test_widen_to_min(segment, window, minimum, expected) -> None:
    from videoseg.sampling.htfs import widen_to_min

    assert widen_to_min(segment, window, minimum) == expected


def test_a_box_list_where_an_interval_was_asked_is_unreadable_and_reported() -> None:
    # A grounding checkpoint answers "when?" with boxes: their pixels must not become seconds.
    box = '[{"bbox_2d": [24, 84, 300, 400], "point_2d": [100, 200]}]'
    qa = ScriptedVideoQA(
        intervals=[[box, "2 to 6 s"]], percents=['<answer>[{"bbox_2d": [5, 6, 7, 8]}]</answer>']
    )
    events, _ = _drive(htfs(FrameReader(_video()), "q", qa, CFG.replace(num_interval_answers=2)))
    level = next(e for e in events if isinstance(e, ev.SamplerLevel))
    assert level.intervals == [None, [20, 60]]  # only the real interval counts
    warnings = [e.message for e in events if isinstance(e, ev.RunWarning)]
    assert any("1 of 2 interval answers are unreadable" in w and "grounding answer" in w for w in warnings)
    percent = next(e for e in events if isinstance(e, ev.SamplerPercent))
    assert percent.percents == [None, None, None] and percent.fallback  # not read as 5 %
    assert any("percentage answers are unreadable" in w for w in warnings)

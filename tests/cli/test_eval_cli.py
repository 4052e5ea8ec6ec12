"""``python -m videoseg eval``: seed parsing, folder scoring and the shapes benchmark entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from videoseg.cli.eval import parse_seeds, score_folders
from videoseg.cli.main import main
from videoseg.io.video import write_mask_pngs


@pytest.mark.parametrize(
    ("text", "seeds"),
    [
        ("100-103", [100, 101, 102, 103]),
        ("3,5", [3, 5]),
        ("1-2, 9", [1, 2, 9]),
        ("7", [7]),
    ],
)
def test_parse_seeds(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    ("text", "message"), [("", "no seeds"), ("5-3", "empty seed range"), ("a", "invalid")]
)
def test_parse_seeds_rejects_bad_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_seeds(text)


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    gt = np.zeros((3, 20, 30), dtype=np.uint8)
    gt[:, 5:15, 5:15] = 1  # object 1: 100 px
    gt[:, 0:4, 20:30] = 2  # object 2: elsewhere
    pred = np.zeros_like(gt)
    pred[0, 5:15, 5:15] = 1  # frame 0: exact
    pred[1, 5:15, 10:20] = 1  # frame 1: half overlap -> IoU 50 / 150
    # frame 2: nothing predicted -> IoU 0
    write_mask_pngs(tmp_path / "gt", gt)
    write_mask_pngs(tmp_path / "pred", pred)
    return tmp_path / "pred", tmp_path / "gt"


def test_score_folders_uses_the_expression_objects(tmp_path: Path) -> None:
    pred, gt = _folders(tmp_path)
    only_1 = score_folders(pred, gt, [1])
    assert only_1["per_frame_J"] == pytest.approx([1.0, 50 / 150, 0.0])
    assert only_1["J"] == pytest.approx((1.0 + 50 / 150) / 3)
    assert only_1["J&F"] == pytest.approx((only_1["J"] + only_1["F"]) / 2)
    everything = score_folders(pred, gt)  # default: every object is the ground truth
    assert everything["per_frame_J"][0] == pytest.approx(100 / 140)


def test_eval_cli_writes_json_and_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred, gt = _folders(tmp_path)
    out = tmp_path / "scores.json"
    assert main(["eval", "--pred", str(pred), "--gt", str(gt), "--obj-ids", "1", "--json", str(out)]) == 0
    assert "J&F" in capsys.readouterr().out
    assert json.loads(out.read_text())["frames"] == 3
    assert main(["eval"]) == 2  # nothing to score
    assert main(["eval", "--pred", str(pred), "--gt", str(tmp_path / "missing")]) == 1
    assert "error" in capsys.readouterr().err
    short = tmp_path / "short"
    write_mask_pngs(short, np.zeros((2, 20, 30), dtype=np.uint8))
    assert main(["eval", "--pred", str(short), "--gt", str(gt)]) == 1
    assert "differ" in capsys.readouterr().err


def test_eval_cli_runs_the_shapes_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--shapes-seeds", "4001", "--families", "turn"]) == 0
    text = capsys.readouterr().out
    assert "turn" in text and "mean J&F" in text

#!/usr/bin/env bash
# Regenerate the shapes-world example clips (deterministic: same seed, same frames and masks).
# Run from the repository root: bash examples/regenerate.sh
set -euo pipefail
python -m videoseg synth --seed 1 --family absent_first_frame --out examples/shapes/absent_first_frame
python -m videoseg synth --seed 2 --family turn --out examples/shapes/turn
python -m videoseg synth --seed 3 --family appears_after --out examples/shapes/appears_after
python -m videoseg synth --seed 4 --family occlusion --out examples/shapes/occlusion
# Recorded traces of the first expression of two examples (replayed by the explorer and its tests).
python bench/record_example_traces.py --limit 2

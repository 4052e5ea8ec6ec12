"""The About tab: what each backend of the three paper stages is, what runs without weights, what the
real presets would download, and the paper's reported ablation numbers for reference."""

from __future__ import annotations

import gradio as gr

from videoseg.core.config import PRESETS
from videoseg.ui.runner import preset_requirements
from videoseg.ui.session import UploadCaps

BACKENDS_MD = """
### The three stages and their backends

| stage | paper backend (real model) | weights-free backend here |
|---|---|---|
| 1 · where to look (HTFS) | Qwen2.5-VL asked K times for the query's time interval, zooming while the key segment is longer than δ·T, then M times for the target frame's position | the same HTFS algorithm, questions answered by the **shapes-world symbolic model** (classical detection + tracking on the pixels, never the ground truth) |
| 2 · reasoner | Qwen2.5-VL (7B / 3B; VisionReasoner-7B or Seg-Zero-7B as the closest released checkpoints) writing `<think>…</think><answer>[box, + centre, − negative]</answer>` | the shapes-world symbolic reasoner (same answer format), or **manual** cues (your clicks, Interactive tab) |
| 3a · keyframe mask | SAM2 image model (box + positive point + negative point) | **GrabCut** (OpenCV) from the same cues |
| 3b · propagation | XMem, forward and backward from the keyframe (SAM2 video as an alternative) | **optical-flow** warp + re-segmentation (OpenCV) |

Weights-free presets (`shapes*`) run on a CPU in seconds and are labelled as what they are: they are
not the paper's models, and their numbers on the shapes world say nothing about the paper's benchmarks.
"""

PAPER_MD = """
### The paper's reported numbers (VideoSeg-R1, AAAI-26; for reference, not reproduced here)

**Table 5 · where to look** (J&F)

| sampler | MeViS | ReVOS |
|---|---|---|
| first frame | 45.7 | 53.9 |
| target frame only | 52.5 | 57.6 |
| random frame of the key segment | 49.2 | 56.3 |
| full HTFS | 55.3 | 61.1 |

**Table 6 · which cues** (ReVOS J&F): centre point only 56.5 · box only 57.2 · box + centre 60.3 ·
box + negative 58.1 · all three 61.1

**Table 7 · soft length penalty**: reasoning tokens drop (ReVOS 89.9 → 56.1) while J&F rises (57.3 → 61.1).

**Main results** (J&F): Ref-YouTube-VOS 81.3 (7B) / 75.9 (3B); Ref-DAVIS17 79.8 / 77.5; MeViS 55.3 / 53.0;
ReVOS (zero-shot) 61.1 / 58.6.

The Compare tab runs the same ablations (presets `shapes-first-frame`, `shapes-target-only`,
`shapes-random-key`, `shapes-box-only`, … and their `paper-*` counterparts) on any video.
"""


def presets_table() -> str:
    rows = ["| preset | what it is | weights needed (≈ download) |", "|---|---|---|"]
    for name, (_, desc) in PRESETS.items():
        reqs = preset_requirements(name)
        if not reqs:
            weights = "none"
        else:
            weights = "; ".join(
                f"`{r.model_id}`"
                + (f" ≈{r.approx_gb:g} GB" if r.approx_gb else "")
                + (" ✅ here" if r.present else "")
                for r in reqs
            )
        rows.append(f"| `{name}` | {desc} | {weights} |")
    return "### Presets\n\n" + "\n".join(rows)


def build_about_tab(caps: UploadCaps) -> None:
    gr.Markdown(BACKENDS_MD)
    gr.Markdown(presets_table())
    gr.Markdown(
        f"### Limits of this server\n\nUploads: {caps.describe()}. Real-model presets need a GPU; on a "
        "Hugging Face ZeroGPU Space each run asks for GPU time in proportion to the video's length."
    )
    gr.Markdown(PAPER_MD)


__all__ = ["build_about_tab", "presets_table"]

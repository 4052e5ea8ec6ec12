"""Our XMem (paper step 3b: mask propagation) side by side with the official implementation.

Both networks get one random state dict in the official naming (seeded) loaded with
``strict=True``; then the official ``InferenceCore`` and ours run over the same synthetic clip
(moving shapes from :func:`videoseg.shapes.generate`, a frame size that is not a multiple of 16 so
both pad) on the CPU in fp32, and the script prints, per configuration, the largest absolute
difference between the per-frame probabilities and whether the argmax masks agree. The
configurations are small enough to exercise everything the memory does within 36 frames:
mid-term -> long-term consolidation (min/max mid-term frames 2/4), usage counting and the removal
of the least used long-term elements (a small ``max_long_term_elements``), top-k readout,
``mem_every``, synchronised and free-running deep updates, two objects, and a second object first
given on a later frame (its own object group).

The official code is NOT part of this repository. Point ``--official`` at a folder holding the
official XMem inference code in its own layout (``model/network.py``, ``model/modules.py``,
``model/group_modules.py``, ``model/cbam.py``, ``model/aggregate.py``, ``model/resnet.py``,
``model/memory_util.py``, ``inference/inference_core.py``, ``inference/memory_manager.py``,
``inference/kv_memory_store.py``, ``util/tensor_util.py`` from hkchengrex/XMem). The official
encoders ask for ImageNet-pretrained ResNets (a download); this script makes only that call build
the ResNets without pretrained weights, since the state dict below overwrites every tensor anyway.

``--speed`` times the two instead, with the same weights, at 854x480 on the CPU in fp32 with the
official eval.py settings (mem_every 5, top_k 30, mid-term 5..10 frames, long-term up to 10000
elements, 128 prototypes, deep update with every memory frame), for 1 and 2 objects. The cores
run in lockstep (frame t of each in turn, who goes first rotating), so a load change on a shared
machine hits all alike; the script prints per-frame medians, totals and their ratios, for ours as it
runs by default and ours with the opt-in folded batch norms (``XMem.set_folded_batch_norms``).
``--device cuda --fp16`` gives GPU frames/s (fp16 autocast, as the official eval.py runs).

Usage::

    python bench/compare_xmem_official.py --official /tmp/xmem_official [--frames 36]
        [--size 381x219] [--seed 0] [--threads 2] [--per-frame] [--also-exact-path]
    python bench/compare_xmem_official.py --official /tmp/xmem_official --speed [--frames 20]
        [--size 854x480] [--objects 1,2] [--device cpu|cuda] [--fp16]

Get the official code without putting it in this repository, e.g.
``git clone https://github.com/hkchengrex/XMem /tmp/xmem_official``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videoseg.propagation.xmem import InferenceCore, XMem

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
DIMS = {"key_dim": 64, "value_dim": 512, "hidden_dim": 64}

# Shared by every configuration: consolidation every two memory frames (T_max 4, T_min 2).
BASE: dict[str, Any] = {
    "top_k": 30,
    "enable_long_term": True,
    "enable_long_term_count_usage": True,
    "max_mid_term_frames": 4,
    "min_mid_term_frames": 2,
    "num_prototypes": 48,
    "max_long_term_elements": 160,
    "mem_every": 2,
    "deep_update_every": -1,
}

CONFIGS: list[dict[str, Any]] = [
    {"name": "1 object, mem_every 2, deep update with memory frames", "objects": [1], "late": {}},
    {
        "name": "2 objects, mem_every 3, deep update every 4 frames",
        "objects": [1, 2],
        "late": {},
        "settings": {"mem_every": 3, "deep_update_every": 4},
    },
    {
        # The official store cannot drop long-term elements once two object groups exist, so the
        # long-term budget is large here (both implementations raise otherwise).
        "name": "2 objects, object 2 first given on frame 7",
        "objects": [1, 2],
        "late": {2: 7},
        "settings": {"max_long_term_elements": 10000},
    },
    {
        "name": "2 objects, top_k 8, 24 prototypes, long-term budget 80",
        "objects": [1, 2],
        "late": {},
        "settings": {"top_k": 8, "num_prototypes": 24, "max_long_term_elements": 80},
    },
]


def import_official(folder: Path) -> dict[str, Any]:
    """Import the official modules from ``folder`` (its own top-level ``model`` / ``inference``)."""
    if not (folder / "model" / "network.py").is_file():
        raise SystemExit(f"{folder} does not hold the official XMem code (model/network.py missing)")
    sys.path.insert(0, str(folder))
    resnet = importlib.import_module("model.resnet")
    # Only change: build the ResNets without downloading ImageNet weights (overwritten below).
    for name in ("resnet18", "resnet50"):
        original = getattr(resnet, name)

        def no_download(pretrained: bool = True, extra_dim: int = 0, _original=original):
            return _original(pretrained=False, extra_dim=extra_dim)

        setattr(resnet, name, no_download)
    network = importlib.import_module("model.network")
    inference_core = importlib.import_module("inference.inference_core")
    return {"XMem": network.XMem, "InferenceCore": inference_core.InferenceCore}


def random_state_dict(official_xmem: type, seed: int) -> dict[str, torch.Tensor]:
    """A seeded random state dict in the official naming, scaled so the outputs stay informative.

    The official module initialisation (seeded) gives the weights; batch-norm affine parameters
    and running statistics are randomised too, so eval-mode normalisation is exercised. The key
    projection is scaled down so the max-free top-k softmax neither overflows nor underflows, and
    the prediction head so the probabilities are not all saturated at 0 / 1.
    """
    torch.manual_seed(seed)
    net = official_xmem(dict(DIMS)).eval()
    g = torch.Generator().manual_seed(seed + 1)
    state = {}
    for name, tensor in net.state_dict().items():
        t = tensor.clone()
        if name.endswith("running_mean"):
            t = 0.1 * torch.randn(t.shape, generator=g)
        elif name.endswith("running_var"):
            t = 0.5 + torch.rand(t.shape, generator=g)
        elif ".bn" in name or "downsample.1" in name:
            if name.endswith("weight"):
                t = 0.5 + 0.5 * torch.rand(t.shape, generator=g)
            elif name.endswith("bias"):
                t = 0.1 * torch.randn(t.shape, generator=g)
        state[name] = t
    state["key_proj.key_proj.weight"] *= 0.05
    state["key_proj.d_proj.weight"] *= 0.01
    # A random network barely looks at the masks (they are 2 of 5 input channels, and small), so
    # every object would get the same, nearly constant probability and the argmax comparison would
    # only compare ties. Amplify the mask path (mask channels of the value encoder, memory-readout
    # channels of the decoder's fusion block) and the prediction head, and centre its logits
    # (offset measured for the default seed), so that background and objects all win somewhere.
    state["value_encoder.conv1.weight"][:, 3:] *= 50
    for name in ("decoder.fuser.block1.conv1.weight", "decoder.fuser.block1.downsample.weight"):
        state[name][:, 1024 : 1024 + DIMS["value_dim"]] *= 5
    state["decoder.pred.weight"] *= 10
    state["decoder.pred.bias"] += 4.8
    return state


def load_clip(seed: int, frames: int, size: tuple[int, int]) -> tuple[torch.Tensor, np.ndarray]:
    from videoseg.shapes import generate

    scenario = generate(seed, "multi_target", frames=max(frames, 40), size=size)
    rgb = torch.from_numpy(scenario.frames[:frames]).permute(0, 3, 1, 2).float() / 255
    return (rgb - IMAGENET_MEAN) / IMAGENET_STD, scenario.masks[:frames]


def run_core(core: Any, images: torch.Tensor, ids: np.ndarray, cfg: dict[str, Any]) -> list[torch.Tensor]:
    """Feed a clip to an InferenceCore (official or ours) the way the official eval.py does:
    masks hold a channel for every object given so far; ``valid_labels`` names the new ones."""
    return list(steps(core, images, ids, cfg))


def steps(core: Any, images: torch.Tensor, ids: np.ndarray, cfg: dict[str, Any]) -> Iterator[torch.Tensor]:
    """:func:`run_core` one frame at a time (so two cores can be timed in lockstep)."""
    objects: list[int] = cfg["objects"]
    first = {obj: cfg["late"].get(obj, 0) for obj in objects}
    for t in range(len(images)):
        new = [obj for obj in objects if first[obj] == t]
        mask = valid = None
        if new:
            known = [obj for obj in objects if first[obj] <= t]
            labels = list(range(1, len(known) + 1))
            core.set_all_labels(labels)
            # Objects already tracked have an empty channel here (like a YouTube-VOS annotation
            # that marks only new objects); the core keeps its prediction for them.
            mask = torch.stack(
                [torch.from_numpy(ids[t] == obj if obj in new else ids[t] < 0) for obj in known]
            )
            mask = mask.float()
            valid = [labels[known.index(obj)] for obj in new]
            mask = mask.to(images.device)
        with torch.no_grad():
            prob = core.step(images[t], mask, valid, end=(t == len(images) - 1))
        yield prob.detach().float().clone()


def memory_sizes(core: Any) -> tuple[int, int]:
    long_mem = getattr(core.memory, "long_mem", None)
    return core.memory.work_mem.size, 0 if long_mem is None else long_mem.size


def compare(
    name: str, ours: list[torch.Tensor], theirs: list[torch.Tensor], per_frame: bool
) -> tuple[float, int]:
    worst, worst_t, disagree, decisive, pixels = 0.0, 0, 0, 0, 0
    # (the number of classes grows when an object is first given on a later frame)
    counts = torch.zeros(max(b.shape[0] for b in theirs), dtype=torch.long)
    for t, (a, b) in enumerate(zip(ours, theirs)):
        if a.shape != b.shape:
            raise SystemExit(
                f"{name}: frame {t} shapes differ: ours {tuple(a.shape)}, official {tuple(b.shape)}"
            )
        diff = (a - b).abs().max().item()
        differs = a.argmax(0) != b.argmax(0)
        # A pixel whose two most likely classes are within 1e-4 in the official output is a tie
        # that float rounding may break either way; any other disagreement is a real difference.
        top2 = b.topk(2, dim=0).values if b.shape[0] > 1 else None
        clear = (top2[0] - top2[1] > 1e-4) if top2 is not None else torch.ones_like(differs)
        wrong, wrong_clear = int(differs.sum()), int((differs & clear).sum())
        disagree += wrong
        decisive += wrong_clear
        pixels += differs.numel()
        counts[: b.shape[0]] += torch.bincount(b.argmax(0).flatten(), minlength=b.shape[0])
        if diff > worst or np.isnan(diff):
            worst, worst_t = diff, t
        if per_frame:
            print(
                f"    frame {t:2d}: max |diff| {diff:.2e}, argmax pixels differing {wrong} ({wrong_clear} not ties)"
            )
    share = ", ".join(f"{100 * int(n) / pixels:.1f}%" for n in counts)
    print(f"  official argmax classes (background first): {share} of {pixels} pixels")
    print(
        f"  max |ours - official| = {worst:.2e} (frame {worst_t}); argmax pixels differing: {disagree} "
        f"of {pixels}, {decisive} of them not ties (top-2 margin > 1e-4)"
    )
    return worst, decisive


# The official eval.py settings (its argument defaults).
SPEED_SETTINGS: dict[str, Any] = {
    "top_k": 30,
    "enable_long_term": True,
    "enable_long_term_count_usage": True,
    "max_mid_term_frames": 10,
    "min_mid_term_frames": 5,
    "num_prototypes": 128,
    "max_long_term_elements": 10000,
    "mem_every": 5,
    "deep_update_every": -1,
}


def speed(
    official: dict[str, Any],
    state: dict[str, torch.Tensor],
    images: torch.Tensor,
    ids: np.ndarray,
    objects: list[int],
    device: str,
    fp16: bool,
) -> None:
    """Time both cores in lockstep over the clip with the official settings; print the figures."""
    official_net = official["XMem"](dict(DIMS)).eval().to(device)
    official_net.load_state_dict(state, strict=True)
    our_net = XMem().eval().to(device)
    our_net.load_state_dict(state, strict=True)
    # Ours with the opt-in folded batch norms (see XMem.set_folded_batch_norms).
    folded_net = XMem().eval().to(device)
    folded_net.load_state_dict(state, strict=True)
    folded_net.set_folded_batch_norms(True)
    images = images.to(device)
    for count in objects:
        cfg = {"objects": list(range(1, count + 1)), "late": {}}
        cores = {
            "official": official["InferenceCore"](official_net, config={**SPEED_SETTINGS, **DIMS}),
            "ours": InferenceCore(our_net, dict(SPEED_SETTINGS)),
            "ours-folded": InferenceCore(folded_net, dict(SPEED_SETTINGS)),
        }
        runs = {name: steps(core, images, ids, cfg) for name, core in cores.items()}
        times: dict[str, list[float]] = {name: [] for name in runs}
        worst = 0.0
        names = list(runs)
        for t in range(len(images)):
            order = names[t % len(names) :] + names[: t % len(names)]  # who goes first rotates
            probs = {}
            for name in order:
                start = time.perf_counter()
                autocast = (
                    torch.autocast(device_type=device.split(":")[0], dtype=torch.float16) if fp16 else None
                )
                with autocast or contextlib.nullcontext():
                    probs[name] = next(runs[name])
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
            worst = max(worst, (probs["ours"] - probs["official"]).abs().max().item())
        # The first frame (the given mask: no readout) is left out of the medians.
        line = [f"{count} object(s), {len(images)} frames {tuple(images.shape[-2:])[::-1]}:"]
        for name, values in times.items():
            median = statistics.median(values[1:] or values)
            line.append(
                f"{name} {1000 * median:.0f} ms/frame median ({1 / median:.2f} frames/s), total {sum(values):.1f} s;"
            )
        for name in ("ours", "ours-folded"):
            line.append(f"{name} is {sum(times['official']) / sum(times[name]):.2f}x the official speed;")
        line.append(f"max |prob diff| ours vs official {worst:.1e}")
        print(" ".join(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--official", type=Path, required=True, help="folder with the official XMem code")
    parser.add_argument("--frames", type=int, default=None, help="clip length (default 36; 20 with --speed)")
    parser.add_argument(
        "--size", default=None, help="WxH of the synthetic clip (default 381x219; 854x480 with --speed)"
    )
    parser.add_argument("--speed", action="store_true", help="time ours against the official code instead")
    parser.add_argument("--objects", default="1,2", help="with --speed: object counts to time")
    parser.add_argument("--device", default="cpu", help="with --speed: cpu or cuda")
    parser.add_argument("--fp16", action="store_true", help="with --speed on cuda: fp16 autocast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-frame", action="store_true", help="print every frame's difference")
    parser.add_argument(
        "--also-exact-path",
        action="store_true",
        help="also run ours with the speed-ups off (dense readout, per-object fusion convolutions)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frames = args.frames or (20 if args.speed else 36)
    size = args.size or ("854x480" if args.speed else "381x219")
    try:
        width, height = (int(v) for v in size.lower().split("x"))
        objects = [int(v) for v in args.objects.split(",")]
    except ValueError:
        raise SystemExit(
            f"--size WxH and --objects 1,2 expected, got {size!r} and {args.objects!r}"
        ) from None

    official = import_official(args.official.resolve())
    state = random_state_dict(official["XMem"], args.seed)
    if args.speed:
        images, ids = load_clip(args.seed, frames, (width, height))
        print(
            f"XMem speed, ours vs the official code ({args.official}), same weights, {args.device} "
            f"{'fp16' if args.fp16 else 'fp32'}, {torch.get_num_threads()} threads, torch {torch.__version__}"
        )
        speed(official, state, images, ids, objects, args.device, args.fp16)
        return

    official_net = official["XMem"](dict(DIMS)).eval()
    official_net.load_state_dict(state, strict=True)
    our_net = XMem().eval()
    our_net.load_state_dict(state, strict=True)
    images, ids = load_clip(args.seed, frames, (width, height))
    print(
        f"XMem ours vs official: {len(state)} tensors loaded strictly into both; clip {width}x{height}, "
        f"{len(images)} frames (padded to multiples of 16 by each core), CPU fp32, torch {torch.__version__}"
    )

    modes = [("ours", True)] + ([("ours, exact path", False)] if args.also_exact_path else [])
    failures = 0
    for cfg in CONFIGS:
        settings = {**BASE, **cfg.get("settings", {})}
        print(f"\n[{cfg['name']}] {settings}")
        start = time.perf_counter()
        official_core = official["InferenceCore"](official_net, config={**settings, **DIMS})
        theirs = run_core(official_core, images, ids, cfg)
        print(
            f"  official: {time.perf_counter() - start:.1f} s, working / long-term memory at the end "
            f"{memory_sizes(official_core)}"
        )
        for label, fast in modes:
            our_net.set_shared_image_conv(fast)
            start = time.perf_counter()
            our_core = InferenceCore(our_net, {**settings, "fast_readout": fast})
            ours = run_core(our_core, images, ids, cfg)
            print(
                f"  {label}: {time.perf_counter() - start:.1f} s, working / long-term memory at the end "
                f"{memory_sizes(our_core)}, consolidations {our_core.memory.consolidations}"
            )
            worst, disagree = compare(cfg["name"], ours, theirs, args.per_frame)
            if not worst <= 1e-4 or disagree or memory_sizes(our_core) != memory_sizes(official_core):
                failures += 1
                print("  -> DIFFERENT")
            else:
                print("  -> same up to float rounding")
        our_net.set_shared_image_conv(True)
    if failures:
        raise SystemExit(f"{failures} configuration(s) differ from the official implementation")


if __name__ == "__main__":
    main()

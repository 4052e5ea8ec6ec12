"""Speed of our XMem inference core (paper step 3b) on the CPU at 480p, random weights.

Prints ms/frame for:

- ``ours``: the default core (in-place similarity, sparse top-k readout, the image half of the
  fusion convolutions shared by all objects);
- ``official-path``: the same network run the way the official code runs it, written here from
  the official arithmetic: the out-of-place similarity expression, the dense N x HW top-k affinity
  and its dense matmul readout, and the per-object fusion convolutions.

and the largest difference between their probabilities (float rounding only). Usage::

    python bench/bench_xmem.py [--frames 16] [--objects 2] [--height 480] [--width 854]
                               [--mem-every 1] [--threads 2] [--modes ours,official-path]

``--mem-every 1`` (default) fills the working memory within ten frames and consolidates into the
long-term memory from then on, i.e. the steady state of a long video; ``--mem-every 5`` is the
official default cadence (memory grows 5x slower).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from videoseg.propagation.xmem import InferenceCore, XMem
from videoseg.propagation.xmem import memory as xmem_memory


def official_similarity(mk, ms, qk, qe):
    """The official similarity expression, evaluated out of place (five N x HW temporaries)."""
    ck = mk.shape[1]
    mk = mk.flatten(start_dim=2)
    ms = ms.flatten(start_dim=1).unsqueeze(2) if ms is not None else None
    qk = qk.flatten(start_dim=2)
    qe = qe.flatten(start_dim=2) if qe is not None else None
    if qe is not None:
        mk = mk.transpose(1, 2)
        a_sq = mk.pow(2) @ qe
        two_ab = 2 * (mk @ (qk * qe))
        b_sq = (qe * qk.pow(2)).sum(1, keepdim=True)
        similarity = -a_sq + two_ab - b_sq
    else:
        a_sq = mk.pow(2).sum(1).unsqueeze(2)
        similarity = -a_sq + 2 * (mk.transpose(1, 2) @ qk)
    if ms is not None:
        return similarity * ms / math.sqrt(ck)
    return similarity / math.sqrt(ck)


@contextmanager
def official_path(net: XMem):
    """Run the network / memory the official way for the duration of the block."""
    fast_similarity = xmem_memory.get_similarity
    xmem_memory.get_similarity = official_similarity
    net.set_shared_image_conv(False)
    try:
        yield {"fast_readout": False}
    finally:
        xmem_memory.get_similarity = fast_similarity
        net.set_shared_image_conv(True)


@contextmanager
def our_path(net: XMem):
    yield {"fast_readout": True}


def random_net(seed: int = 0) -> XMem:
    torch.manual_seed(seed)
    net = XMem().eval()  # the released widths: 62 M parameters
    with torch.no_grad():
        # keep similarities in the range where the (max-free) top-k softmax does not underflow
        net.key_proj.key_proj.weight.mul_(0.05)
        net.key_proj.d_proj.weight.mul_(0.01)
    return net


def run(net, frames, masks, config, mode):
    context = official_path(net) if mode == "official-path" else our_path(net)
    with context as extra:
        core = InferenceCore(net, {**config, **extra})
        core.set_all_labels(range(1, masks.shape[0] + 1))
        probs, times = [], []
        for t in range(len(frames)):
            start = time.perf_counter()
            prob = core.step(frames[t], masks if t == 0 else None, end=(t == len(frames) - 1))
            times.append(time.perf_counter() - start)
            probs.append(prob)
    long_size = core.memory.long_mem.size if core.memory.long_mem is not None else 0
    return probs, times, core.memory.work_mem.size, long_size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--mem-every", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default="ours,official-path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    net = random_net()
    g = torch.Generator().manual_seed(1)
    frames = torch.randn(args.frames, 3, args.height, args.width, generator=g)
    masks = torch.zeros(args.objects, args.height, args.width)
    for k in range(args.objects):
        top = args.height // 8 + k * args.height // (2 * args.objects)
        masks[k, top : top + args.height // 4, args.width // 8 * (k + 1) : args.width // 8 * (k + 3)] = 1
    config = {"mem_every": args.mem_every}

    print(
        f"XMem core, CPU x{args.threads} threads, {args.width}x{args.height}, {args.objects} object(s), "
        f"{args.frames} frames, mem_every={args.mem_every}, torch {torch.__version__}"
    )
    results = {}
    for mode in args.modes.split(","):
        probs, times, work, long = run(net, frames, masks, config, mode)
        results[mode] = probs
        later = times[1:]
        print(
            f"  {mode:<14} {1000 * sum(later) / len(later):8.0f} ms/frame (frames 1..{len(times) - 1}), "
            f"last frame {1000 * times[-1]:.0f} ms, working memory {work} / long-term {long} elements"
        )
    if "ours" in results and "official-path" in results:
        diff = max((a - b).abs().max().item() for a, b in zip(results["ours"], results["official-path"]))
        print(f"  max |ours - official-path| over all probabilities: {diff:.2e}")


if __name__ == "__main__":
    main()

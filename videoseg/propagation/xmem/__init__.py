"""Our XMem (paper step 3b): loads the official ``XMem.pth`` and reproduces its inference.

- :class:`XMem` / :func:`load_xmem`: the network with the official checkpoint layout;
- :class:`InferenceCore`: one video's propagation loop (working + long-term + sensory memory);
- :class:`XMemPropagator`: the pipeline backend (forward and backward from the keyframe).
"""

from videoseg.propagation.xmem.inference import DEFAULT_CONFIG, InferenceCore, pad_divide_by, unpad
from videoseg.propagation.xmem.memory import KeyValueStore, MemoryManager
from videoseg.propagation.xmem.network import (
    XMEM_URL,
    XMem,
    XMemCheckpointError,
    dims_from_state_dict,
    load_xmem,
)
from videoseg.propagation.xmem.propagator import XMemPropagator

__all__ = [
    "DEFAULT_CONFIG",
    "XMEM_URL",
    "InferenceCore",
    "KeyValueStore",
    "MemoryManager",
    "XMem",
    "XMemCheckpointError",
    "XMemPropagator",
    "dims_from_state_dict",
    "load_xmem",
    "pad_divide_by",
    "unpad",
]

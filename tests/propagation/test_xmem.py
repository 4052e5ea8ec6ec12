"""Tests for our XMem (paper step 3b): checkpoint layout, memory rules, padding, propagation.

Everything runs on small frames and random weights. The network's key projection is scaled down in
``tiny_net`` so that similarities stay in the range where the official top-k softmax (which
exponentiates without subtracting the maximum) does not underflow; the arithmetic is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from videoseg.core.config import PipelineConfig
from videoseg.io.video import ArrayVideo
from videoseg.propagation.stage import both_ways
from videoseg.propagation.xmem import (
    XMEM_URL,
    InferenceCore,
    XMem,
    XMemCheckpointError,
    XMemPropagator,
    dims_from_state_dict,
    load_xmem,
    pad_divide_by,
    unpad,
)
from videoseg.propagation.xmem.inference import long_term_count_usage, resolve_config
from videoseg.propagation.xmem.memory import MemoryManager, topk_softmax
from videoseg.propagation.xmem.modules import FeatureFusionBlock
from videoseg.propagation.xmem.propagator import exclusive_labels, prepare_frame, resized_shape

TINY = {"key_dim": 16, "value_dim": 32, "hidden_dim": 8}
H, W = 64, 96  # -> 4 x 6 = 24 memory elements per frame at stride 16
HW16 = (H // 16) * (W // 16)

# ---------------------------------------------------------------------------------------------------
# The official XMem.pth layout for the default widths (key 64, value 512, hidden 64, multi-object):
# every state-dict entry with its shape ("-" = scalar), written down from the official network:
# ResNet-50 stages 1-3 as key_encoder (stage 1 named res2), ResNet-18 stages 1-3 with a 5-channel stem
# as value_encoder, the fusion blocks / CBAM / GRUs / key projection / decoder of model/modules.py.
OFFICIAL_LAYOUT = """
key_encoder.conv1.weight 64,3,7,7
key_encoder.bn1.weight 64
key_encoder.bn1.bias 64
key_encoder.bn1.running_mean 64
key_encoder.bn1.running_var 64
key_encoder.bn1.num_batches_tracked -
key_encoder.res2.0.conv1.weight 64,64,1,1
key_encoder.res2.0.bn1.weight 64
key_encoder.res2.0.bn1.bias 64
key_encoder.res2.0.bn1.running_mean 64
key_encoder.res2.0.bn1.running_var 64
key_encoder.res2.0.bn1.num_batches_tracked -
key_encoder.res2.0.conv2.weight 64,64,3,3
key_encoder.res2.0.bn2.weight 64
key_encoder.res2.0.bn2.bias 64
key_encoder.res2.0.bn2.running_mean 64
key_encoder.res2.0.bn2.running_var 64
key_encoder.res2.0.bn2.num_batches_tracked -
key_encoder.res2.0.conv3.weight 256,64,1,1
key_encoder.res2.0.bn3.weight 256
key_encoder.res2.0.bn3.bias 256
key_encoder.res2.0.bn3.running_mean 256
key_encoder.res2.0.bn3.running_var 256
key_encoder.res2.0.bn3.num_batches_tracked -
key_encoder.res2.0.downsample.0.weight 256,64,1,1
key_encoder.res2.0.downsample.1.weight 256
key_encoder.res2.0.downsample.1.bias 256
key_encoder.res2.0.downsample.1.running_mean 256
key_encoder.res2.0.downsample.1.running_var 256
key_encoder.res2.0.downsample.1.num_batches_tracked -
key_encoder.res2.1.conv1.weight 64,256,1,1
key_encoder.res2.1.bn1.weight 64
key_encoder.res2.1.bn1.bias 64
key_encoder.res2.1.bn1.running_mean 64
key_encoder.res2.1.bn1.running_var 64
key_encoder.res2.1.bn1.num_batches_tracked -
key_encoder.res2.1.conv2.weight 64,64,3,3
key_encoder.res2.1.bn2.weight 64
key_encoder.res2.1.bn2.bias 64
key_encoder.res2.1.bn2.running_mean 64
key_encoder.res2.1.bn2.running_var 64
key_encoder.res2.1.bn2.num_batches_tracked -
key_encoder.res2.1.conv3.weight 256,64,1,1
key_encoder.res2.1.bn3.weight 256
key_encoder.res2.1.bn3.bias 256
key_encoder.res2.1.bn3.running_mean 256
key_encoder.res2.1.bn3.running_var 256
key_encoder.res2.1.bn3.num_batches_tracked -
key_encoder.res2.2.conv1.weight 64,256,1,1
key_encoder.res2.2.bn1.weight 64
key_encoder.res2.2.bn1.bias 64
key_encoder.res2.2.bn1.running_mean 64
key_encoder.res2.2.bn1.running_var 64
key_encoder.res2.2.bn1.num_batches_tracked -
key_encoder.res2.2.conv2.weight 64,64,3,3
key_encoder.res2.2.bn2.weight 64
key_encoder.res2.2.bn2.bias 64
key_encoder.res2.2.bn2.running_mean 64
key_encoder.res2.2.bn2.running_var 64
key_encoder.res2.2.bn2.num_batches_tracked -
key_encoder.res2.2.conv3.weight 256,64,1,1
key_encoder.res2.2.bn3.weight 256
key_encoder.res2.2.bn3.bias 256
key_encoder.res2.2.bn3.running_mean 256
key_encoder.res2.2.bn3.running_var 256
key_encoder.res2.2.bn3.num_batches_tracked -
key_encoder.layer2.0.conv1.weight 128,256,1,1
key_encoder.layer2.0.bn1.weight 128
key_encoder.layer2.0.bn1.bias 128
key_encoder.layer2.0.bn1.running_mean 128
key_encoder.layer2.0.bn1.running_var 128
key_encoder.layer2.0.bn1.num_batches_tracked -
key_encoder.layer2.0.conv2.weight 128,128,3,3
key_encoder.layer2.0.bn2.weight 128
key_encoder.layer2.0.bn2.bias 128
key_encoder.layer2.0.bn2.running_mean 128
key_encoder.layer2.0.bn2.running_var 128
key_encoder.layer2.0.bn2.num_batches_tracked -
key_encoder.layer2.0.conv3.weight 512,128,1,1
key_encoder.layer2.0.bn3.weight 512
key_encoder.layer2.0.bn3.bias 512
key_encoder.layer2.0.bn3.running_mean 512
key_encoder.layer2.0.bn3.running_var 512
key_encoder.layer2.0.bn3.num_batches_tracked -
key_encoder.layer2.0.downsample.0.weight 512,256,1,1
key_encoder.layer2.0.downsample.1.weight 512
key_encoder.layer2.0.downsample.1.bias 512
key_encoder.layer2.0.downsample.1.running_mean 512
key_encoder.layer2.0.downsample.1.running_var 512
key_encoder.layer2.0.downsample.1.num_batches_tracked -
key_encoder.layer2.1.conv1.weight 128,512,1,1
key_encoder.layer2.1.bn1.weight 128
key_encoder.layer2.1.bn1.bias 128
key_encoder.layer2.1.bn1.running_mean 128
key_encoder.layer2.1.bn1.running_var 128
key_encoder.layer2.1.bn1.num_batches_tracked -
key_encoder.layer2.1.conv2.weight 128,128,3,3
key_encoder.layer2.1.bn2.weight 128
key_encoder.layer2.1.bn2.bias 128
key_encoder.layer2.1.bn2.running_mean 128
key_encoder.layer2.1.bn2.running_var 128
key_encoder.layer2.1.bn2.num_batches_tracked -
key_encoder.layer2.1.conv3.weight 512,128,1,1
key_encoder.layer2.1.bn3.weight 512
key_encoder.layer2.1.bn3.bias 512
key_encoder.layer2.1.bn3.running_mean 512
key_encoder.layer2.1.bn3.running_var 512
key_encoder.layer2.1.bn3.num_batches_tracked -
key_encoder.layer2.2.conv1.weight 128,512,1,1
key_encoder.layer2.2.bn1.weight 128
key_encoder.layer2.2.bn1.bias 128
key_encoder.layer2.2.bn1.running_mean 128
key_encoder.layer2.2.bn1.running_var 128
key_encoder.layer2.2.bn1.num_batches_tracked -
key_encoder.layer2.2.conv2.weight 128,128,3,3
key_encoder.layer2.2.bn2.weight 128
key_encoder.layer2.2.bn2.bias 128
key_encoder.layer2.2.bn2.running_mean 128
key_encoder.layer2.2.bn2.running_var 128
key_encoder.layer2.2.bn2.num_batches_tracked -
key_encoder.layer2.2.conv3.weight 512,128,1,1
key_encoder.layer2.2.bn3.weight 512
key_encoder.layer2.2.bn3.bias 512
key_encoder.layer2.2.bn3.running_mean 512
key_encoder.layer2.2.bn3.running_var 512
key_encoder.layer2.2.bn3.num_batches_tracked -
key_encoder.layer2.3.conv1.weight 128,512,1,1
key_encoder.layer2.3.bn1.weight 128
key_encoder.layer2.3.bn1.bias 128
key_encoder.layer2.3.bn1.running_mean 128
key_encoder.layer2.3.bn1.running_var 128
key_encoder.layer2.3.bn1.num_batches_tracked -
key_encoder.layer2.3.conv2.weight 128,128,3,3
key_encoder.layer2.3.bn2.weight 128
key_encoder.layer2.3.bn2.bias 128
key_encoder.layer2.3.bn2.running_mean 128
key_encoder.layer2.3.bn2.running_var 128
key_encoder.layer2.3.bn2.num_batches_tracked -
key_encoder.layer2.3.conv3.weight 512,128,1,1
key_encoder.layer2.3.bn3.weight 512
key_encoder.layer2.3.bn3.bias 512
key_encoder.layer2.3.bn3.running_mean 512
key_encoder.layer2.3.bn3.running_var 512
key_encoder.layer2.3.bn3.num_batches_tracked -
key_encoder.layer3.0.conv1.weight 256,512,1,1
key_encoder.layer3.0.bn1.weight 256
key_encoder.layer3.0.bn1.bias 256
key_encoder.layer3.0.bn1.running_mean 256
key_encoder.layer3.0.bn1.running_var 256
key_encoder.layer3.0.bn1.num_batches_tracked -
key_encoder.layer3.0.conv2.weight 256,256,3,3
key_encoder.layer3.0.bn2.weight 256
key_encoder.layer3.0.bn2.bias 256
key_encoder.layer3.0.bn2.running_mean 256
key_encoder.layer3.0.bn2.running_var 256
key_encoder.layer3.0.bn2.num_batches_tracked -
key_encoder.layer3.0.conv3.weight 1024,256,1,1
key_encoder.layer3.0.bn3.weight 1024
key_encoder.layer3.0.bn3.bias 1024
key_encoder.layer3.0.bn3.running_mean 1024
key_encoder.layer3.0.bn3.running_var 1024
key_encoder.layer3.0.bn3.num_batches_tracked -
key_encoder.layer3.0.downsample.0.weight 1024,512,1,1
key_encoder.layer3.0.downsample.1.weight 1024
key_encoder.layer3.0.downsample.1.bias 1024
key_encoder.layer3.0.downsample.1.running_mean 1024
key_encoder.layer3.0.downsample.1.running_var 1024
key_encoder.layer3.0.downsample.1.num_batches_tracked -
key_encoder.layer3.1.conv1.weight 256,1024,1,1
key_encoder.layer3.1.bn1.weight 256
key_encoder.layer3.1.bn1.bias 256
key_encoder.layer3.1.bn1.running_mean 256
key_encoder.layer3.1.bn1.running_var 256
key_encoder.layer3.1.bn1.num_batches_tracked -
key_encoder.layer3.1.conv2.weight 256,256,3,3
key_encoder.layer3.1.bn2.weight 256
key_encoder.layer3.1.bn2.bias 256
key_encoder.layer3.1.bn2.running_mean 256
key_encoder.layer3.1.bn2.running_var 256
key_encoder.layer3.1.bn2.num_batches_tracked -
key_encoder.layer3.1.conv3.weight 1024,256,1,1
key_encoder.layer3.1.bn3.weight 1024
key_encoder.layer3.1.bn3.bias 1024
key_encoder.layer3.1.bn3.running_mean 1024
key_encoder.layer3.1.bn3.running_var 1024
key_encoder.layer3.1.bn3.num_batches_tracked -
key_encoder.layer3.2.conv1.weight 256,1024,1,1
key_encoder.layer3.2.bn1.weight 256
key_encoder.layer3.2.bn1.bias 256
key_encoder.layer3.2.bn1.running_mean 256
key_encoder.layer3.2.bn1.running_var 256
key_encoder.layer3.2.bn1.num_batches_tracked -
key_encoder.layer3.2.conv2.weight 256,256,3,3
key_encoder.layer3.2.bn2.weight 256
key_encoder.layer3.2.bn2.bias 256
key_encoder.layer3.2.bn2.running_mean 256
key_encoder.layer3.2.bn2.running_var 256
key_encoder.layer3.2.bn2.num_batches_tracked -
key_encoder.layer3.2.conv3.weight 1024,256,1,1
key_encoder.layer3.2.bn3.weight 1024
key_encoder.layer3.2.bn3.bias 1024
key_encoder.layer3.2.bn3.running_mean 1024
key_encoder.layer3.2.bn3.running_var 1024
key_encoder.layer3.2.bn3.num_batches_tracked -
key_encoder.layer3.3.conv1.weight 256,1024,1,1
key_encoder.layer3.3.bn1.weight 256
key_encoder.layer3.3.bn1.bias 256
key_encoder.layer3.3.bn1.running_mean 256
key_encoder.layer3.3.bn1.running_var 256
key_encoder.layer3.3.bn1.num_batches_tracked -
key_encoder.layer3.3.conv2.weight 256,256,3,3
key_encoder.layer3.3.bn2.weight 256
key_encoder.layer3.3.bn2.bias 256
key_encoder.layer3.3.bn2.running_mean 256
key_encoder.layer3.3.bn2.running_var 256
key_encoder.layer3.3.bn2.num_batches_tracked -
key_encoder.layer3.3.conv3.weight 1024,256,1,1
key_encoder.layer3.3.bn3.weight 1024
key_encoder.layer3.3.bn3.bias 1024
key_encoder.layer3.3.bn3.running_mean 1024
key_encoder.layer3.3.bn3.running_var 1024
key_encoder.layer3.3.bn3.num_batches_tracked -
key_encoder.layer3.4.conv1.weight 256,1024,1,1
key_encoder.layer3.4.bn1.weight 256
key_encoder.layer3.4.bn1.bias 256
key_encoder.layer3.4.bn1.running_mean 256
key_encoder.layer3.4.bn1.running_var 256
key_encoder.layer3.4.bn1.num_batches_tracked -
key_encoder.layer3.4.conv2.weight 256,256,3,3
key_encoder.layer3.4.bn2.weight 256
key_encoder.layer3.4.bn2.bias 256
key_encoder.layer3.4.bn2.running_mean 256
key_encoder.layer3.4.bn2.running_var 256
key_encoder.layer3.4.bn2.num_batches_tracked -
key_encoder.layer3.4.conv3.weight 1024,256,1,1
key_encoder.layer3.4.bn3.weight 1024
key_encoder.layer3.4.bn3.bias 1024
key_encoder.layer3.4.bn3.running_mean 1024
key_encoder.layer3.4.bn3.running_var 1024
key_encoder.layer3.4.bn3.num_batches_tracked -
key_encoder.layer3.5.conv1.weight 256,1024,1,1
key_encoder.layer3.5.bn1.weight 256
key_encoder.layer3.5.bn1.bias 256
key_encoder.layer3.5.bn1.running_mean 256
key_encoder.layer3.5.bn1.running_var 256
key_encoder.layer3.5.bn1.num_batches_tracked -
key_encoder.layer3.5.conv2.weight 256,256,3,3
key_encoder.layer3.5.bn2.weight 256
key_encoder.layer3.5.bn2.bias 256
key_encoder.layer3.5.bn2.running_mean 256
key_encoder.layer3.5.bn2.running_var 256
key_encoder.layer3.5.bn2.num_batches_tracked -
key_encoder.layer3.5.conv3.weight 1024,256,1,1
key_encoder.layer3.5.bn3.weight 1024
key_encoder.layer3.5.bn3.bias 1024
key_encoder.layer3.5.bn3.running_mean 1024
key_encoder.layer3.5.bn3.running_var 1024
key_encoder.layer3.5.bn3.num_batches_tracked -
value_encoder.conv1.weight 64,5,7,7
value_encoder.bn1.weight 64
value_encoder.bn1.bias 64
value_encoder.bn1.running_mean 64
value_encoder.bn1.running_var 64
value_encoder.bn1.num_batches_tracked -
value_encoder.layer1.0.conv1.weight 64,64,3,3
value_encoder.layer1.0.bn1.weight 64
value_encoder.layer1.0.bn1.bias 64
value_encoder.layer1.0.bn1.running_mean 64
value_encoder.layer1.0.bn1.running_var 64
value_encoder.layer1.0.bn1.num_batches_tracked -
value_encoder.layer1.0.conv2.weight 64,64,3,3
value_encoder.layer1.0.bn2.weight 64
value_encoder.layer1.0.bn2.bias 64
value_encoder.layer1.0.bn2.running_mean 64
value_encoder.layer1.0.bn2.running_var 64
value_encoder.layer1.0.bn2.num_batches_tracked -
value_encoder.layer1.1.conv1.weight 64,64,3,3
value_encoder.layer1.1.bn1.weight 64
value_encoder.layer1.1.bn1.bias 64
value_encoder.layer1.1.bn1.running_mean 64
value_encoder.layer1.1.bn1.running_var 64
value_encoder.layer1.1.bn1.num_batches_tracked -
value_encoder.layer1.1.conv2.weight 64,64,3,3
value_encoder.layer1.1.bn2.weight 64
value_encoder.layer1.1.bn2.bias 64
value_encoder.layer1.1.bn2.running_mean 64
value_encoder.layer1.1.bn2.running_var 64
value_encoder.layer1.1.bn2.num_batches_tracked -
value_encoder.layer2.0.conv1.weight 128,64,3,3
value_encoder.layer2.0.bn1.weight 128
value_encoder.layer2.0.bn1.bias 128
value_encoder.layer2.0.bn1.running_mean 128
value_encoder.layer2.0.bn1.running_var 128
value_encoder.layer2.0.bn1.num_batches_tracked -
value_encoder.layer2.0.conv2.weight 128,128,3,3
value_encoder.layer2.0.bn2.weight 128
value_encoder.layer2.0.bn2.bias 128
value_encoder.layer2.0.bn2.running_mean 128
value_encoder.layer2.0.bn2.running_var 128
value_encoder.layer2.0.bn2.num_batches_tracked -
value_encoder.layer2.0.downsample.0.weight 128,64,1,1
value_encoder.layer2.0.downsample.1.weight 128
value_encoder.layer2.0.downsample.1.bias 128
value_encoder.layer2.0.downsample.1.running_mean 128
value_encoder.layer2.0.downsample.1.running_var 128
value_encoder.layer2.0.downsample.1.num_batches_tracked -
value_encoder.layer2.1.conv1.weight 128,128,3,3
value_encoder.layer2.1.bn1.weight 128
value_encoder.layer2.1.bn1.bias 128
value_encoder.layer2.1.bn1.running_mean 128
value_encoder.layer2.1.bn1.running_var 128
value_encoder.layer2.1.bn1.num_batches_tracked -
value_encoder.layer2.1.conv2.weight 128,128,3,3
value_encoder.layer2.1.bn2.weight 128
value_encoder.layer2.1.bn2.bias 128
value_encoder.layer2.1.bn2.running_mean 128
value_encoder.layer2.1.bn2.running_var 128
value_encoder.layer2.1.bn2.num_batches_tracked -
value_encoder.layer3.0.conv1.weight 256,128,3,3
value_encoder.layer3.0.bn1.weight 256
value_encoder.layer3.0.bn1.bias 256
value_encoder.layer3.0.bn1.running_mean 256
value_encoder.layer3.0.bn1.running_var 256
value_encoder.layer3.0.bn1.num_batches_tracked -
value_encoder.layer3.0.conv2.weight 256,256,3,3
value_encoder.layer3.0.bn2.weight 256
value_encoder.layer3.0.bn2.bias 256
value_encoder.layer3.0.bn2.running_mean 256
value_encoder.layer3.0.bn2.running_var 256
value_encoder.layer3.0.bn2.num_batches_tracked -
value_encoder.layer3.0.downsample.0.weight 256,128,1,1
value_encoder.layer3.0.downsample.1.weight 256
value_encoder.layer3.0.downsample.1.bias 256
value_encoder.layer3.0.downsample.1.running_mean 256
value_encoder.layer3.0.downsample.1.running_var 256
value_encoder.layer3.0.downsample.1.num_batches_tracked -
value_encoder.layer3.1.conv1.weight 256,256,3,3
value_encoder.layer3.1.bn1.weight 256
value_encoder.layer3.1.bn1.bias 256
value_encoder.layer3.1.bn1.running_mean 256
value_encoder.layer3.1.bn1.running_var 256
value_encoder.layer3.1.bn1.num_batches_tracked -
value_encoder.layer3.1.conv2.weight 256,256,3,3
value_encoder.layer3.1.bn2.weight 256
value_encoder.layer3.1.bn2.bias 256
value_encoder.layer3.1.bn2.running_mean 256
value_encoder.layer3.1.bn2.running_var 256
value_encoder.layer3.1.bn2.num_batches_tracked -
value_encoder.fuser.block1.downsample.weight 512,1280,3,3
value_encoder.fuser.block1.downsample.bias 512
value_encoder.fuser.block1.conv1.weight 512,1280,3,3
value_encoder.fuser.block1.conv1.bias 512
value_encoder.fuser.block1.conv2.weight 512,512,3,3
value_encoder.fuser.block1.conv2.bias 512
value_encoder.fuser.attention.ChannelGate.mlp.1.weight 32,512
value_encoder.fuser.attention.ChannelGate.mlp.1.bias 32
value_encoder.fuser.attention.ChannelGate.mlp.3.weight 512,32
value_encoder.fuser.attention.ChannelGate.mlp.3.bias 512
value_encoder.fuser.attention.SpatialGate.spatial.conv.weight 1,2,7,7
value_encoder.fuser.attention.SpatialGate.spatial.conv.bias 1
value_encoder.fuser.block2.conv1.weight 512,512,3,3
value_encoder.fuser.block2.conv1.bias 512
value_encoder.fuser.block2.conv2.weight 512,512,3,3
value_encoder.fuser.block2.conv2.bias 512
value_encoder.hidden_reinforce.transform.weight 192,576,3,3
value_encoder.hidden_reinforce.transform.bias 192
key_proj.key_proj.weight 64,1024,3,3
key_proj.key_proj.bias 64
key_proj.d_proj.weight 1,1024,3,3
key_proj.d_proj.bias 1
key_proj.e_proj.weight 64,1024,3,3
key_proj.e_proj.bias 64
decoder.fuser.block1.downsample.weight 512,1600,3,3
decoder.fuser.block1.downsample.bias 512
decoder.fuser.block1.conv1.weight 512,1600,3,3
decoder.fuser.block1.conv1.bias 512
decoder.fuser.block1.conv2.weight 512,512,3,3
decoder.fuser.block1.conv2.bias 512
decoder.fuser.attention.ChannelGate.mlp.1.weight 32,512
decoder.fuser.attention.ChannelGate.mlp.1.bias 32
decoder.fuser.attention.ChannelGate.mlp.3.weight 512,32
decoder.fuser.attention.ChannelGate.mlp.3.bias 512
decoder.fuser.attention.SpatialGate.spatial.conv.weight 1,2,7,7
decoder.fuser.attention.SpatialGate.spatial.conv.bias 1
decoder.fuser.block2.conv1.weight 512,512,3,3
decoder.fuser.block2.conv1.bias 512
decoder.fuser.block2.conv2.weight 512,512,3,3
decoder.fuser.block2.conv2.bias 512
decoder.hidden_update.g16_conv.weight 256,512,1,1
decoder.hidden_update.g16_conv.bias 256
decoder.hidden_update.g8_conv.weight 256,256,1,1
decoder.hidden_update.g8_conv.bias 256
decoder.hidden_update.g4_conv.weight 256,257,1,1
decoder.hidden_update.g4_conv.bias 256
decoder.hidden_update.transform.weight 192,320,3,3
decoder.hidden_update.transform.bias 192
decoder.up_16_8.skip_conv.weight 512,512,3,3
decoder.up_16_8.skip_conv.bias 512
decoder.up_16_8.out_conv.downsample.weight 256,512,3,3
decoder.up_16_8.out_conv.downsample.bias 256
decoder.up_16_8.out_conv.conv1.weight 256,512,3,3
decoder.up_16_8.out_conv.conv1.bias 256
decoder.up_16_8.out_conv.conv2.weight 256,256,3,3
decoder.up_16_8.out_conv.conv2.bias 256
decoder.up_8_4.skip_conv.weight 256,256,3,3
decoder.up_8_4.skip_conv.bias 256
decoder.up_8_4.out_conv.conv1.weight 256,256,3,3
decoder.up_8_4.out_conv.conv1.bias 256
decoder.up_8_4.out_conv.conv2.weight 256,256,3,3
decoder.up_8_4.out_conv.conv2.bias 256
decoder.pred.weight 1,256,3,3
decoder.pred.bias 1
"""


def _layout() -> dict[str, tuple[int, ...]]:
    table = {}
    for line in OFFICIAL_LAYOUT.strip().splitlines():
        name, shape = line.split()
        table[name] = () if shape == "-" else tuple(int(s) for s in shape.split(","))
    return table


def tiny_net(seed: int = 0, **dims: int) -> XMem:
    torch.manual_seed(seed)
    net = XMem({**TINY, **dims}).eval()
    with torch.no_grad():
        net.key_proj.key_proj.weight.mul_(0.05)
        net.key_proj.d_proj.weight.mul_(0.01)
    return net


def frames_and_masks(n: int = 10, seed: int = 1, h: int = H, w: int = W) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(n, 3, h, w, generator=g)
    masks = torch.zeros(2, h, w)
    masks[0, 5 : h // 2, 5 : w // 2] = 1
    masks[1, h // 2 + 2 : h - 4, w // 2 + 3 : w - 6] = 1
    return frames, masks


def small_config(**over: object) -> dict[str, object]:
    cfg: dict[str, object] = {
        "top_k": 10,
        "mem_every": 2,
        "deep_update_every": -1,
        "enable_long_term": True,
        "enable_long_term_count_usage": True,
        "max_mid_term_frames": 4,
        "min_mid_term_frames": 2,
        "max_long_term_elements": 200,
        "num_prototypes": 8,
    }
    cfg.update(over)
    return cfg


def run_core(
    net: XMem, frames: torch.Tensor, masks: torch.Tensor, cfg: dict, objects: int = 2
) -> list[torch.Tensor]:
    core = InferenceCore(net, cfg)
    core.set_all_labels(range(1, objects + 1))
    out = []
    for t in range(len(frames)):
        out.append(core.step(frames[t], masks[:objects] if t == 0 else None, end=(t == len(frames) - 1)))
    return out


# ------------------------------------------------------------------------------- checkpoint layout


@pytest.fixture(scope="module")
def release_net() -> XMem:
    """The released widths (62 M parameters), built once for the module."""
    return tiny_net(seed=3, key_dim=64, value_dim=512, hidden_dim=64)


def test_default_network_has_the_official_checkpoint_layout(release_net: XMem):
    assert XMem().dims == release_net.dims  # the defaults are the release's widths
    expected = _layout()
    ours = {name: tuple(t.shape) for name, t in release_net.state_dict().items()}
    assert len(expected) == 412
    assert sorted(set(expected) - set(ours)) == []  # nothing official is missing
    assert sorted(set(ours) - set(expected)) == []  # and nothing extra
    assert {n: s for n, s in ours.items() if expected[n] != s} == {}


def test_saved_state_dict_reloads_strictly_through_load_xmem(release_net: XMem, tmp_path: Path):
    net = release_net
    path = tmp_path / "XMem.pth"
    torch.save(net.state_dict(), path)
    loaded = load_xmem(path)
    assert not loaded.training
    assert loaded.dims == {"key_dim": 64, "value_dim": 512, "hidden_dim": 64, "single_object": False}
    ref = net.state_dict()
    for name, tensor in loaded.state_dict().items():
        assert torch.equal(tensor, ref[name]), name
    # A checkpoint without BatchNorm step counters loads too (BatchNorm fills them in).
    slim = {k: v for k, v in XMem(TINY).state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(slim, path)
    assert load_xmem(path).dims == {**TINY, "single_object": False}


@pytest.mark.parametrize(
    "dims",
    [
        {"key_dim": 64, "value_dim": 512, "hidden_dim": 64},  # the release
        {"key_dim": 16, "value_dim": 32, "hidden_dim": 8},
        {"key_dim": 8, "value_dim": 24, "hidden_dim": 0},  # no sensory memory
    ],
)
def test_dims_are_read_from_the_weights(dims: dict[str, int]):
    net = XMem(dims)
    state = net.state_dict()
    assert dims_from_state_dict(state) == {**dims, "single_object": False}
    assert ("decoder.hidden_update.transform.weight" in state) == (dims["hidden_dim"] > 0)
    # widths come from the weights, whatever the config says
    assert XMem.from_state_dict(state, {"key_dim": 3, "value_dim": 5, "hidden_dim": 7}).dims == net.dims


def test_single_object_checkpoint_gets_a_zero_other_objects_channel():
    state = XMem(TINY).state_dict()
    state["value_encoder.conv1.weight"] = state["value_encoder.conv1.weight"][:, :4].clone()
    assert dims_from_state_dict(state)["single_object"] is True
    net = XMem.from_state_dict(state)
    conv1 = net.value_encoder.conv1.weight
    assert conv1.shape[1] == 5
    assert torch.equal(conv1[:, :4], state["value_encoder.conv1.weight"])
    assert torch.count_nonzero(conv1[:, 4]) == 0


def test_missing_checkpoint_names_the_download_url(tmp_path: Path):
    with pytest.raises(XMemCheckpointError) as info:
        load_xmem(tmp_path / "nowhere" / "XMem.pth")
    assert isinstance(info.value, FileNotFoundError)
    assert XMEM_URL in str(info.value) and "nowhere" in str(info.value)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not a checkpoint", "could not read"),
        ({"decoder.pred.weight": torch.zeros(1, 256, 3, 3)}, "not an XMem checkpoint"),
        ([1, 2, 3], "not an XMem state dict"),
    ],
)
def test_bad_checkpoint_files_give_clear_errors(tmp_path: Path, content: object, message: str):
    path = tmp_path / "bad.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ValueError, match=message):
        load_xmem(path)


def test_wrong_shaped_checkpoint_is_a_value_error(tmp_path: Path):
    state = XMem(TINY).state_dict()
    state["decoder.pred.weight"] = torch.zeros(2, 256, 3, 3)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="does not match"):
        load_xmem(tmp_path / "w.pth")


def test_default_dims_run_one_propagation_step(release_net: XMem):
    net = release_net
    frames, masks = frames_and_masks(n=2, h=32, w=48)
    probs = run_core(net, frames, masks, small_config(top_k=4))
    assert [tuple(p.shape) for p in probs] == [(3, 32, 48), (3, 32, 48)]
    assert torch.allclose(probs[1].sum(0), torch.ones(32, 48), atol=1e-5)


# ------------------------------------------------------------------------------- padding


@pytest.mark.parametrize(
    "h, w, pad",
    [
        (64, 96, (0, 0, 0, 0)),  # already multiples of 16
        (65, 97, (7, 8, 7, 8)),  # odd padding: the extra pixel goes right / bottom
        (50, 30, (1, 1, 7, 7)),
        (16, 17, (7, 8, 0, 0)),
    ],
)
def test_pad_divide_by_centres_and_unpad_restores(h: int, w: int, pad: tuple[int, int, int, int]):
    x = torch.rand(3, h, w) + 1
    padded, got = pad_divide_by(x, 16)
    assert got == pad
    assert padded.shape[-2] % 16 == 0 and padded.shape[-1] % 16 == 0
    left, right, top, bottom = pad
    assert padded.shape[-2:] == (h + top + bottom, w + left + right)
    assert torch.equal(padded[:, top : top + h, left : left + w], x)
    assert torch.count_nonzero(padded) == x.numel()  # zeros elsewhere
    assert torch.equal(unpad(padded, got), x)
    assert torch.equal(unpad(padded[None], got)[0], x)


def test_step_returns_probabilities_at_the_unpadded_size():
    net = tiny_net()
    frames, masks = frames_and_masks(n=3, h=50, w=70)
    for prob in run_core(net, frames, masks, small_config(top_k=5)):
        assert prob.shape == (3, 50, 70)
        assert torch.allclose(prob.sum(0), torch.ones(50, 70), atol=1e-5)
        assert not torch.isnan(prob).any()


# ------------------------------------------------------------------------------- memory rules


def test_mem_every_cadence_and_last_frame_not_memorised():
    net = tiny_net()
    frames, masks = frames_and_masks(n=8)
    core = InferenceCore(net, small_config(mem_every=3, enable_long_term=False))
    core.set_all_labels([1, 2])
    sizes = []
    for t in range(8):
        core.step(frames[t], masks if t == 0 else None, end=(t == 7))
        sizes.append(core.memory.work_mem.size // HW16)
    # memory frames: 0 (mask), 3, 6; frame 7 is the end
    assert sizes == [1, 1, 1, 2, 2, 2, 3, 3]


def test_consolidation_moves_working_memory_into_prototypes():
    net = tiny_net()
    frames, masks = frames_and_masks(n=14)
    core = InferenceCore(net, small_config(mem_every=1, max_mid_term_frames=4, min_mid_term_frames=2))
    core.set_all_labels([1, 2])
    work, long = [], []
    for t in range(14):
        core.step(frames[t], masks if t == 0 else None)
        work.append(core.memory.work_mem.size // HW16)
        long.append(core.memory.long_mem.size)
    # working memory fills to max_mid_term_frames (4), then keeps min_mid_term_frames (2):
    # the first frame + the newest one; every consolidation adds num_prototypes (8) elements
    assert work == [1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2]
    assert long == [0, 0, 0, 8, 8, 16, 16, 24, 24, 32, 32, 40, 40, 48]
    assert core.memory.consolidations == 6
    # long-term values exist for both objects and match the keys
    assert [tuple(v.shape) for v in core.memory.long_mem.values] == [(2, 32, 48)]
    assert core.memory.long_mem.shrinkage.shape == (1, 1, 48)


def test_usage_counting_sums_to_one_per_query():
    net = tiny_net()
    frames, masks = frames_and_masks(n=3)
    core = InferenceCore(net, small_config(mem_every=5))
    core.set_all_labels([1, 2])
    core.step(frames[0], masks)
    work = core.memory.work_mem
    assert torch.count_nonzero(work.use_count) == 0
    core.step(frames[1])
    # each of the HW16 queries spreads an affinity of 1 over its top-k memory elements
    assert work.use_count.sum().item() == pytest.approx(HW16, rel=1e-5)
    assert torch.allclose(work.life_count, torch.full_like(work.life_count, 1 + 1e-7))
    assert int((work.use_count > 0).sum()) <= HW16 * 10
    core.step(frames[2])
    assert work.use_count.sum().item() == pytest.approx(2 * HW16, rel=1e-5)
    assert torch.allclose(work.get_usage(), work.use_count / work.life_count)


def test_long_term_usage_is_counted_and_memory_is_capped():
    net = tiny_net()
    frames, masks = frames_and_masks(n=16)
    cfg = small_config(mem_every=1, max_long_term_elements=20, num_prototypes=8)
    core = InferenceCore(net, cfg)
    core.set_all_labels([1, 2])
    sizes = []
    for t in range(16):
        core.step(frames[t], masks if t == 0 else None)
        sizes.append(core.memory.long_mem.size)
    assert max(sizes) <= 20
    assert sizes[-1] > 8  # obsolete elements were dropped, new prototypes kept coming
    assert core.memory.consolidations == 7
    long_mem = core.memory.long_mem
    assert long_mem.use_count.shape == (1, 1, long_mem.size)
    assert long_mem.life_count.max() >= 1  # long-term elements were read and aged
    assert long_mem.values[0].shape[-1] == long_mem.size


def test_long_term_usage_rule_of_eval_py():
    cfg = {
        "max_mid_term_frames": 10,
        "min_mid_term_frames": 5,
        "num_prototypes": 128,
        "max_long_term_elements": 10000,
    }
    # 10000 / 128 * 5 = 390.6 frames
    assert long_term_count_usage({**cfg, "enable_long_term": True}, 391)
    assert not long_term_count_usage({**cfg, "enable_long_term": True}, 390)
    assert not long_term_count_usage({**cfg, "enable_long_term": False}, 10**6)
    # equal mid-term sizes: no ZeroDivisionError here, the core config check reports it instead
    equal = {**cfg, "enable_long_term": True, "max_mid_term_frames": 5}
    assert not long_term_count_usage(equal, 1000)
    with pytest.raises(ValueError, match="min_mid_term_frames"):
        resolve_config(equal, hidden_dim=8)


def test_object_added_on_a_later_frame_gets_its_own_channel_and_group():
    net = tiny_net()
    frames, masks = frames_and_masks(n=10)
    cfg = small_config(mem_every=1, max_mid_term_frames=5, min_mid_term_frames=2)

    def run(first_channel_of_late_mask: float, valid: list[int] | None) -> list[torch.Tensor]:
        core = InferenceCore(net, cfg)
        core.set_all_labels([1])
        out = [core.step(frames[0], masks[:1])]
        for t in range(1, 10):
            if t == 3:
                late = masks.clone()
                late[0] = first_channel_of_late_mask  # ignored for object 1 when valid_labels == [2]
                core.set_all_labels([1, 2])
                out.append(core.step(frames[t], late, valid_labels=valid))
                assert core.memory.work_mem.num_groups == 2
                assert core.memory.work_mem.value_size(1) == HW16
                assert core.memory.hidden.shape[1] == 2
            else:
                out.append(core.step(frames[t]))
        assert core.memory.consolidations >= 1
        return out

    a = run(0.0, [2])
    assert [p.shape[0] for p in a] == [2, 2, 2, 3, 3, 3, 3, 3, 3, 3]
    assert not any(torch.isnan(p).any() for p in a)
    # the un-annotated object 1 keeps its own prediction, whatever the mask says for it
    b = run(0.3, [2])
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    # ... whereas without valid_labels the mask replaces it
    c = run(0.3, None)
    assert not torch.allclose(a[3], c[3])


def test_late_object_with_long_term_removal_is_reported():
    net = tiny_net()
    frames, masks = frames_and_masks(n=12)
    core = InferenceCore(net, small_config(mem_every=1, max_long_term_elements=20))
    core.set_all_labels([1])
    core.step(frames[0], masks[:1])
    core.set_all_labels([1, 2])
    core.step(frames[1], masks, valid_labels=[2])
    with pytest.raises(NotImplementedError, match="max_long_term_elements"):
        for t in range(2, 12):
            core.step(frames[t])


def test_sparse_readout_matches_the_dense_official_readout():
    net = tiny_net()
    frames, masks = frames_and_masks(n=12)
    cfg = small_config(mem_every=1, max_long_term_elements=30)
    fast = run_core(net, frames, masks, {**cfg, "fast_readout": True})
    dense = run_core(net, frames, masks, {**cfg, "fast_readout": False})
    assert max((a - b).abs().max().item() for a, b in zip(fast, dense)) < 1e-5


def test_usage_is_summed_from_the_dense_affinity_in_its_own_dtype():
    # official inference/memory_manager.py match_memory + model/memory_util.py do_softmax: usage is
    # affinity.sum(dim=2) of the dense top-k affinity, in the similarity's dtype (fp16 under CUDA
    # autocast), so a half-precision usage is rounded to half before it is added to use_count.
    g = torch.Generator().manual_seed(0)
    similarity = torch.randn(1, 60, 40, generator=g)
    manager = MemoryManager({**small_config(), "hidden_dim": 8, "fast_readout": True})
    for dtype in (torch.float16, torch.float32):
        sim = similarity.to(dtype)
        values, indices = torch.topk(sim, k=7, dim=1)
        weights = values.exp()
        weights = weights / weights.sum(dim=1, keepdim=True)
        official = torch.zeros_like(sim).scatter_(1, indices, weights).sum(dim=2).flatten()
        usage = manager._usage_of(topk_softmax(sim, 7))
        assert usage.dtype == dtype and torch.equal(usage, official)


@pytest.mark.parametrize(
    "n, hw, k, chunk",
    [
        (672, 336, 30, 1 << 20),
        (672, 336, 30, 1000),
        (700, 37, 8, 64),
        (3000, 24, 10, 1),
        (50, 400, 50, 1 << 20),
    ],
)
def test_usage_has_the_official_bits_so_ties_rank_the_same(n: int, hw: int, k: int, chunk: int):
    # Regression (found by bench/compare_xmem_official.py against the official code): the usage
    # ranks memory elements for consolidation and removal, and elements with equal keys tie. A
    # float32 index_add in query order differs from the official dense affinity.sum(dim=2) in the
    # last bits (353 of 672 elements here), which picked other prototypes from the second
    # consolidation on and moved probabilities by up to 0.2. The usage must be the official bits.
    g = torch.Generator().manual_seed(n + hw)
    sim = torch.randn(1, n, hw, generator=g)
    sim[:, ::5] = sim[:, 2:3]  # many elements with the same key: exact ties
    values, indices = torch.topk(sim, k=k, dim=1)
    weights = values.exp()
    weights = weights / weights.sum(dim=1, keepdim=True)
    official = torch.zeros_like(sim).scatter_(1, indices, weights).sum(dim=2).flatten()

    affinity = topk_softmax(sim, k)
    assert torch.equal(affinity.row_sums(chunk), official)
    manager = MemoryManager({**small_config(), "hidden_dim": 8, "fast_readout": True})
    usage = manager._usage_of(affinity)
    assert torch.equal(usage, official)
    picks = min(48, n)
    assert torch.equal(torch.topk(usage, picks).indices, torch.topk(official, picks).indices)


def test_fast_and_exact_paths_build_the_same_memories_bit_for_bit():
    # Keys, shrinkage, selection and the top-k affinities depend on the images only, so with the
    # official usage bits the fast path (sparse readout) must consolidate and drop exactly the same
    # memory elements as the dense official path; only the values differ by float rounding.
    net = tiny_net()
    frames, masks = frames_and_masks(n=16, h=56, w=90)  # padded to 64 x 96
    frames[:, :, 20:, :40] = 0.3  # a flat region: equal keys, tied usage
    cfg = small_config(mem_every=1, max_long_term_elements=30, num_prototypes=8)
    memories = []
    for fast in (True, False):
        core = InferenceCore(net, {**cfg, "fast_readout": fast})
        core.set_all_labels([1, 2])
        for t in range(len(frames)):
            core.step(frames[t], masks[:, :56, :90] if t == 0 else None)
        memories.append(core.memory)
    fast_mem, exact_mem = memories
    assert fast_mem.consolidations == exact_mem.consolidations == 7
    for store in ("work_mem", "long_mem"):
        a, b = getattr(fast_mem, store), getattr(exact_mem, store)
        assert torch.equal(a.key, b.key) and torch.equal(a.shrinkage, b.shrinkage)
        assert torch.equal(a.use_count, b.use_count) and torch.equal(a.life_count, b.life_count)
        assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a.values, b.values))


def test_shared_image_convolution_matches_per_object_convolution():
    net = tiny_net()
    frames, masks = frames_and_masks(n=5)
    cfg = small_config()
    net.set_shared_image_conv(True)
    shared = run_core(net, frames, masks, cfg)
    net.set_shared_image_conv(False)
    plain = run_core(net, frames, masks, cfg)
    net.set_shared_image_conv(True)
    assert max((a - b).abs().max().item() for a, b in zip(shared, plain)) < 1e-5


def test_shared_image_convolution_sees_weights_reloaded_under_inference_mode():
    # Inference tensors have no version counter: a cached weight split must not outlive a reload.
    with torch.inference_mode():
        torch.manual_seed(0)
        block = FeatureFusionBlock(8, 4, 16, 16).eval()
        x, g = torch.randn(1, 8, 5, 5), torch.randn(1, 2, 4, 5, 5)
        block(x, g)
        block.load_state_dict({k: torch.randn_like(v) for k, v in block.state_dict().items()})
        shared = block(x, g)
        block.share_image_conv = False
        assert torch.allclose(shared, block(x, g), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("over", [{"top_k": None}, {"deep_update_every": 2}, {"enable_long_term": False}])
def test_other_official_modes_run(over: dict):
    net = tiny_net()
    frames, masks = frames_and_masks(n=7)
    probs = run_core(net, frames, masks, small_config(mem_every=1, **over))
    assert all(not torch.isnan(p).any() for p in probs)


def test_network_without_sensory_memory_runs():
    net = tiny_net(hidden_dim=0)
    frames, masks = frames_and_masks(n=4)
    probs = run_core(net, frames, masks, small_config(mem_every=1))
    assert net.decoder.hidden_update is None and net.value_encoder.hidden_reinforce is None
    assert all(p.shape == (3, H, W) and not torch.isnan(p).any() for p in probs)


def test_same_inputs_same_outputs():
    net = tiny_net()
    frames, masks = frames_and_masks(n=8)
    cfg = small_config(mem_every=1)
    a = run_core(net, frames, masks, cfg)
    b = run_core(net, frames, masks, cfg)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize(
    "over, message",
    [
        ({"min_mid_term_frames": 1}, "min_mid_term_frames"),
        ({"max_mid_term_frames": 2, "min_mid_term_frames": 2}, "min_mid_term_frames"),
        ({"mem_every": 0}, "mem_every"),
        ({"top_k": 0}, "top_k"),
        ({"max_long_term_elements": 8}, "max_long_term_elements"),
        ({"deep_update_every": 0}, "deep_update_every"),
    ],
)
def test_bad_core_configs_are_rejected(over: dict, message: str):
    with pytest.raises(ValueError, match=message):
        resolve_config(small_config(**over), hidden_dim=8)


def test_bad_step_inputs_are_rejected():
    core = InferenceCore(tiny_net(), small_config())
    frames, masks = frames_and_masks(n=1)
    with pytest.raises(ValueError, match="needs a mask"):
        core.step(frames[0])
    with pytest.raises(ValueError, match="set_all_labels"):
        core.step(frames[0], masks)
    core.set_all_labels([1])
    with pytest.raises(ValueError, match="one channel per label"):
        core.step(frames[0], masks)
    with pytest.raises(ValueError, match="image must be"):
        core.step(frames[0][0], masks[:1])


# ------------------------------------------------------------------------------- the propagator


@pytest.mark.parametrize(
    "h, w, side, expected",
    [
        (480, 854, 480, (480, 854)),
        (1080, 1920, 480, (480, 853)),  # the longer side is truncated, as torchvision does
        (100, 50, 32, (64, 32)),
        (48, 64, 24, (24, 32)),
        (48, 64, -1, (48, 64)),
    ],
)
def test_resized_shape(h: int, w: int, side: int, expected: tuple[int, int]):
    assert resized_shape(h, w, side) == expected


def test_prepare_frame_normalises_like_imagenet():
    frame = np.zeros((4, 6, 3), dtype=np.uint8)
    frame[..., 0] = 255
    image = prepare_frame(frame, -1, torch.device("cpu"))
    assert image.shape == (3, 4, 6)
    assert torch.allclose(image[0], torch.full((4, 6), (1 - 0.485) / 0.229))
    assert torch.allclose(image[2], torch.full((4, 6), -0.406 / 0.225))
    assert prepare_frame(frame, 2, torch.device("cpu")).shape == (3, 2, 3)


def test_exclusive_labels_later_objects_win_and_vanished_objects_drop():
    masks = np.zeros((3, 2, 3), dtype=bool)
    masks[0, 0, :] = True
    masks[1, 0, 1:] = True  # overlaps object 0 on two pixels
    masks[2, 1, 2] = True
    label_map, present = exclusive_labels(masks)
    assert present == [0, 1, 2]
    assert label_map.tolist() == [[1, 2, 2], [0, 0, 3]]
    masks[0] = masks[1]  # object 0 entirely covered by object 1
    label_map, present = exclusive_labels(masks)
    assert present == [1, 2]
    assert label_map.tolist() == [[0, 1, 1], [0, 0, 2]]


class RecordingVideo:
    """A minimal VideoSource over an array that records how frames were requested."""

    def __init__(self, frames: np.ndarray, fps: float = 10.0):
        self._frames = frames
        self.fps = fps
        self.size = (frames.shape[2], frames.shape[1])
        self.calls: list[tuple[int, int, bool]] = []
        self.decoded: list[int] = []

    def __len__(self) -> int:
        return len(self._frames)

    def frames(self, indices):
        raise AssertionError("the propagator must stream frames with iter_frames")

    def iter_frames(self, start: int = 0, stop: int | None = None, step: int = 1, reverse: bool = False):
        stop = len(self) if stop is None else stop
        self.calls.append((start, stop, reverse))
        order = list(range(start, stop, step))
        for i in reversed(order) if reverse else order:
            self.decoded.append(i)
            yield i, self._frames[i]


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_xmem.pth"
    torch.save(tiny_net(seed=5).state_dict(), path)
    return path


def xmem_config(checkpoint: Path, **over: object) -> PipelineConfig:
    base = {
        "propagator": "xmem",
        "xmem_checkpoint": str(checkpoint),
        "xmem_size": 32,
        "xmem_top_k": 8,
        "xmem_mem_every": 2,
        "xmem_min_mid_term_frames": 2,
        "xmem_max_mid_term_frames": 3,
        "xmem_num_prototypes": 4,
        "xmem_max_long_term_elements": 40,
        "device": "cpu",
    }
    return PipelineConfig(**{**base, **over})


def video_frames(n: int = 7, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def keyframe_masks(h: int = 48, w: int = 64) -> np.ndarray:
    masks = np.zeros((2, h, w), dtype=bool)
    masks[0, 8:24, 8:30] = True
    masks[1, 28:44, 36:60] = True
    return masks


def test_propagates_forward_then_backward_each_frame_once(checkpoint: Path):
    video = RecordingVideo(video_frames())
    prop = XMemPropagator(xmem_config(checkpoint))
    assert prop.info.name == "xmem" and prop.info.weights_free is False
    out = list(both_ways(prop, video, 3, keyframe_masks()))
    assert [(i, d) for i, d, _ in out] == [
        (4, "forward"),
        (5, "forward"),
        (6, "forward"),
        (2, "backward"),
        (1, "backward"),
        (0, "backward"),
    ]
    assert all(m.shape == (2, 48, 64) and m.dtype == bool for _, _, m in out)
    # forward streams 3..6, backward streams 3..0 in reverse (the keyframe starts each pass)
    assert video.calls == [(3, 7, False), (0, 4, True)]
    assert video.decoded == [3, 4, 5, 6, 3, 2, 1, 0]


def test_propagation_is_deterministic_and_runs_on_arrayvideo(checkpoint: Path):
    prop = XMemPropagator(xmem_config(checkpoint))
    video = ArrayVideo(video_frames(n=5), fps=10)
    a = list(both_ways(prop, video, 2, keyframe_masks()))
    b = list(both_ways(prop, video, 2, keyframe_masks()))
    assert [(i, d) for i, d, _ in a] == [(3, "forward"), (4, "forward"), (1, "backward"), (0, "backward")]
    assert all(np.array_equal(x[2], y[2]) for x, y in zip(a, b))


def test_propagator_matches_a_manual_core_run_at_reduced_size(checkpoint: Path):
    frames = video_frames(n=4)
    prop = XMemPropagator(xmem_config(checkpoint))
    out = {i: m for i, _, m in both_ways(prop, RecordingVideo(frames), 0, keyframe_masks())}

    net = load_xmem(checkpoint)
    core = InferenceCore(net, prop._core_config(4))
    core.set_all_labels([1, 2])
    labels = torch.from_numpy(keyframe_masks().astype(np.int64))
    one_hot = torch.nn.functional.interpolate(labels[None].float(), size=(32, 42), mode="nearest")[0]
    core.step(prepare_frame(frames[0], 32, torch.device("cpu")), one_hot)
    for t in range(1, 4):
        prob = core.step(prepare_frame(frames[t], 32, torch.device("cpu")), end=(t == 3))
        assert prob.shape == (3, 32, 42)  # the network ran at the reduced size ...
        prob = torch.nn.functional.interpolate(prob[:, None], size=(48, 64), mode="bilinear")[:, 0]
        expected = prob.argmax(0).numpy()
        assert np.array_equal(out[t][0], expected == 1)  # ... and the output is at the original size
        assert np.array_equal(out[t][1], expected == 2)


@pytest.mark.parametrize("keyframe, expected", [(0, [1, 2, 3]), (3, [2, 1, 0])])
def test_keyframe_at_either_end_runs_one_pass(checkpoint: Path, keyframe: int, expected: list[int]):
    prop = XMemPropagator(xmem_config(checkpoint, xmem_size=-1))
    out = list(both_ways(prop, ArrayVideo(video_frames(n=4), fps=5), keyframe, keyframe_masks()))
    assert [i for i, _, _ in out] == expected


def test_empty_keyframe_mask_stays_empty_without_loading_weights(tmp_path: Path):
    prop = XMemPropagator(xmem_config(tmp_path / "missing.pth"))
    out = list(both_ways(prop, ArrayVideo(video_frames(n=5), fps=5), 1, np.zeros((2, 48, 64), dtype=bool)))
    assert [i for i, _, _ in out] == [2, 3, 4, 0]
    assert all(m.shape == (2, 48, 64) and not m.any() for _, _, m in out)


def test_an_empty_object_stays_empty_while_others_are_tracked(checkpoint: Path):
    masks = keyframe_masks()
    masks[0] = False
    out = list(
        both_ways(XMemPropagator(xmem_config(checkpoint)), ArrayVideo(video_frames(), fps=5), 3, masks)
    )
    assert len(out) == 6
    assert not any(m[0].any() for _, _, m in out)


def test_missing_checkpoint_raises_a_file_not_found_error(tmp_path: Path):
    prop = XMemPropagator(xmem_config(tmp_path / "XMem.pth"))
    with pytest.raises(FileNotFoundError, match="releases/download"):
        list(both_ways(prop, ArrayVideo(video_frames(n=3), fps=5), 0, keyframe_masks()))


@pytest.mark.parametrize(
    "keyframe, masks, message",
    [
        (9, keyframe_masks(), "outside the video"),
        (0, np.zeros((2, 10, 10), dtype=bool), "keyframe masks must be"),
        (0, np.zeros((48, 64), dtype=bool), "keyframe masks must be"),
    ],
)
def test_bad_propagate_arguments(checkpoint: Path, keyframe: int, masks: np.ndarray, message: str):
    prop = XMemPropagator(xmem_config(checkpoint))
    with pytest.raises(ValueError, match=message):
        list(both_ways(prop, ArrayVideo(video_frames(n=3), fps=5), keyframe, masks))

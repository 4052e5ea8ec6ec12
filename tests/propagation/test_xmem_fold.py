"""XMem's opt-in folded batch norms (paper step 3b speed): same numbers, state dict untouched,
rebuilt when the weights change, off by default (the official convolution arithmetic)."""

from __future__ import annotations

import torch

from videoseg.propagation.xmem import XMem
from videoseg.propagation.xmem.network import fold_batch_norms


def _randomised() -> XMem:
    torch.manual_seed(0)
    net = XMem().eval()
    with torch.no_grad():  # batch norms that do something (fresh ones are identities)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.0)
                m.bias.normal_(0, 0.1)
    return net


def test_folding_keeps_the_numbers_and_the_state_dict() -> None:
    net = _randomised()
    frame = torch.randn(1, 3, 64, 96)
    names = list(net.state_dict())
    with torch.no_grad():
        plain = net.encode_key(frame)
        assert net._encoder("key_encoder") is net.key_encoder  # off by default
        net.set_folded_batch_norms(True)
        folded = net.encode_key(frame)
        assert net._encoder("key_encoder") is not net.key_encoder
    for a, b in zip(plain, folded):
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-4)
    assert list(net.state_dict()) == names  # the copy is no submodule: checkpoints unchanged
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in net._encoder("key_encoder").modules())
    assert n_bn == 0


def test_the_folded_copy_follows_new_weights() -> None:
    net = _randomised()
    net.set_folded_batch_norms(True)
    frame = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = net.encode_key(frame)[0]
        other = _randomised()
        with torch.no_grad():
            other.key_encoder.conv1.weight.mul_(2)
        net.load_state_dict(other.state_dict())
        after = net.encode_key(frame)[0]
        net.set_folded_batch_norms(False)
        reference = net.encode_key(frame)[0]
    assert not torch.allclose(before, after)
    assert torch.allclose(after, reference, rtol=1e-4, atol=1e-4)


def test_fold_batch_norms_on_a_sequential() -> None:
    torch.manual_seed(1)
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4)).eval()
    seq[1].running_mean.normal_()
    seq[1].running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expected = seq(x)
        fold_batch_norms(seq)
        assert isinstance(seq[1], torch.nn.Identity)
        assert torch.allclose(seq(x), expected, atol=1e-5)

"""LARS: the multi-tensor step equals the textbook per-tensor rule."""

import copy

import pytest
import torch

from core.features.nets import SmallResNet, projection_head
from core.ssl.lars import LARS, lars_param_groups

pytestmark = pytest.mark.slow


def reference_step(params, buffers, *, lr, momentum, weight_decay, eta, lars):
    """LARS written out tensor by tensor (You et al., 2017), with SGD for the plain group."""
    for param in params:
        grad = param.grad
        if lars:
            grad = grad + weight_decay * param
            param_norm, grad_norm = param.norm(), grad.norm()
            if param_norm > 0 and grad_norm > 0:
                grad = grad * (eta * param_norm / grad_norm)
        buffer = buffers.get(id(param))
        buffers[id(param)] = grad.clone() if buffer is None else buffer * momentum + grad
        param.sub_(lr * buffers[id(param)])


def train_three_steps(models, step):
    images = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        for module in models:
            module.zero_grad()
        models[1](models[0](images)).pow(2).mean().backward()
        step()


def test_multi_tensor_step_equals_the_per_tensor_rule():
    torch.manual_seed(0)
    ours = [SmallResNet(widths=(8, 16, 16, 32), blocks=(1, 1, 1, 1)), projection_head(32, 64, 16)]
    with torch.no_grad():  # a zero tensor: its trust ratio must fall back to 1
        ours[1][-1].weight.zero_()
    start = copy.deepcopy(ours)
    reference = copy.deepcopy(ours)

    optimizer = LARS(lars_param_groups(*ours), lr=0.3, weight_decay=1e-4, eta=0.02)
    train_three_steps(ours, optimizer.step)

    adapted, plain = (group["params"] for group in lars_param_groups(*reference))
    buffers = {}

    @torch.no_grad()
    def reference_steps():
        reference_step(adapted, buffers, lr=0.3, momentum=0.9, weight_decay=1e-4, eta=0.02, lars=True)
        reference_step(plain, buffers, lr=0.3, momentum=0.9, weight_decay=0.0, eta=0.02, lars=False)

    train_three_steps(reference, reference_steps)

    for mine, theirs in zip(*(list(p for m in models for p in m.parameters()) for models in (ours, reference))):
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours[0].stem[0].weight, start[0].stem[0].weight)
    assert not torch.equal(ours[1][-1].weight, start[1][-1].weight)

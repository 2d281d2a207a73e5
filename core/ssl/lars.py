"""LARS: SGD with a per-layer trust ratio (You et al., 2017), as SimCLR trains with."""

from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose step per tensor is scaled by ``eta * |w| / |g|``.

    Parameter groups with ``lars=False`` (biases and norm layers, by SimCLR's
    recipe) take plain SGD steps with no weight decay. Each step is a handful of
    multi-tensor (``torch._foreach_*``) calls per group rather than a dozen small
    calls per tensor: on a GPU the per-tensor loop kept the device waiting on Python.
    """

    def __init__(self, params, *, lr, momentum=0.9, weight_decay=1e-5, eta=0.02):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["lars"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
                param_norms = torch.stack(torch._foreach_norm(params))
                grad_norms = torch.stack(torch._foreach_norm(grads))
                trust = torch.where(
                    (param_norms > 0) & (grad_norms > 0),
                    group["eta"] * param_norms / grad_norms,
                    torch.ones_like(param_norms),
                )
                grads = torch._foreach_mul(grads, list(trust.unbind()))
            buffers = []
            for param in params:
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(param)
                buffers.append(state["momentum_buffer"])
            # buffer = momentum * buffer + grad; a new buffer starts at zero, so its first value is grad.
            torch._foreach_mul_(buffers, group["momentum"])
            torch._foreach_add_(buffers, grads)
            torch._foreach_add_(params, buffers, alpha=-group["lr"])


def lars_param_groups(*modules):
    """Split parameters: weight matrices and kernels get LARS, the rest plain SGD."""
    adapted, plain = [], []
    for module in modules:
        for param in module.parameters():
            (adapted if param.ndim > 1 else plain).append(param)
    return [dict(params=adapted), dict(params=plain, lars=False, weight_decay=0.0)]

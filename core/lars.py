"""LARS: SGD with a per-layer trust ratio (You et al., 2017), as SimCLR trains with."""
from __future__ import annotations

import torch


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose step per tensor is scaled by ``eta * |w| / |g|``.

    Parameter groups with ``lars=False`` (biases and norm layers, by SimCLR's
    recipe) take plain SGD steps with no weight decay.
    """

    def __init__(self, params, *, lr, momentum=0.9, weight_decay=1e-5, eta=0.02):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if group["lars"]:
                    grad = grad.add(param, alpha=group["weight_decay"])
                    param_norm, grad_norm = torch.norm(param), torch.norm(grad)
                    trust = torch.where(
                        (param_norm > 0) & (grad_norm > 0), group["eta"] * param_norm / grad_norm, torch.ones_like(param_norm)
                    )
                    grad = grad * trust
                state = self.state[param]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                param.add_(state["momentum_buffer"], alpha=-group["lr"])


def lars_param_groups(*modules):
    """Split parameters: weight matrices and kernels get LARS, the rest plain SGD."""
    adapted, plain = [], []
    for module in modules:
        for param in module.parameters():
            (adapted if param.ndim > 1 else plain).append(param)
    return [dict(params=adapted), dict(params=plain, lars=False, weight_decay=0.0)]

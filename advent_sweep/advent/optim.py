"""SGD that updates a parameter several times per step: valeoai/ADVENT's repeated listings, made explicit.

The official ``optim_parameters`` lists a backbone parameter once per module enclosing it,
and torch.optim.SGD then updates it once per listing. PyTorch is turning duplicate
parameters into an error, so here each parameter is listed once, with a repeat count in its
group's ``repeats``, and its listings' updates are replayed with the same arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


class RepeatedSGD(torch.optim.Optimizer):
    """SGD (momentum, weight decay) updating ``group["params"][i]`` ``group["repeats"][i]`` times a step.

    Bit for bit torch.optim.SGD's single-tensor path (``foreach=False``; CPU's default) on a
    parameter listed that many times: each repeat's weight decay reads the parameter as the
    previous repeat left it; on the first step each repeat starts its own momentum buffer and
    the last is kept, on later steps the repeats share one buffer. No ``repeats``: each once.

    >>> opt = RepeatedSGD([{"params": [w], "repeats": [3]}], lr=0.1, momentum=0.9, weight_decay=5e-4)
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float,
                 momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        repeats = group.setdefault("repeats", [1] * len(group["params"]))
        if len(repeats) != len(group["params"]) or any(r < 1 for r in repeats):
            raise ValueError(
                f"repeats must give each of the group's {len(group['params'])} params a count ≥ 1; got {repeats}"
            )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Refuse a state saved with other repeat counts: they are the recipe (param_repeats), not state to restore."""
        if [g.get("repeats") for g in state_dict["param_groups"]] != [g["repeats"] for g in self.param_groups]:
            raise ValueError(
                "optimizer state saved with other repeat counts (another param_repeats, or a torch.optim.SGD "
                "state from before RepeatedSGD) cannot be restored into this optimizer"
            )
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
            for param, repeats in zip(group["params"], group["repeats"]):
                if param.grad is None:
                    continue
                buffer = self.state[param].get("momentum_buffer") if momentum != 0 else None
                first_step = buffer is None
                for _ in range(repeats):
                    grad = param.grad.add(param, alpha=weight_decay) if weight_decay != 0 else param.grad
                    if momentum != 0:
                        buffer = grad.clone() if first_step else buffer.mul_(momentum).add_(grad)
                        grad = buffer
                    param.add_(grad, alpha=-lr)
                if momentum != 0:
                    self.state[param]["momentum_buffer"] = buffer
        return loss

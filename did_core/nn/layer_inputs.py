"""Input checks and real-entry masks of the equivariant layers.

Each layer validates its input layout here and builds the bool masks of the real
entries it pools and outputs (layouts and the masking rule: :mod:`did_core.nn.layers`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from did_core.games import joint_mask


def _payoff_sizes(x: Tensor, in_ch: int, trailing: int, what: str) -> tuple[int, ...]:
    """Validate ``[B, C, N, A_1..A_N, <trailing axes>]`` and return ``(A_1..A_N)``."""
    if not isinstance(x, Tensor) or x.dim() < 4 + trailing:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{what} must be a tensor with at least {4 + trailing} axes, got {shape}")
    n_players = x.shape[2]
    if x.dim() != 3 + n_players + trailing:
        raise ValueError(
            f"{what} of shape {tuple(x.shape)} declares N={n_players} players "
            f"but has {x.dim() - 3 - trailing} action axes"
        )
    _check_in_channels(x, in_ch)
    return tuple(x.shape[3 : 3 + n_players])


def _check_in_channels(x: Tensor, in_ch: int) -> None:
    if x.shape[1] != in_ch:
        raise ValueError(f"expected {in_ch} input channels on axis 1, got {x.shape[1]} (shape {tuple(x.shape)})")


def _action_mask(mask: Tensor | None, batch: int, sizes: Sequence[int], device: torch.device) -> Tensor:
    """The action mask ``[B, N, A_max]`` as bool; all real when ``mask`` is ``None``."""
    a_max = max(sizes)
    if mask is None:
        real = torch.arange(a_max, device=device) < torch.tensor(sizes, device=device).unsqueeze(1)
        return real.unsqueeze(0).expand(batch, len(sizes), a_max)
    expected = (batch, len(sizes), a_max)
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask must have shape {list(expected)}, got {list(mask.shape)}")
    return mask.to(device=device, dtype=torch.bool)


def _padding_mask(mask: Tensor, sizes: Sequence[int]) -> Tensor | None:
    """The action mask ``[B, N, A_max]``, or ``None`` when it marks every action on each player's axis real."""
    if all(bool(mask[:, p, :size].all()) for p, size in enumerate(sizes)):
        return None
    return mask


def _outcome_mask(outcome_mask: Tensor | None, batch: int, outcomes: int, device: torch.device) -> Tensor:
    """The outcome mask ``[B, M]`` as bool; all real when ``None``."""
    if outcome_mask is None:
        return torch.ones(batch, outcomes, dtype=torch.bool, device=device)
    if tuple(outcome_mask.shape) != (batch, outcomes):
        raise ValueError(f"outcome_mask must have shape {[batch, outcomes]}, got {list(outcome_mask.shape)}")
    return outcome_mask.to(device=device, dtype=torch.bool)


def _payoff_outcome_mask(mask: Tensor, outcome_mask: Tensor, sizes: Sequence[int]) -> Tensor:
    """Real payoff-outcome entries ``[B, 1, 1, A_1..A_N, M]``."""
    batch, n_players = mask.shape[0], len(sizes)
    joint = joint_mask(mask, sizes).reshape(batch, 1, 1, *sizes, 1)
    return joint & outcome_mask.reshape(batch, 1, 1, *([1] * n_players), -1)


def _payoff_outcome_inputs(x: Tensor, in_ch: int, mask: Tensor | None, outcome_mask: Tensor | None
                           ) -> tuple[tuple[int, ...], Tensor, Tensor]:
    """Validate payoff-outcome input; return its action sizes, outcome mask ``[B, M]`` and real entries."""
    sizes = _payoff_sizes(x, in_ch, 1, "payoff-outcome data")
    batch = x.shape[0]
    outcome_mask = _outcome_mask(outcome_mask, batch, x.shape[-1], x.device)
    real = _payoff_outcome_mask(_action_mask(mask, batch, sizes, x.device), outcome_mask, sizes)
    return tuple(sizes), outcome_mask, real

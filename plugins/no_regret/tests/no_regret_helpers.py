"""Helpers of the no_regret tests: an independent CCE / CE gap, written with plain loops."""

from __future__ import annotations

import numpy as np
import torch

from did_core.testing import reference_rows


def cut(games: torch.Tensor, mask: torch.Tensor, b: int) -> np.ndarray:
    """Game ``b`` of a padded batch cut to its real actions, ``[N, A_1..A_N]``."""
    sizes = mask[b].sum(dim=1).tolist()
    return games[b][(slice(None), *[slice(0, s) for s in sizes])].detach().numpy()


def reference_gap(sigma: np.ndarray, game: np.ndarray, concept: str = "cce") -> float:
    """``max_k D_k . sigma`` with the rows written by plain loops (``did_core.testing.reference_rows``)."""
    rows, _ = reference_rows(game, concept)
    return float(np.max(np.array(rows) @ sigma.reshape(-1)))


def batch_reference_gaps(sigma: torch.Tensor, games: torch.Tensor, mask: torch.Tensor,
                         concept: str = "cce") -> np.ndarray:
    """The reference gap of every game of a padded batch (``sigma [B, A_max..]`` cut like the games)."""
    out = []
    for b in range(games.shape[0]):
        sizes = mask[b].sum(dim=1).tolist()
        s = sigma[b][tuple(slice(0, k) for k in sizes)].detach().numpy()
        out.append(reference_gap(s, cut(games, mask, b), concept))
    return np.array(out)

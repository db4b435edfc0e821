"""The learned block's network: embedded games -> eps-ME (C)CE duals (docs/mathematics.md, sections 4.5 and 5).

``Phi(G) [B, N, A_1..A_N]`` enters as one channel, with four channels of
game-size features (:func:`size_channels`); ``p2p_layers`` payoff -> payoff
layers (the first maps 1 -> ``width`` channels, the others are residual),
one payoff -> dual layer, ``d2d_layers`` residual dual -> dual layers and a
dual -> dual head with one output channel and a softplus. Residual layers are
``h + layer(LayerNorm(h))``: LayerNorm acts on the channel vector of each
position, so it keeps every equivariance; padded positions are re-zeroed.

The output is the dual of the *embedded* game under relative epsilon: CCE
``[B, N, A]``, CE ``[B, N, A, A]``, >= 0, exactly 0 on rows that are not real.
Converting it to the original game's dual (divide player ``p``'s rows by
``s_p(G)``) is the block's job (:mod:`did_deb_marris.block`).

With ``row_scale="inv_actions"`` player ``p``'s rows are divided by ``A_p - 1`` (CE:
the deviations of one recommendation) or ``A_p`` (CCE), a fixed equivariant
rescaling that makes the optimal outputs O(1) at every size (the optimal duals
fall from about 2 in 2x2 games to 0.05-0.2 in 16x16 ones) and keeps the initial
total dual small for CE, which has ``N A (A - 1)`` rows.

The head starts near zero (small weights, bias -3): a large initial output puts
softplus in its flat region and collapses training to ``alpha = 0``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from did_core.concepts import Concept, DualLayout
from did_core.files import shown
from did_core.plugins import get_concept
from did_core.games import joint_mask
from did_core.nn import D2D, P2D, P2P

__all__ = ["NetConfig", "DebMarrisNet"]


@dataclass(frozen=True)
class NetConfig:
    """Architecture options (plain data, stored in every checkpoint)."""

    concept: str = "cce"
    width: int = 64
    p2p_layers: int = 2
    d2d_layers: int = 2
    aggregation: str = "meanvar"
    head_bias: float = -3.0
    size_features: bool = True
    row_scale: str = "none"

    def to_dict(self) -> dict:
        return asdict(self)


def size_channels(mask: Tensor, sizes: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """Game-size inputs ``[B, 4, N, 1..1]``: ``1/A_p``, ``1/|A_-p|``, ``log A_p / 3``, ``log |A_-p| / 3``.

    Functions of the real action counts, constant over each player's slice, so
    they keep every equivariance. The optimal duals' magnitude depends strongly on
    the game size (about 2 in 2x2 games, 0.1 in 16x16), which the size-normalised
    pools of ``Phi(G)`` barely reveal.
    """
    counts = mask.sum(dim=-1).to(dtype)  # [B, N]
    others = counts.log().sum(dim=1, keepdim=True) - counts.log()
    feats = torch.stack([1.0 / counts, torch.exp(-others), counts.log() / 3.0, others / 3.0], dim=1)
    return feats.reshape(*feats.shape, *([1] * len(sizes)))


class _Residual(nn.Module):
    """``h + layer(LayerNorm(h))`` over the channel axis (axis 1), zero on padded positions."""

    def __init__(self, layer: nn.Module, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.layer = layer

    def forward(self, h: Tensor, mask: Tensor, real: Tensor) -> Tensor:
        normed = self.norm(h.movedim(1, -1)).movedim(-1, 1)
        return torch.where(real, h + self.layer(normed, mask), 0.0)


class DebMarrisNet(nn.Module):
    """Equivariant network ``Phi(G) -> alpha_Phi`` for one concept.

    **Arguments:** ``phi [B, N, A_1..A_N]`` (embedded games, padded entries 0),
    ``mask [B, N, A_max]``.

    **Returns:** ``alpha_Phi`` CCE ``[B, N, A_max]`` / CE ``[B, N, A_max, A_max]``.
    """

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        self.concept: Concept = get_concept(config.concept)
        if config.row_scale not in ("none", "inv_actions"):
            raise ValueError(f"row_scale must be 'none' or 'inv_actions', got {shown(config.row_scale)}")
        w, agg = config.width, config.aggregation
        self.stem = P2P(1 + (4 if config.size_features else 0), w, agg)
        self.p2p = nn.ModuleList(_Residual(P2P(w, w, agg), w) for _ in range(config.p2p_layers - 1))
        self.p2d_norm = nn.LayerNorm(w)
        self.p2d = P2D(w, w, self.concept, agg)
        self.d2d = nn.ModuleList(_Residual(D2D(w, w, self.concept, agg), w) for _ in range(config.d2d_layers))
        self.head_norm = nn.LayerNorm(w)
        self.head = D2D(w, 1, self.concept, agg, activation=None)
        with torch.no_grad():
            self.head.linear.weight.mul_(0.01)
            self.head.linear.bias.fill_(config.head_bias)

    def forward(self, phi: Tensor, mask: Tensor) -> Tensor:
        sizes = phi.shape[2:]
        batch = phi.shape[0]
        real_payoff = joint_mask(mask, sizes).reshape(batch, 1, 1, *sizes)
        real_dual = self.concept.dual_mask(mask).unsqueeze(1)
        x = phi.unsqueeze(1)
        if self.config.size_features:
            x = torch.cat([x, size_channels(mask, sizes, phi.dtype) * real_payoff], dim=1)
        h = self.stem(x, mask)
        for layer in self.p2p:
            h = layer(h, mask, real_payoff)
        h = self.p2d(self.p2d_norm(h.movedim(1, -1)).movedim(-1, 1), mask)
        for layer in self.d2d:
            h = layer(h, mask, real_dual)
        out = self.head(self.head_norm(h.movedim(1, -1)).movedim(-1, 1), mask).squeeze(1)
        alpha = F.softplus(out)
        if self.config.row_scale == "inv_actions":
            counts = mask.sum(dim=-1).to(alpha.dtype)  # [B, N]
            pairs = self.concept.layout is DualLayout.ACTION_PAIR  # rows per recommendation: A_p - 1, else A_p
            per_row = 1.0 / ((counts - 1.0).clamp_min(1.0) if pairs else counts)
            alpha = alpha * per_row.reshape(*per_row.shape, *([1] * (alpha.dim() - 2)))
        return torch.where(real_dual.squeeze(1), alpha, 0.0)

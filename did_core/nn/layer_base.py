"""The shared base of the equivariant layers: pools -> one linear map -> activation -> zero padding.

:class:`_EquivariantLayer` holds the parameters and the steps every layer shares
(:mod:`did_core.nn.layers` states them); each layer kind only builds its pooled
features and calls ``_combine`` (or ``_payoff_forward`` for payoff data).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from did_core.files import shown
from did_core.games import joint_mask
from did_core.nn.layer_inputs import _action_mask, _outcome_mask, _padding_mask, _payoff_outcome_mask, _payoff_sizes
from did_core.nn.linear_map import _linear, _Terms
from did_core.nn.payoff_pools import _axis_counts, _payoff_output
from did_core.nn.pooling import Aggregation, get_aggregation, times_mask

__all__ = ["Activation"]

Activation = Callable[[Tensor], Tensor]
"""An elementwise activation (``F.gelu``, an ``nn.Module`` such as ``nn.GELU()``, ...)."""


class _EquivariantLayer(nn.Module, ABC):
    """Pools -> concatenation over channels -> shared linear map -> activation -> zero padding (abstract)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        aggregation: str | Aggregation = "meanvar",
        activation: Activation | None = F.gelu,
    ) -> None:
        super().__init__()
        for name, value in (("in_ch", in_ch), ("out_ch", out_ch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {shown(value)}")
        if activation is not None and not callable(activation):
            raise ValueError(f"activation must be callable or None, got {shown(activation)}")
        self.in_ch = in_ch
        self.out_ch = out_ch
        self.aggregation = get_aggregation(aggregation)
        self.n_features = self._n_features(self.aggregation.n_stats)
        self.linear = nn.Linear(self.n_features * in_ch, out_ch)
        self.activation = activation

    @abstractmethod
    def _n_features(self, n_stats: int) -> int:
        """How many pooled tensors (each with ``in_ch`` channels) ``forward`` builds."""

    def _combine(self, features: Sequence[Tensor], out_mask: Tensor) -> Tensor:
        """``activation(W concat(features) + b)``, zero where ``out_mask`` is false.

        Each feature is ``[B, in_ch, ...]`` broadcastable to the output positions;
        ``out_mask [B, 1, ...]`` marks the real output positions.
        """
        if len(features) != self.n_features:
            raise RuntimeError(f"{type(self).__name__} built {len(features)} features, expected {self.n_features}")
        terms = _Terms(None, 1)
        for weight, feature in zip(self.linear.weight.split(self.in_ch, dim=1), features):
            terms.add(_linear(weight, feature))
        return self._output(terms, out_mask, out_mask.dim())

    def _pool_blocks(self) -> Iterator[Tensor]:
        """The linear map's columns for the first feature (``[out_ch, in_ch]``), then for each pool's
        ``n_stats`` consecutive features (``[out_ch, n_stats * in_ch]``)."""
        weight, width = self.linear.weight, self.aggregation.n_stats * self.in_ch
        yield weight[:, : self.in_ch]
        for start in range(self.in_ch, weight.shape[1], width):
            yield weight[:, start : start + width]

    def _output(self, terms: "_Terms", out_mask: Tensor | None, ndim: int) -> Tensor:
        """``activation(sum of terms + b)``, zero where ``out_mask`` is false (``None``: nothing is padded)."""
        terms.add(self.linear.bias.reshape(1, -1, *([1] * (ndim - 2))))
        out = terms.total()
        if self.activation is not None:
            out = self.activation(out)
        return out if out_mask is None else times_mask(out, out_mask)

    def _payoff_forward(self, x: Tensor, mask: Tensor | None, outcome_mask: Tensor | None,
                        extra: tuple[int, ...]) -> Tensor:
        """The P2P / PO2PO layer: validate, find the padding, pool and map (see :func:`_payoff_output`)."""
        sizes = _payoff_sizes(x, self.in_ch, len(extra), "payoff-outcome data" if extra else "payoff data")
        batch = x.shape[0]
        actions = _action_mask(mask, batch, sizes, x.device)
        outcomes = _outcome_mask(outcome_mask, batch, x.shape[-1], x.device) if extra else None
        mask = _padding_mask(actions, sizes)
        outcome_mask = None if outcomes is None or bool(outcomes.all()) else outcomes
        real = None
        if mask is not None or outcome_mask is not None:
            real = (joint_mask(actions, sizes).reshape(batch, 1, 1, *sizes) if outcomes is None
                    else _payoff_outcome_mask(actions, outcomes, sizes))
        blocks = self._pool_blocks()
        terms = _payoff_output(x, real, _axis_counts(x, mask, outcome_mask), self.aggregation, blocks, extra)
        if next(blocks, None) is not None:
            raise RuntimeError(f"{type(self).__name__} used fewer pools than its {self.n_features} features")
        return self._output(terms, real, x.dim())

    def extra_repr(self) -> str:
        act = None if self.activation is None else getattr(self.activation, "__name__", repr(self.activation))
        concept = getattr(self, "concept", None)
        prefix = f"concept={concept.name!r}, " if concept else ""
        return (
            f"{self.in_ch}, {self.out_ch}, {prefix}aggregation={self.aggregation.name!r}, "
            f"activation={act}"
        )

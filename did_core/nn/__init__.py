"""Masked equivariant layers for batched games (docs/mathematics.md, section 5).

``pooling`` holds the masked aggregations, ``layers`` the layers (defined in
``payoff_layers``, ``dual_layers`` and ``contract_layers`` on the shared
``layer_base``); data layouts and the masking rule are stated at the top of
``pooling`` and ``layers``.
"""

from did_core.nn.layers import D2D, O2O, P2D, P2P, PO2O, PO2PO, Activation
from did_core.nn.pooling import (
    AGGREGATIONS,
    Aggregation,
    MaxAggregation,
    MeanAggregation,
    MeanVarAggregation,
    get_aggregation,
    masked_max,
    masked_mean,
    masked_meanvar,
)

__all__ = [
    "P2P",
    "P2D",
    "D2D",
    "PO2PO",
    "PO2O",
    "O2O",
    "Activation",
    "Aggregation",
    "MeanAggregation",
    "MeanVarAggregation",
    "MaxAggregation",
    "AGGREGATIONS",
    "get_aggregation",
    "masked_mean",
    "masked_meanvar",
    "masked_max",
]

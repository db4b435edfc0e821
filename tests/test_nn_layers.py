"""Tests of the masked equivariant layers (``did_core.nn``): sizes, semantics, gradients and errors.

In float64 on tiny games: parameter counts independent of the game size, named
pools against explicit loops, gradcheck, argument validation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch

from did_core.plugins import get_concept
from did_core.nn import AGGREGATIONS, D2D, O2O, P2D, P2P, PO2O
from nn_helpers import CASE_IDS, CASES, CH_IN, CH_OUT, DTYPE, Case, equivariance_inputs, seeded, size_mask


# ----------------------------------------------------------------------------- size independence


# Pooled features per input channel, per layer, for an aggregation with k statistics.
FEATURES: dict[str, Callable[[int], int]] = {
    "P2P": lambda k: 1 + 7 * k,
    "P2D-cce": lambda k: 3 * k,
    "P2D-ce": lambda k: 5 * k,
    "D2D-cce": lambda k: 1 + 2 * k,
    "D2D-ce": lambda k: 2 + 6 * k,
    "PO2PO": lambda k: 1 + 15 * k,
    "PO2O": lambda k: 4 * k,
    "O2O": lambda k: 1 + 3 * k,
}


@pytest.mark.parametrize("aggregation", sorted(AGGREGATIONS))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_parameter_count_depends_on_channels_only(case: Case, aggregation: str) -> None:
    layer = case.layer(aggregation)
    k = AGGREGATIONS[aggregation].n_stats
    expected = (FEATURES[case.name](k) * CH_IN + 1) * CH_OUT
    assert sum(p.numel() for p in layer.parameters()) == expected
    for sizes in [(2,), (2, 2), (4, 3), (3, 2, 2)]:
        x, mask = equivariance_inputs(case, sizes, seed=40)
        out = case(layer, x, mask, None)  # one layer serves every size
        assert out.shape[:3] == (2, CH_OUT, len(sizes))
    assert sum(p.numel() for p in layer.parameters()) == expected


# ----------------------------------------------------------------------------- semantics


def _select_feature(layer: P2P, index: int) -> None:
    """Make ``layer`` (one input and output channel, no activation) output feature ``index``."""
    with torch.no_grad():
        layer.linear.weight.zero_()
        layer.linear.weight[0, index] = 1.0
        layer.linear.bias.zero_()


def test_p2p_pools_own_and_others_actions_as_named() -> None:
    """Mean P2P features against explicit loops: feature 2 = own pool, 5 = others' pool merged over players."""
    counts = [[2, 3]]
    mask = size_mask(counts, 4)
    x = torch.randn(1, 1, 2, 3, 4, generator=seeded(50), dtype=DTYPE)
    layer = P2P(1, 1, "mean", activation=None).to(DTYPE)
    _select_feature(layer, 2)
    own = layer(x, mask)[0, 0]
    _select_feature(layer, 5)
    others_merged = layer(x, mask)[0, 0]
    k0, k1 = counts[0]
    g = x[0, 0, :, :k0, :k1]
    for a0, a1 in itertools.product(range(k0), range(k1)):
        assert torch.isclose(own[0, a0, a1], g[0, :, a1].mean())  # player 0 pools its own axis 0
        assert torch.isclose(own[1, a0, a1], g[1, a0, :].mean())  # player 1 pools its own axis 1
        merged = 0.5 * (g[0, a0, :].mean() + g[1, :, a1].mean())
        assert torch.isclose(others_merged[0, a0, a1], merged) and torch.isclose(others_merged[1, a0, a1], merged)


def test_p2d_ce_sees_the_deviation_gain_variance() -> None:
    """Two games whose rows have equal means and variances but different gains get different CE features."""
    rows_a = torch.tensor([[1.0, -1.0], [1.0, -1.0]], dtype=DTYPE)
    rows_b = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=DTYPE)
    games = torch.stack([torch.stack([r, torch.zeros(2, 2, dtype=DTYPE)]) for r in (rows_a, rows_b)])
    layer = P2D(1, 4, get_concept("ce")).to(DTYPE)
    out = layer(games.unsqueeze(1))
    assert not torch.allclose(out[0], out[1])


# ----------------------------------------------------------------------------- gradients and errors


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradcheck(case: Case) -> None:
    torch.manual_seed(0)
    layer = case.build("meanvar").to(DTYPE)
    mask = size_mask([[2, 2], [1, 3]], 3)
    outcome_mask = torch.tensor([[True, False], [True, True]])
    x = case.input(2, (2, 3), 2, seeded(60)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: case(layer, t, mask, outcome_mask), (x,), fast_mode=True)


def test_layers_validate_their_arguments() -> None:
    with pytest.raises(ValueError, match="in_ch"):
        P2P(0, 3)
    with pytest.raises(TypeError, match="did_core.plugins.get_concept"):
        P2D(2, 3, "cce")
    with pytest.raises(ValueError, match="unknown aggregation"):
        D2D(2, 3, get_concept("cce"), aggregation="median")
    with pytest.raises(ValueError, match="activation"):
        O2O(2, 3, activation="gelu")  # type: ignore[arg-type]
    layer = P2P(2, 3).to(DTYPE)
    with pytest.raises(ValueError, match="input channels"):
        layer(torch.zeros(1, 3, 2, 2, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match="action axes"):
        layer(torch.zeros(1, 2, 2, 2, dtype=DTYPE))
    with pytest.raises(ValueError, match="mask must have shape"):
        layer(torch.zeros(1, 2, 2, 2, 3, dtype=DTYPE), torch.ones(1, 2, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="dual data"):
        D2D(2, 3, get_concept("ce"))(torch.zeros(1, 2, 2, 3, dtype=DTYPE))
    with pytest.raises(ValueError, match="outcome_mask"):
        PO2O(2, 3)(torch.zeros(1, 2, 1, 2, 3), None, torch.ones(1, 4, dtype=torch.bool))


def test_output_layer_has_no_activation() -> None:
    layer = O2O(1, 1, activation=None).to(DTYPE)
    with torch.no_grad():
        layer.linear.weight.zero_()
        layer.linear.bias.fill_(-5.0)
    out = layer(torch.zeros(1, 1, 2, 3, dtype=DTYPE))
    assert torch.all(out == -5.0)  # GELU would give about -1.4e-6


def test_payoff_generator_output_map_applies_to_every_real_entry():
    """A real entry whose raw output is exactly 0 still goes through the map; padded entries stay 0."""
    from did_core.nn.generators import PayoffGenerator

    class Sampler:
        def sample(self, batch, generator):
            return {"x": torch.zeros(batch, 2, 3, 3)}

        def payoff_features(self, context):
            mask = torch.tensor([[True, True, False], [True, True, True]]).expand(context["x"].shape[0], 2, 3)
            return context["x"].unsqueeze(1), mask

    gen = PayoffGenerator(Sampler(), width=4, depth=1, output="neg_softplus")
    torch.nn.init.zeros_(gen.head.linear.weight)
    torch.nn.init.zeros_(gen.head.linear.bias)
    out = gen(Sampler().sample(2, None))
    assert torch.allclose(out[:, :, :2, :], torch.full_like(out[:, :, :2, :], -math.log(2.0)))
    assert torch.equal(out[:, :, 2, :], torch.zeros_like(out[:, :, 2, :]))


def test_a_p2p_stack_subclass_initialises_through_super():
    """``super().__init__(**options)`` initialises the module and validates the options; ``build`` then adds the
    layers (it raised "cannot assign module before Module.__init__() call" when P2PStack had no ``__init__``)."""
    from did_core.nn.generators import P2PStack

    class Sampler:
        def sample(self, batch, generator):
            return {"x": torch.randn(batch, 2, 2, 3, generator=torch.Generator().manual_seed(0))}

        def payoff_features(self, context):
            return context["x"].unsqueeze(1), torch.ones(context["x"].shape[0], 2, 3, dtype=torch.bool)

    class TwoHeads(P2PStack):
        def __init__(self, sampler, **options):
            super().__init__(**options)
            self.build(sampler, 2)

        def forward(self, context):
            head, _ = self.trunk(context)
            return head[:, 0] - head[:, 1]

    gen = TwoHeads(Sampler(), width=4, depth=2)
    assert gen.options.width == 4 and len(gen.hidden) == 2
    assert gen(Sampler().sample(3, None)).shape == (3, 2, 2, 3)
    assert sum(p.numel() for p in gen.parameters()) > 0
    with pytest.raises(ValueError, match="invalid options for TwoHeads: widht: Extra inputs are not permitted"):
        TwoHeads(Sampler(), widht=4)

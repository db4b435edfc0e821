"""The fast equivariant layers compute the same function as the straightforward reference.

The reference (``tests/reference``) is the implementation before the speed
rewrite: pools broadcast to full size, concatenated over channels, one linear
map. Outputs and gradients (input and every parameter) must agree to 1e-5
relative in float64, on random masked and unmasked inputs of several sizes and
player counts, for every layer and aggregation.
"""

from __future__ import annotations

import zlib

import pytest
import torch
from torch import Tensor, nn

from did_core.plugins import get_concept
from did_core.nn import D2D, O2O, P2D, P2P, PO2O, PO2PO
from reference import to_reference

DTYPE = torch.float64


def _builders() -> dict[str, tuple[callable, str]]:
    return {
        "P2P": (lambda agg: P2P(3, 4, agg), "payoff"),
        "P2D-cce": (lambda agg: P2D(3, 4, get_concept("cce"), agg), "payoff"),
        "P2D-ce": (lambda agg: P2D(3, 4, get_concept("ce"), agg), "payoff"),
        "D2D-cce": (lambda agg: D2D(3, 4, get_concept("cce"), agg), "cce"),
        "D2D-ce": (lambda agg: D2D(3, 4, get_concept("ce"), agg), "ce"),
        "PO2PO": (lambda agg: PO2PO(3, 4, agg), "po"),
        "PO2O": (lambda agg: PO2O(3, 4, agg), "po"),
        "O2O": (lambda agg: O2O(3, 4, agg), "outcome"),
        "P2P-head": (lambda agg: P2P(3, 1, agg, activation=None), "payoff"),
    }


class _Wrap(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer


def _inputs(kind: str, sizes: tuple[int, ...], padded: bool, gen: torch.Generator
            ) -> tuple[Tensor, Tensor | None, Tensor | None]:
    batch, n, a_max, outcomes = 3, len(sizes), max(sizes), 4
    shape = {
        "payoff": (batch, 3, n, *sizes),
        "po": (batch, 3, n, *sizes, outcomes),
        "cce": (batch, 3, n, a_max),
        "ce": (batch, 3, n, a_max, a_max),
        "outcome": (batch, 3, n, outcomes),
    }[kind]
    x = torch.randn(shape, generator=gen, dtype=DTYPE) * 2 + 0.5
    if not padded:
        return x, None, None
    # Game b has between 1 and sizes[p] real actions for player p; between 1 and 4 real outcomes.
    counts = torch.stack([torch.randint(1, s + 1, (batch,), generator=gen) for s in sizes], dim=1)
    counts[0] = torch.tensor(sizes)  # one game without padding
    mask = torch.arange(a_max).view(1, 1, -1) < counts.unsqueeze(-1)
    outcome_mask = torch.arange(outcomes).view(1, -1) < torch.randint(1, outcomes + 1, (batch, 1), generator=gen)
    return x, mask, outcome_mask


def _call(layer: nn.Module, kind: str, x: Tensor, mask: Tensor | None, outcome_mask: Tensor | None) -> Tensor:
    if kind == "po":
        return layer(x, mask, outcome_mask)
    if kind == "outcome":
        return layer(x, outcome_mask)
    return layer(x, mask)


def _outputs_and_grads(layer: nn.Module, kind: str, x: Tensor, mask, outcome_mask, probe: Tensor
                       ) -> list[Tensor]:
    x = x.clone().requires_grad_(True)
    layer.zero_grad(set_to_none=True)
    out = _call(layer, kind, x, mask, outcome_mask)
    (out * probe).sum().backward()
    return [out.detach(), x.grad, *(p.grad for p in layer.parameters())]


@pytest.mark.parametrize("aggregation", ["meanvar", "mean", "max"])
@pytest.mark.parametrize("padded", [True, False], ids=["masked", "unmasked"])
@pytest.mark.parametrize("sizes", [(4,), (3, 5), (4, 4), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("name", list(_builders()))
def test_fast_layer_matches_the_reference(name: str, sizes: tuple[int, ...], padded: bool,
                                          aggregation: str) -> None:
    build, kind = _builders()[name]
    if kind == "ce" and padded is False and len(set(sizes)) > 1:
        pytest.skip("dual data is square per player")
    gen = torch.Generator().manual_seed(zlib.crc32(repr((name, sizes, padded, aggregation)).encode()))
    torch.manual_seed(1)
    fast = build(aggregation).to(DTYPE)
    slow = to_reference(_Wrap(build(aggregation).to(DTYPE))).layer
    slow.load_state_dict(fast.state_dict())
    assert type(slow).__module__ != type(fast).__module__
    x, mask, outcome_mask = _inputs(kind, sizes, padded, gen)
    probe = torch.randn_like(_call(fast, kind, x, mask, outcome_mask), dtype=DTYPE)
    got = _outputs_and_grads(fast, kind, x, mask, outcome_mask, probe)
    want = _outputs_and_grads(slow, kind, x, mask, outcome_mask, probe)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, rtol=1e-5, atol=1e-9 * max(1.0, float(w.abs().max()))), float((g - w).abs().max())


def test_reference_swap_shares_parameters_and_reaches_nested_layers() -> None:
    model = nn.Sequential(P2P(2, 3), nn.ModuleList([P2P(3, 1, activation=None)]))
    before = [p.data_ptr() for p in model.parameters()]
    to_reference(model)
    assert [type(m).__module__ for m in (model[0], model[1][0])] == ["reference.layers"] * 2
    assert [p.data_ptr() for p in model.parameters()] == before

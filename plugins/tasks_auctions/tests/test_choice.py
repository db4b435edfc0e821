"""The relaxed choice through the registered exact block is the one-player eps-ME choice: a softmax over
utilities whose temperature makes the regret exactly eps (checked against that closed form, solved here by
bisection, and its gradient against finite differences)."""

from __future__ import annotations

import pytest
import torch

from did_core.equilibria import Epsilon
from did_core.plugins import create, get_concept, registry
from did_auctions.choice import RelaxedChoice

pytestmark = pytest.mark.skipif("exact_newton" not in registry("blocks"), reason="did-plugins-exact-cvx not installed")


def closed_form(utility: torch.Tensor, eps: float) -> torch.Tensor:
    """softmax(u / T) with max u - E u = eps (bisection on log T); uniform where uniform already meets eps."""
    rows = []
    for u in utility:
        if u.max() - u.mean() <= eps:
            rows.append(torch.full_like(u, 1 / len(u)))
            continue
        lo, hi = -30.0, 10.0
        for _ in range(60):
            mid = (lo + hi) / 2
            sigma = torch.softmax(u / torch.exp(torch.tensor(mid, dtype=u.dtype)), dim=0)
            lo, hi = (lo, mid) if u.max() - sigma @ u > eps else (mid, hi)
        rows.append(torch.softmax(u / torch.exp(torch.tensor(lo, dtype=u.dtype)), dim=0))
    return torch.stack(rows)


@pytest.mark.parametrize("block", ["exact_newton", "exact_cvx"])
def test_block_choice_is_the_closed_form_softmax(block):
    generator = torch.Generator().manual_seed(0)
    utility = torch.randn(12, 6, generator=generator, dtype=torch.float64)
    utility[:, 0] = 0.0  # the null option
    utility[0] = torch.tensor([0.0, 0.01, -0.01, 0.0, 0.005, 0.0], dtype=torch.float64)  # uniform meets eps
    choice = RelaxedChoice(create("blocks", block), get_concept("cce"))
    sigma = choice(utility, 0.05)
    torch.testing.assert_close(sigma, closed_form(utility, 0.05), atol=1e-5, rtol=0)
    regret = utility.max(dim=1).values - (sigma * utility).sum(dim=1)
    assert torch.all(regret[1:] - 0.05 < 1e-6) and torch.all(regret[1:] > 0.05 - 1e-5)


def test_gradient_matches_finite_differences_of_the_closed_form():
    generator = torch.Generator().manual_seed(1)
    utility = torch.randn(2, 4, generator=generator, dtype=torch.float64)
    weights = torch.randn(2, 4, generator=generator, dtype=torch.float64)
    choice = RelaxedChoice(create("blocks", "exact_newton"), get_concept("cce"))
    u = utility.clone().requires_grad_(True)
    (choice(u, 0.1) * weights).sum().backward()
    step = 1e-6
    numeric = torch.zeros_like(utility)
    for index in range(utility.numel()):
        delta = torch.zeros(utility.numel(), dtype=torch.float64)
        delta[index] = step
        delta = delta.reshape(utility.shape)
        up = (closed_form(utility + delta, 0.1) * weights).sum()
        down = (closed_form(utility - delta, 0.1) * weights).sum()
        numeric.view(-1)[index] = (up - down) / (2 * step)
    torch.testing.assert_close(u.grad, numeric, atol=1e-4, rtol=1e-3)


def test_ce_is_not_the_softmax_choice():
    """Why the choice uses CCE: one player's CE rows condition on the recommended option, and its eps-ME joint
    is not a softmax over utilities (its log-probabilities are not affine in them)."""
    utility = torch.tensor([[0.0, 0.4, -0.3, 0.9, 0.2]], dtype=torch.float64)
    sigma = create("blocks", "exact_newton")(utility.unsqueeze(1), concept=get_concept("ce"),
                                             eps=Epsilon(0.05, relative=False)).sigma
    logits = torch.log(sigma[0])
    slope = torch.linalg.lstsq(torch.stack([utility[0], torch.ones(5, dtype=torch.float64)], 1),
                               logits[:, None]).solution
    residual = logits - slope[0] * utility[0] - slope[1]
    assert residual.abs().max() > 0.1

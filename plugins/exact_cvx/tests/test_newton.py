"""The batched Newton block ``exact_newton`` against independent truth: ECOS, finite differences, cut-down games."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from did_core.equilibria import Epsilon, constraints, joint_from_dual
from did_core.games import classic_game, full_mask, normal_games, padded_random_games
from did_core.plugins import get_concept
from did_core.implicit import implicit_vjp
from did_core.plugins import load_plugins
from did_exact_cvx import EcosBlock, NewtonBlock
from did_exact_cvx.newton import NonConvergenceError, NonConvergenceWarning, solve_dual_newton

SIGMA_TOL = 1e-5  # ECOS's own sigma is accurate to about 1e-7..2e-6
VIOLATION_TOL = 1e-8


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _duplicate_actions(batch: int, seed: int) -> torch.Tensor:
    g = normal_games(batch, (4, 4), generator=_gen(seed))
    g[:, :, 3] = g[:, :, 0]  # row player's action 3 copies action 0 (duplicate CE/CCE rows)
    g[:, :, :, 2] = g[:, :, :, 1]
    return g


def _near_dominated(batch: int, seed: int) -> torch.Tensor:
    g = normal_games(batch, (4, 3), generator=_gen(seed))
    g[:, 0, 1] = g[:, 0, 0] - 1e-3  # action 1 of player 0 is barely dominated by action 0
    g[:, 1, :, 2] = g[:, 1, :, 0] + 2.0  # action 0 of player 1 is strongly dominated
    return g


def _ties(batch: int, seed: int) -> torch.Tensor:
    return torch.randint(-1, 2, (batch, 2, 4, 4), generator=_gen(seed)).double()


def _classics() -> torch.Tensor:
    names = ["prisoners_dilemma", "chicken", "battle_of_sexes", "matching_pennies"]
    return torch.stack([classic_game(n) for n in names])


# name -> (games, mask or None, eps)
CASES = {
    "3x3": lambda: (normal_games(4, (3, 3), generator=_gen(1)), None, Epsilon(0.05)),
    "6x6": lambda: (normal_games(3, (6, 6), generator=_gen(2)), None, Epsilon(0.05)),
    "8x8": lambda: (normal_games(2, (8, 8), generator=_gen(3)), None, Epsilon(0.05)),
    "non_square_5x2": lambda: (normal_games(4, (5, 2), generator=_gen(4)), None, Epsilon(0.05)),
    "three_players": lambda: (normal_games(3, (2, 3, 2), generator=_gen(5)), None, Epsilon(0.05)),
    "padded": lambda: (*padded_random_games(4, 2, 1, 4, generator=_gen(6)), Epsilon(0.05)),
    "padded_three_players": lambda: (*padded_random_games(3, 3, 1, 3, generator=_gen(7)), Epsilon(0.05)),
    "eps_1e-3": lambda: (normal_games(3, (4, 4), generator=_gen(8)), None, Epsilon(1e-3)),
    "absolute_eps": lambda: (3.0 * normal_games(3, (3, 4), generator=_gen(9)), None, Epsilon(0.05, relative=False)),
    "single_action_player": lambda: (normal_games(3, (1, 4), generator=_gen(10)), None, Epsilon(0.05)),
    "duplicate_rows": lambda: (_duplicate_actions(3, 11), None, Epsilon(0.01)),
    "near_dominated": lambda: (_near_dominated(3, 12), None, Epsilon(0.01)),
    "ties": lambda: (_ties(4, 13), None, Epsilon(0.02)),
    "classics": lambda: (_classics(), None, Epsilon(0.05)),
}


@pytest.mark.parametrize("concept", ["ce", "cce"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_agrees_with_ecos(case: str, concept: str) -> None:
    games, mask, eps = CASES[case]()
    eq = NewtonBlock()(games, mask, concept=get_concept(concept), eps=eps)
    ref = EcosBlock()(games, mask, concept=get_concept(concept), eps=eps)
    assert eq.info["converged"].all(), eq.info["kkt"]
    assert (eq.sigma - ref.sigma).abs().max() <= SIGMA_TOL
    assert eq.info["violation"].max() <= VIOLATION_TOL
    assert (eq.alpha >= 0).all()
    assert torch.allclose(eq.sigma.flatten(1).sum(dim=1), torch.ones(games.shape[0], dtype=games.dtype))
    for key in ("iterations", "converged", "kkt", "gap", "violation", "entropy", "active"):
        assert eq.info[key].shape == (games.shape[0],), key


@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_padded_game_equals_cut_down_game(concept: str) -> None:
    games, mask = padded_random_games(5, 2, 1, 4, generator=_gen(20))
    eq = NewtonBlock()(games, mask, concept=get_concept(concept))
    for b in range(games.shape[0]):
        n0, n1 = (int(x) for x in mask[b].sum(dim=1))
        alone = NewtonBlock()(games[b:b + 1, :, :n0, :n1].contiguous(), concept=get_concept(concept))
        assert torch.allclose(eq.sigma[b, :n0, :n1], alone.sigma[0], atol=1e-9)
        assert eq.sigma[b, n0:].abs().sum() == 0 and eq.sigma[b, :, n1:].abs().sum() == 0


@pytest.mark.parametrize("concept", ["ce", "cce"])
@pytest.mark.parametrize("eps", [Epsilon(0.05), Epsilon(0.1, relative=False)])
def test_gradient_matches_finite_differences(concept: str, eps: Epsilon) -> None:
    games = normal_games(2, (3, 3), generator=_gen(30))
    weights = torch.randn(2, 3, 3, generator=_gen(31), dtype=torch.float64)
    block = NewtonBlock(tol=1e-13, max_iter=200)

    def loss(g: torch.Tensor) -> torch.Tensor:
        return (block(g, concept=get_concept(concept), eps=eps).sigma * weights).sum()

    g = games.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(g), g)
    # Central differences, every perturbed copy of every game solved in one batch.
    h, n = 1e-6, games[0].numel()
    steps = h * torch.eye(n, dtype=games.dtype).view(n, 1, *games.shape[1:])
    plus, minus = games.unsqueeze(0) + steps.unsqueeze(1), games.unsqueeze(0) - steps.unsqueeze(1)
    batch = torch.cat([plus, minus]).reshape(-1, *games.shape[1:])  # [2 n B, ...]
    with torch.no_grad():
        sigma = block(batch, concept=get_concept(concept), eps=eps).sigma.reshape(2, n, *games.shape[:1], 3, 3)
    per_game = (sigma * weights).sum(dim=(-1, -2))  # [2, n, B]
    fd = ((per_game[0] - per_game[1]) / (2 * h)).T.reshape_as(games)
    assert ((grad - fd).norm() / fd.norm()) < 1e-3
    assert (grad - fd).abs().max() < 1e-3 * fd.abs().max()


def test_gradcheck() -> None:
    block = NewtonBlock(tol=1e-13, max_iter=200)
    games = normal_games(1, (2, 3), generator=_gen(32)).requires_grad_(True)
    for concept in ("ce", "cce"):
        assert torch.autograd.gradcheck(lambda g: block(g, concept=get_concept(concept)).sigma, (games,), atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_gradient_matches_ecos_block(concept: str) -> None:
    games, mask = padded_random_games(4, 2, 2, 4, generator=_gen(33), embedded=False)
    weights = torch.randn(4, 4, 4, generator=_gen(34), dtype=torch.float64)
    grads = []
    for block in (NewtonBlock(tol=1e-12), EcosBlock()):
        g = games.clone().requires_grad_(True)
        (block(g, mask, concept=get_concept(concept)).sigma * weights).sum().backward()
        grads.append(g.grad)
    assert (grads[0] - grads[1]).abs().max() <= 1e-4 * grads[1].abs().max()


def test_too_few_iterations_are_flagged() -> None:
    games = normal_games(4, (6, 6), generator=_gen(40))
    with pytest.warns(NonConvergenceWarning, match="did not converge"):
        eq = NewtonBlock(max_iter=1)(games, concept=get_concept("ce"), eps=1e-3)
    assert not eq.info["converged"].all()
    assert (eq.info["kkt"][~eq.info["converged"]] > 1e-10).all()
    with pytest.raises(NonConvergenceError):
        NewtonBlock(max_iter=1, on_failure="raise")(games, concept=get_concept("ce"), eps=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eq = NewtonBlock(max_iter=1, on_failure="ignore")(games, concept=get_concept("ce"), eps=1e-3)
    assert not eq.info["converged"].all()


@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_warm_start(concept: str) -> None:
    games = normal_games(6, (5, 5), generator=_gen(50))
    block = NewtonBlock()
    cold = block(games, concept=get_concept(concept))
    again = block(games, concept=get_concept(concept), alpha0=cold.alpha)
    assert int(again.info["iterations"].max()) == 0
    assert torch.equal(again.sigma, cold.sigma)
    flat = block(games, concept=get_concept(concept), alpha0=cold.alpha.flatten(1))
    assert int(flat.info["iterations"].max()) == 0
    # A nearby game from the old solution: converges to the cold-start answer, in fewer iterations.
    nearby = games + 0.05 * normal_games(6, (5, 5), generator=_gen(51))
    warm = block(nearby, concept=get_concept(concept), alpha0=cold.alpha)
    fresh = block(nearby, concept=get_concept(concept))
    assert warm.info["converged"].all()
    assert torch.allclose(warm.sigma, fresh.sigma, atol=1e-8)
    assert warm.info["iterations"].sum() < fresh.info["iterations"].sum()
    # A useless warm start (huge multipliers everywhere) is no worse than a cold start.
    absurd = block(games, concept=get_concept(concept), alpha0=1e3 * torch.rand(cold.alpha.shape, generator=_gen(52),
                                                                   dtype=cold.alpha.dtype))
    assert absurd.info["converged"].all()
    assert torch.allclose(absurd.sigma, cold.sigma, atol=1e-8)
    assert absurd.info["iterations"].max() <= cold.info["iterations"].max() + 2
    # The block option reuses the last duals of a same-shaped batch.
    remembering = NewtonBlock(warm_start=True)
    remembering(games, concept=get_concept(concept))
    assert int(remembering(games, concept=get_concept(concept)).info["iterations"].max()) == 0


def test_dense_solve_dual_path_and_float32() -> None:
    games = normal_games(3, (4, 3), generator=_gen(60))
    block = NewtonBlock()
    eq = block(games, concept=get_concept("ce"))
    # The DualSolverBlock route (dense constraints, base-class __call__) gives the same answer.
    base = super(NewtonBlock, block).__call__(games, concept=get_concept("ce"))
    assert torch.allclose(base.sigma, eq.sigma, atol=1e-10)
    g32 = games.float().requires_grad_(True)
    single = block(g32, concept=get_concept("ce"))
    assert single.sigma.dtype == torch.float32 and single.alpha.dtype == torch.float32
    assert torch.allclose(single.sigma.double(), eq.sigma, atol=1e-5)
    g64 = games.clone().requires_grad_(True)
    weights = torch.randn(3, 4, 3, generator=_gen(61), dtype=torch.float64)
    (single.sigma * weights.float()).sum().backward()
    (block(g64, concept=get_concept("ce")).sigma * weights).sum().backward()
    assert g32.grad is not None and g32.grad.dtype == torch.float32 and g64.grad is not None
    assert (g32.grad.double() - g64.grad).abs().max() <= 1e-3 * g64.grad.abs().max()


def test_registered_and_options_validated() -> None:
    blocks = load_plugins().registries["blocks"]
    assert "exact_newton" in blocks
    block = blocks.create("exact_newton", tol=1e-9, max_iter=50)
    assert isinstance(block, NewtonBlock) and block.tol == 1e-9
    for bad in ({"tol": 0.0}, {"max_iter": -1}, {"check_every": 0}, {"on_failure": "shrug"}):
        with pytest.raises(ValueError):
            NewtonBlock(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha0"):
        NewtonBlock()(normal_games(2, (3, 3)), concept=get_concept("cce"), alpha0=torch.zeros(2, 5))


def test_functional_solver_on_dense_gains() -> None:
    games, mask = padded_random_games(4, 2, 1, 4, generator=_gen(70))
    cons = constraints(games, mask, get_concept("cce"), Epsilon(0.05))
    result = solve_dual_newton(cons.gains, cons.rows, cons.eps, cons.log_target)
    assert result.converged.all()
    assert torch.allclose(result.sigma, joint_from_dual(result.alpha, cons), atol=1e-12)


# --- did_core.implicit: the structured gain products and the compact-active-set VJP -------------------------


def _structured_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = [(g, full_mask(g)) for g in (normal_games(3, (3, 4), generator=_gen(80)),
                                         normal_games(2, (2, 3, 2), generator=_gen(81)),
                                         normal_games(2, (1, 3), generator=_gen(82)))]
    games, mask = padded_random_games(4, 2, 1, 4, generator=_gen(83), embedded=False)
    padded = ~(mask[:, 0, :, None] & mask[:, 1, None, :])
    out.append((games + 5.0 * padded.unsqueeze(1), mask))  # garbage on padded entries must not leak
    out.append(padded_random_games(3, 3, 1, 3, generator=_gen(84)))
    out.append((_duplicate_actions(3, 11), full_mask(_duplicate_actions(3, 11))))  # singular active Hessians
    return out


@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_operator_products_match_its_dense_rows(concept: str) -> None:
    """Products, row selection and scale of the matrix-free operator equal those of its dense rows
    (which test_equilibria checks against the definitions, row by row)."""
    for games, mask in _structured_cases():
        cons = constraints(games, mask, get_concept(concept), Epsilon(0.05))
        op = get_concept(concept).operator(games, mask)
        x = torch.rand(games.shape[0], cons.gains.shape[2], generator=_gen(85), dtype=games.dtype)
        a = torch.rand(cons.rows.shape, generator=_gen(86), dtype=games.dtype)
        index = torch.randint(0, cons.rows.shape[1], (games.shape[0], 5), generator=_gen(87))
        dense_rows = cons.gains.gather(1, index.unsqueeze(2).expand(-1, -1, cons.gains.shape[2]))
        assert torch.allclose(op.regrets(x), torch.einsum("bkj,bj->bk", cons.gains, x), atol=1e-12)
        assert torch.allclose(op.transpose(a), torch.einsum("bk,bkj->bj", a * cons.rows, cons.gains), atol=1e-12)
        assert torch.equal(op.rows(index), dense_rows)
        sub = torch.tensor([games.shape[0] - 1, 0])
        assert torch.equal(op.rows(index[sub], sub), dense_rows[sub])
        assert torch.allclose(op.scale(), cons.gains.abs().flatten(1).amax(dim=1))
        assert torch.equal(op.real, cons.rows)
        assert torch.allclose(op.eps_rows(games, mask, Epsilon(0.05)), cons.eps)
        assert torch.equal(op.log_target(), cons.log_target)


def _dense_reference_vjp(games, mask, concept, eps, alpha, grad_sigma):  # type: ignore[no-untyped-def]
    """The implicit VJP by autograd through the dense constraints, full-K pseudo-inverse (the original)."""
    g = games.detach().requires_grad_(True)
    cons = constraints(g, mask, get_concept(concept), eps)
    sigma = joint_from_dual(alpha, cons)
    residual = torch.einsum("bkj,bj->bk", cons.gains, sigma) - cons.eps
    scale = alpha.amax(dim=1, keepdim=True).clamp_min(1.0)
    active = (cons.rows & (alpha > 1e-7 * scale)).to(games.dtype)
    with torch.no_grad():
        d, s = cons.gains.detach() * active.unsqueeze(-1), sigma.detach()
        d_mean = (d * s.unsqueeze(1)).sum(dim=2)
        hess = torch.einsum("bkj,blj->bkl", d * s.unsqueeze(1), d) - d_mean.unsqueeze(2) * d_mean.unsqueeze(1)
        hess = hess + torch.diag_embed(1.0 - active)
        cov_v = s * grad_sigma - s * (s * grad_sigma).sum(dim=1, keepdim=True)
        w = -(torch.linalg.pinv(hess, hermitian=True, rtol=1e-10) @ torch.einsum("bkj,bj->bk", d, cov_v)
              .unsqueeze(2)).squeeze(2) * active
    (grad,) = torch.autograd.grad((sigma * grad_sigma).sum() + (residual * w).sum(), g)
    return grad


@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_implicit_vjp_matches_dense_reference(concept: str) -> None:
    for games, mask in _structured_cases():
        for eps in (Epsilon(0.05), Epsilon(0.2, relative=False)):
            eq = EcosBlock()(games, mask, concept=get_concept(concept), eps=eps)
            alpha = eq.alpha.flatten(1)
            v = torch.randn(games.shape[0], eq.sigma[0].numel(), generator=_gen(88), dtype=games.dtype)
            ours = implicit_vjp(games, mask, get_concept(concept), eps, alpha, v)
            ref = _dense_reference_vjp(games, mask, concept, eps, alpha, v)
            assert torch.allclose(ours, ref, atol=1e-9 * max(1.0, float(ref.abs().max()))), (concept, eps)


def test_kkt_scale_invariance() -> None:
    """Scaling payoffs (relative eps) leaves sigma, the iteration count and the scaled KKT residual alone."""
    games = normal_games(3, (4, 4), generator=_gen(90))
    a = NewtonBlock()(games, concept=get_concept("cce"))
    b = NewtonBlock()(1000.0 * games + 3.0, concept=get_concept("cce"))
    assert torch.allclose(a.sigma, b.sigma, atol=1e-9)
    assert math.isclose(float(a.info["iterations"].sum()), float(b.info["iterations"].sum()), abs_tol=3)

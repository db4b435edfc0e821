"""The ECOS block's reused programs: mixed real shapes in one batch, the per-shape cache and accuracy.

Every answer is checked against an independent truth: the same game solved alone by a
fresh block (no cached program), and Clarabel on the plain-loop rows of
``did_core.testing`` (no code shared with ``did_core.equilibria``).
"""

import cvxpy as cp
import numpy as np
import pytest
import torch

import did_exact_cvx.ecos_block as ecos_block
from did_core.plugins import get_concept
from did_core.testing import reference_rows, reference_scale, reference_solve
from did_exact_cvx.ecos_block import EcosBlock, EntropyProgram, solve_game

# Real action sets per game (indices into A_max), some not trailing. Pairs of games share
# their real shape (K', J') under CE with different supports ((3, 4) against (4, 3)).
TWO_PLAYER = [((0, 1, 2, 3), (0, 1, 2, 3)), ((0, 1, 3), (0, 1, 2, 3)), ((0, 1, 2, 3), (0, 2, 3)),
              ((0, 2), (0, 1, 2, 3)), ((0, 1, 2), (0, 1, 2, 3)), ((0, 1, 2, 3), (0, 1, 2, 3)), ((0,), (0, 1, 3)),
              ((0, 3), (0, 1))]
THREE_PLAYER = [((0, 1, 2), (0, 1, 2), (0, 1, 2)), ((0, 2), (0, 1, 2), (0, 1, 2)), ((0, 1, 2), (0, 1, 2), (0, 1)),
                ((0, 1), (0, 1), (0, 1)), ((0, 1, 2), (0, 2), (0, 1, 2)), ((0, 1, 2), (0, 1, 2), (0, 1, 2))]


def mixed_batch(real_sets, a_max, seed):
    """Games ``[B, N, a_max..]`` with the given real actions, garbage on padded payoffs, and their mask."""
    gen = torch.Generator().manual_seed(seed)
    n = len(real_sets[0])
    games = 5.0 + torch.randn(len(real_sets), n, *[a_max] * n, dtype=torch.float64, generator=gen)
    mask = torch.zeros(len(real_sets), n, a_max, dtype=torch.bool)
    for b, sets in enumerate(real_sets):
        for p, actions in enumerate(sets):
            mask[b, p, list(actions)] = True
    return games, mask


def cut(game, sets):
    """The real sub-game ``[N, A'_1..A'_N]`` of one padded game ``[N, a_max..]``."""
    return game[(slice(None), *np.ix_(*[list(s) for s in sets]))]


def tight_reference(game, concept, eps):
    """Clarabel on ``did_core.testing``'s plain-loop rows and scale, stopped at 1e-11 gaps.

    ``reference_solve`` stops Clarabel at 1e-10, which leaves its sigma up to about 2e-6
    from the optimum (ECOS here and the Newton block at tol 1e-12 agree to 1e-8): too loose
    to test 1e-6 agreement. At 1e-11 the games below are within 5e-7; at 1e-12 Clarabel
    reports some of them inaccurate.
    """
    rows, owners = reference_rows(game, concept)
    d, e = np.array(rows), eps * reference_scale(game)[owners]
    sigma = cp.Variable(d.shape[1])
    problem = cp.Problem(cp.Maximize(cp.sum(cp.entr(sigma))), [d @ sigma <= e, cp.sum(sigma) == 1])
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11, max_iter=500)
    assert problem.status == cp.OPTIMAL, problem.status
    x = np.clip(sigma.value, 0, None)
    return (x / x.sum()).reshape(game.shape[1:])


@pytest.mark.parametrize("concept", ["ce", "cce"])
@pytest.mark.parametrize("real_sets, a_max", [(TWO_PLAYER, 4), (THREE_PLAYER, 3)])
def test_mixed_masks_give_the_sigma_of_each_game_solved_alone(concept, real_sets, a_max):
    games, mask = mixed_batch(real_sets, a_max, seed=3)
    block = EcosBlock()
    eq = block(games, mask, concept=get_concept(concept), eps=0.1)
    for b, sets in enumerate(real_sets):
        alone = EcosBlock()(cut(games[b], sets).unsqueeze(0), concept=get_concept(concept), eps=0.1).sigma[0]
        np.testing.assert_allclose(cut(eq.sigma[b].unsqueeze(0), sets)[0].numpy(), alone.numpy(), atol=1e-7, rtol=0)
        assert torch.all(eq.sigma[b][~cut_mask(mask[b], a_max)] == 0)
    assert eq.info["violation"].max() < 1e-7
    shapes = {tuple(s) for s in block.cached_shapes}
    assert len(shapes) < len(real_sets)  # repeated shapes share a program


def cut_mask(mask, a_max):
    """Real joint actions ``[a_max..]`` of one game's mask ``[N, a_max]``."""
    out = torch.ones([a_max] * mask.shape[0], dtype=torch.bool)
    for p in range(mask.shape[0]):
        view = [1] * mask.shape[0]
        view[p] = a_max
        out = out & mask[p].view(view)
    return out


@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_results_match_the_independent_reference_to_1e_6(concept):
    games, mask = mixed_batch(TWO_PLAYER, 4, seed=5)
    eq = EcosBlock()(games, mask, concept=get_concept(concept), eps=0.05)
    for b, sets in enumerate(TWO_PLAYER):
        game = cut(games[b], sets).numpy()
        truth = tight_reference(game, concept, 0.05)
        np.testing.assert_allclose(cut(eq.sigma[b].unsqueeze(0), sets)[0].numpy(), truth, atol=1e-6, rtol=0)
        np.testing.assert_allclose(truth, reference_solve(game, concept, 0.05), atol=1e-5)


def test_three_player_results_match_the_independent_reference_to_1e_6():
    games, mask = mixed_batch(THREE_PLAYER, 3, seed=6)
    for concept in ("ce", "cce"):
        eq = EcosBlock()(games, mask, concept=get_concept(concept), eps=0.05)
        for b, sets in enumerate(THREE_PLAYER):
            truth = tight_reference(cut(games[b], sets).numpy(), concept, 0.05)
            np.testing.assert_allclose(cut(eq.sigma[b].unsqueeze(0), sets)[0].numpy(), truth, atol=1e-6, rtol=0)


def spy_programs(monkeypatch):
    """Record ``(K', J')`` and the program of every game the block solves."""
    seen = []
    original = ecos_block.solve_game

    def spy(gains, eps, *args, program=None, **kwargs):
        seen.append((gains.shape, program))
        return original(gains, eps, *args, program=program, **kwargs)

    monkeypatch.setattr(ecos_block, "solve_game", spy)
    return seen


def test_cache_reuses_one_program_per_real_shape(monkeypatch):
    seen = spy_programs(monkeypatch)
    games, mask = mixed_batch(TWO_PLAYER, 4, seed=7)
    block = EcosBlock()
    block(games, mask, concept=get_concept("ce"), eps=0.1)
    by_shape = {}
    for shape, program in seen:
        assert program is not None and program.shape == shape
        by_shape.setdefault(shape, set()).add(id(program))
    assert all(len(ids) == 1 for ids in by_shape.values())  # same shape: same object
    programs = [next(iter(ids)) for ids in by_shape.values()]
    assert len(set(programs)) == len(by_shape)  # different shapes: different objects
    assert len(by_shape) < len(TWO_PLAYER)
    assert sorted(block.cached_shapes) == sorted(by_shape)

    # A second call on new games of the cached shapes re-solves the same programs without recompiling.
    program = block._programs[(24, 16)]
    assert program.problem.is_dpp()
    compiled = program.problem._cache.param_prog
    seen.clear()
    other, other_mask = mixed_batch(TWO_PLAYER, 4, seed=8)
    block(other, other_mask, concept=get_concept("ce"), eps=0.1)
    assert {id(p) for s, p in seen if s == (24, 16)} == {id(program)}
    assert program.problem._cache.param_prog is compiled


def test_games_of_one_shape_with_other_supports_share_a_program_over_the_union():
    games, mask = mixed_batch([((0, 1, 3), (0, 1, 2, 3)), ((0, 1, 2, 3), (0, 2, 3))], 4, seed=9)
    block = EcosBlock()
    block(games[:1], mask[:1], concept=get_concept("ce"))
    first = block._programs[(18, 12)]
    block(games[1:], mask[1:], concept=get_concept("ce"))
    union = block._programs[(18, 12)]
    assert union is not first and union.support.sum() > first.support.sum()
    assert np.all(union.support >= first.support)
    block(games, mask, concept=get_concept("ce"))
    assert block._programs[(18, 12)] is union  # covers both: no new program
    assert block.cached_shapes == [(18, 12)]


def test_cache_is_bounded_and_drops_the_least_recently_used():
    block = EcosBlock(cache_size=2)
    sizes = {"a": (2, 2), "b": (2, 3), "c": (3, 3)}
    games = {k: torch.randn(1, 2, *s, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
             for i, (k, s) in enumerate(sizes.items())}
    shape = {k: (s[0] * (s[0] - 1) + s[1] * (s[1] - 1), s[0] * s[1]) for k, s in sizes.items()}

    def cached(k):
        return block._programs.get(shape[k])

    block(games["a"], concept=get_concept("ce"))
    block(games["b"], concept=get_concept("ce"))
    a = cached("a")
    block(games["a"], concept=get_concept("ce"))  # a is now the most recently used
    assert cached("a") is a
    block(games["c"], concept=get_concept("ce"))
    assert block.cached_shapes == [shape["a"], shape["c"]] and cached("b") is None
    batch = torch.zeros(3, 2, 3, 3, dtype=torch.float64)
    mask = torch.zeros(3, 2, 3, dtype=torch.bool)
    for i, k in enumerate("abc"):
        a1, a2 = sizes[k]
        batch[i, :, :a1, :a2] = games[k][0]
        mask[i, 0, :a1], mask[i, 1, :a2] = True, True
    block(batch, mask, concept=get_concept("ce"))
    assert len(block.cached_shapes) == 2
    with pytest.raises(ValueError):
        EcosBlock(cache_size=0)


def test_solve_game_with_and_without_a_program_agree():
    rng = np.random.default_rng(0)
    gains, eps = rng.normal(size=(6, 9)), np.full(6, 0.1)
    gains[:, ::4] = 0.0
    sigma, alpha, solver = solve_game(gains, eps)
    program = EntropyProgram(np.ones((6, 9), dtype=bool))
    sigma2, alpha2, _ = solve_game(gains, eps, program=program)
    assert solver == "ECOS"
    np.testing.assert_allclose(sigma2, sigma, atol=1e-8)
    np.testing.assert_allclose(alpha2, alpha, atol=1e-6)
    with pytest.raises(ValueError):
        solve_game(gains, eps, program=EntropyProgram(gains[:, 1:] != 0))
    with pytest.raises(ValueError):  # a nonzero outside the program's support
        solve_game(np.ones((6, 9)), eps, program=EntropyProgram(gains != 0))


@pytest.mark.parametrize("concept", ["ce", "cce"])
def test_constant_game_has_no_nonzero_row_and_gives_the_uniform_joint(concept):
    # All rows are zero (and eps is 0): the program keeps one zero entry and the answer is uniform.
    eq = EcosBlock()(torch.zeros(1, 2, 2, 3, dtype=torch.float64), concept=get_concept(concept), eps=0.05)
    np.testing.assert_allclose(eq.sigma.numpy(), 1 / 6, atol=1e-8)

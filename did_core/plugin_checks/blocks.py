"""The checks of an equilibrium block under one concept (:func:`block_checks`).

* **shapes and padding**: on padded 2-player, non-square 2-player and 3-player games
  (:data:`~did_core.plugin_checks.games.FAMILIES`), ``sigma [B, A_1..A_N]`` is a distribution (non-negative,
  summing to 1), exactly zero on padded joint actions and equal to the answer for the game cut to its real
  actions; ``info`` holds ``gap``, ``violation``, ``entropy`` per game and the duals have the concept's
  ``dual_shape``; an exact block's answer meets every row within :data:`FEASIBLE`. An approximate block may refuse
  a kind of game it does not serve with a one-line ``ValueError``; an exact block answers them all (the core
  evaluates every task with one).
* **invariance**: the same joint for ``G`` and for ``3 Phi(G)`` (the embedding, docs/mathematics.md, section 3.1):
  the eps-ME joint with a relative tolerance depends on the payoffs only through it.
* **agreement with an independent solver** (exact blocks): within :data:`AGREE` of
  :func:`~did_core.plugin_checks.reference.reference_joint` on every family.
* **gradients**: a double-precision ``torch.autograd.gradcheck`` on a non-degenerate game (see :func:`gradients`).
* **size guard**: a block that estimates its memory refuses a call over its ``max_memory_gb`` in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from did_core.blocks import Equilibrium, EquilibriumBlock, SolveSize, SolveTooLarge, capabilities_of
from did_core.concepts import Concept
from did_core.equilibria import constraints
from did_core.games import embed, full_mask, joint_mask
from did_core.plugin_checks.checks import Check, CheckFailed, NotApplicable, expect, one_line
from did_core.plugin_checks.games import EPS, FAMILIES, GameFamily, largest, with_equilibria
from did_core.plugin_checks.reference import reference_joint
from did_core.plugins import exact_block_for, registry

__all__ = ["block_checks", "BlockFactory", "preferred_exact_factory", "shapes_and_padding", "invariance",
           "agrees_with_reference", "gradients", "size_guard", "FEASIBLE", "AGREE"]

#: Makes a block: its class, or the factory a plugin registers (called with options such as ``max_memory_gb``).
BlockFactory = Callable[..., EquilibriumBlock]

#: The most an exact block's answer may exceed a row's tolerance (payoffs of unit scale).
FEASIBLE = 1e-7
#: The most an exact block's joint may differ from the reference's. The reference is certified to a KKT residual
#: of 1e-8 and then lies within about 1e-8 of the exact joint; ECOS's joints are accurate to 1e-9..2e-8. The rest is
#: room for the conditioning of a game's active rows.
AGREE = 1e-6
#: 2-player 3x3 games for the invariance check.
SQUARE = GameFamily("2-player 3x3 games", (3, 3), ((3, 3), (3, 3)))


def preferred_exact_factory(concept: Concept) -> BlockFactory:
    """The factory of the preferred installed exact block for ``concept`` (:func:`did_core.plugins.exact_block_for`)."""
    return registry("blocks").get(exact_block_for(concept.name)).value


def _solve(block: EquilibriumBlock, games: Tensor, mask: Tensor | None, concept: Concept) -> Equilibrium:
    return block(games, mask, concept=concept, eps=EPS)


def _exact(factory: BlockFactory) -> bool:
    return capabilities_of(factory).exact


def shapes_and_padding(factory: BlockFactory, concept: Concept) -> None:
    """See the module docstring, *shapes and padding*."""
    block, answered = factory(), []
    for family in FAMILIES:
        games, mask = with_equilibria(family.draw, concept, 0)
        try:
            eq = _solve(block, games, mask, concept)
        except ValueError as error:
            expect(not _exact(factory), f"an exact block must answer {family.name}, got: {one_line(error)}")
            expect("\n" not in str(error), f"{family.name} refused in more than one line: {str(error)!r}")
            continue
        _check_answer(family, games, mask, concept, eq, _exact(factory))
        _check_cut(block, family, games, mask, concept, eq)
        answered.append(family.name)
    expect(answered, f"the block refused every kind of game ({', '.join(f.name for f in FAMILIES)})")


def _check_answer(family: GameFamily, games: Tensor, mask: Tensor, concept: Concept, eq: Equilibrium,
                  exact: bool) -> None:
    """The answer ``eq`` for ``games`` of ``family``: shapes, a distribution, zero on padding, feasible if exact."""
    batch = len(games)
    sigma = eq.sigma.detach().double()
    expect(tuple(sigma.shape) == (batch, *family.sizes), f"{family.name}: sigma has shape {list(sigma.shape)}, "
           f"expected {[batch, *family.sizes]}")
    expect(eq.concept == concept, f"{family.name}: the answer names concept {eq.concept!r}, not {concept!r}")
    expect(bool((sigma >= 0).all()), f"{family.name}: sigma has negative entries (min {float(sigma.min()):.3g})")
    total = sigma.flatten(1).sum(dim=1)
    expect(torch.allclose(total, torch.ones_like(total), atol=1e-9, rtol=0),
           f"{family.name}: sigma sums to {total.tolist()}, not 1")
    padded = largest(sigma[~joint_mask(mask, family.sizes)])
    expect(padded == 0, f"{family.name}: mass {padded:.3g} on padded joint actions")
    missing = {"gap", "violation", "entropy"} - set(eq.info)
    expect(not missing, f"{family.name}: info lacks {', '.join(sorted(missing))}")
    wrong = [k for k, v in eq.info.items() if v.shape[:1] != (batch,)]
    expect(not wrong, f"{family.name}: info {', '.join(wrong)} not one value per game")
    if eq.alpha is not None:
        shape = (batch, *concept.dual_shape(family.sizes))
        expect(tuple(eq.alpha.shape) == shape, f"{family.name}: alpha has shape {list(eq.alpha.shape)}, expected "
               f"{list(shape)}")
    if exact:
        cons = constraints(games, mask, concept, EPS)
        excess = largest((cons.operator.regrets(sigma.reshape(batch, -1)) - cons.eps)[cons.rows].clamp_min(0))
        expect(excess <= FEASIBLE, f"{family.name}: a row exceeds its tolerance by {excess:.3g} (> {FEASIBLE:g})")


def _check_cut(block: EquilibriumBlock, family: GameFamily, games: Tensor, mask: Tensor, concept: Concept,
               eq: Equilibrium) -> None:
    """Padding changes no answer: each padded game cut to its real actions gets the joint it got padded."""
    for b, counts in enumerate(family.real):
        if tuple(counts) == family.sizes:
            continue
        real = (slice(None), *(slice(0, n) for n in counts))
        alone = _solve(block, games[b:b + 1][(slice(None), *real)], None, concept).sigma.detach().double()
        padded = eq.sigma.detach().double()[b:b + 1][(slice(None), *real[1:])]
        expect(torch.allclose(alone, padded, atol=1e-6, rtol=0),
               f"{family.name}: game {b} padded gets a joint {float((alone - padded).abs().max()):.3g} away from "
               f"the one it gets cut to its real actions")


def invariance(factory: BlockFactory, concept: Concept) -> None:
    """See the module docstring, *invariance*."""
    block = factory()
    games, _ = with_equilibria(SQUARE.draw, concept, 1)
    a = _solve(block, games, None, concept).sigma.detach()
    b = _solve(block, embed(games, full_mask(games)) * 3.0, None, concept).sigma.detach()
    expect(torch.allclose(a, b, atol=1e-5), f"the joints of G and 3 Phi(G) differ by {float((a - b).abs().max()):.3g}")


def agrees_with_reference(factory: BlockFactory, concept: Concept) -> None:
    """See the module docstring, *agreement with an independent solver*."""
    if not _exact(factory):
        raise NotApplicable("an approximate block (Capabilities.exact is false) is not held to the exact answer")
    block = factory()
    for family in FAMILIES:
        games, mask = with_equilibria(family.draw, concept, 2)
        sigma = _solve(block, games, mask, concept).sigma.detach().double()
        off = float((sigma - reference_joint(games, mask, concept, EPS)).abs().max())
        expect(off <= AGREE, f"{family.name}: the joint is {off:.3g} away from the independent solver's (> {AGREE:g})")


def _nondegenerate(games: Tensor, mask: Tensor, concept: Concept) -> bool:
    """Whether every real row is clearly active (``alpha_k c > 1e-3``) or clearly slack (``(eps_k - D_k sigma) / c
    > 1e-3``, ``c`` the game's largest |gain|) at the exact eps-ME: the active set then stays the same within a
    finite-difference step of 1e-4, and the answer is smooth there."""
    eq = _solve(preferred_exact_factory(concept)(), games, mask, concept)
    cons = constraints(games, mask, concept, EPS)
    c = cons.operator.scale().unsqueeze(1)
    alpha = eq.alpha.reshape(len(games), -1)
    slack = cons.eps - cons.operator.regrets(eq.sigma.reshape(len(games), -1))
    clear = (alpha * c > 1e-3) | (slack / c > 1e-3)
    return bool(clear[cons.rows].all())


def gradients(factory: BlockFactory, concept: Concept, quick: bool = False) -> None:
    """The gradient a block back-propagates equals central finite differences of its answer (a 2x3 game; 2x2 when
    ``quick``).

    Two things make finite differences of an exact block's answer wrong whatever its gradient:

    * a kink: at a degenerate active set (a row nearly active with a multiplier near 0) a step
      straddles the change of active set. The game is one where every row is clearly active or
      clearly slack (:func:`_nondegenerate`);
    * the forward answer's own error ``delta``: central differences of answers accurate to ``delta``
      are off by up to ``delta / h`` (the errors at ``g + h`` and ``g - h`` do not cancel).
      ``exact_newton`` stops at a KKT residual of 1e-10, but ECOS's joints (its exponential cone)
      are accurate only to 1e-9..2e-8, which at ``h = 1e-4`` is up to 2e-4: the 2.7e-5 > 1e-5 seen
      with a concept that keeps fewer rows. So the tolerance adds ``4 delta / h``, ``delta`` the
      exact block's distance to the preferred exact block's answer (at least 1e-10, that block's own
      accuracy); an approximate block's answer is a smooth function computed to rounding (``delta``
      0). A larger step would shrink that term but straddle more active sets; 1e-4 is kept.
    """
    block = factory()
    family = GameFamily("a 2-player game", (2, 2) if quick else (2, 3), ((2, 2) if quick else (2, 3),))
    games, _ = with_equilibria(family.draw, concept, 2, partial(_nondegenerate, concept=concept))
    step, delta = 1e-4, 0.0
    if _exact(factory):
        preferred = _solve(preferred_exact_factory(concept)(), games, None, concept).sigma
        delta = max(float((_solve(block, games, None, concept).sigma - preferred).abs().max()), 1e-10)
    games.requires_grad_(True)
    try:
        passed = torch.autograd.gradcheck(lambda g: _solve(block, g, None, concept).sigma, (games,), eps=step,
                                          atol=1e-5 + 4 * delta / step, rtol=1e-3, raise_exception=False)
    except RuntimeError as error:  # e.g. a block whose answer does not depend on the payoffs through autograd
        raise CheckFailed(f"gradcheck could not run: {one_line(error)}") from None
    expect(passed, f"the back-propagated gradient differs from central finite differences (step {step:g}, atol "
           f"{1e-5 + 4 * delta / step:.3g}, rtol 1e-3)")


def size_guard(factory: BlockFactory, concept: Concept) -> None:
    """See the module docstring, *size guard*: an estimate is a positive number, and ``max_memory_gb`` below it
    refuses the call with one :class:`~did_core.blocks.SolveTooLarge` line naming the block."""
    games, mask = SQUARE.draw(3)
    block = factory()
    size = SolveSize.of(constraints(games, mask, concept, EPS), grad=True)
    estimate = block.memory_bytes(size)
    if estimate is None:
        raise NotApplicable("the block does not estimate its memory (memory_bytes returns None)")
    expect(0 < estimate < 2**30, f"estimates {estimate:.3g} bytes for two 3x3 games")
    try:
        _solve(factory(max_memory_gb=estimate / 2**31), games.requires_grad_(True), mask, concept)
    except SolveTooLarge as error:
        message = str(error)
        expect("\n" not in message and f"block {block.name!r}" in message,
               f"the refusal is not one line naming block {block.name!r}: {message!r}")
        return
    raise CheckFailed(f"max_memory_gb {estimate / 2**31:.3g} (half the estimate) did not refuse the call")


def block_checks(factory: BlockFactory, concept: Concept, quick: bool = False, name: str | None = None
                 ) -> list[Check]:
    """The checks of the block ``factory()`` under ``concept`` (a concept it supports); ``name``: the name it is
    registered under (default: the factory's ``name`` attribute), ``quick``: a smaller gradcheck."""
    subject = f"block {name or getattr(factory, 'name', factory)} with {concept.name}"
    return [
        Check(subject, "shapes, distributions, zero mass on padding", partial(shapes_and_padding, factory, concept)),
        Check(subject, "invariant to the payoff embedding", partial(invariance, factory, concept)),
        Check(subject, "agrees with an independent solver", partial(agrees_with_reference, factory, concept)),
        Check(subject, "double-precision gradcheck", partial(gradients, factory, concept, quick)),
        Check(subject, "size guard in one line", partial(size_guard, factory, concept)),
    ]

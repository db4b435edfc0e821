"""The inverse generator: the target's log-likelihood game plus a P2P correction."""

import math

import torch

from did_core.plugins import get_concept
from did_core.games import joint_mask
from did_core.nn.generators import PayoffGenerator
from did_inverse.generator import InverseGenerator
from did_inverse.task import InverseObjective, InverseSampler


def _context(seed: int = 0, batch: int = 6):
    sampler = InverseSampler(min_actions=2, max_actions=5, features="scaled")
    return sampler, sampler.sample(batch, torch.Generator().manual_seed(seed))


def test_output_is_the_correction_plus_the_weighted_log_likelihood_game():
    sampler, context = _context()
    torch.manual_seed(1)
    generator = InverseGenerator(sampler, width=8, depth=1, prior_weight=0.7)
    torch.manual_seed(1)
    plain = PayoffGenerator(sampler, width=8, depth=1, output="identity")
    game = generator(context)
    mask = context["mask"]
    real = joint_mask(mask, game.shape[2:])
    for b in range(game.shape[0]):
        n1, n2 = (int(v) for v in mask[b].sum(-1))
        tau = context["target"][b, :n1, :n2]
        expected = 0.7 * torch.log((n1 * n2 * tau).clamp_min(1e-4))  # plain loop: log(|A| tau), clamped
        for p in range(2):
            assert torch.allclose(game[b, p, :n1, :n2] - plain(context)[b, p, :n1, :n2], expected, atol=1e-5)
    assert not game.transpose(0, 1)[:, ~real].any()  # padding is exactly 0


def test_prior_weight_zero_is_the_plain_generator_and_the_weight_is_learned():
    sampler, context = _context(2)
    torch.manual_seed(3)
    off = InverseGenerator(sampler, width=8, depth=1, prior_weight=0.0)
    torch.manual_seed(3)
    plain = PayoffGenerator(sampler, width=8, depth=1, output="identity")
    assert torch.equal(off(context), plain(context))
    on = InverseGenerator(sampler, width=8, depth=1)
    on(context).pow(2).sum().backward()
    assert on.prior.grad is not None and math.isfinite(float(on.prior.grad))


def test_the_prior_game_starts_closer_to_the_target_than_the_uniform_game():
    """At init (correction switched off) the log-likelihood game's eps-ME CCE beats the uniform joint."""
    from did_core.equilibria import Epsilon
    from did_core.plugins import create

    sampler = InverseSampler(min_actions=4, max_actions=8, features="scaled")
    context = sampler.sample(16, torch.Generator().manual_seed(5))
    generator = InverseGenerator(sampler, width=8, depth=1)
    for p in generator.head.parameters():  # the correction is 0: the game is the prior alone
        torch.nn.init.zeros_(p)
    objective = InverseObjective()
    with torch.no_grad():
        games, mask = objective.induce(context, generator(context))
        eq = create("blocks", "exact_newton")(games.double(), mask, concept=get_concept("cce"), eps=Epsilon(0.05))
        uniform = create("blocks", "exact_newton")(torch.zeros_like(games).double(), mask, concept=get_concept("cce"),
                                                   eps=Epsilon(0.05))
    prior_kl = objective.value(context, generator(context), eq).mean()
    uniform_kl = objective.value(context, generator(context), uniform).mean()
    assert prior_kl < 0.8 * uniform_kl

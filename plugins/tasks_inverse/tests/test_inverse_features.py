"""The inverse sampler's scaled generator input: O(1) at every size, zero on padding."""

import torch

from did_core.games import joint_mask
from did_inverse.task import InverseSampler


def test_scaled_features_are_centred_per_game_and_zero_on_padding():
    sampler = InverseSampler(min_actions=2, max_actions=9, features="scaled")
    context = sampler.sample(16, torch.Generator().manual_seed(4))
    features, mask = sampler.payoff_features(context)
    assert features.shape[:3] == (16, 3, 2)
    real = joint_mask(mask, features.shape[3:])
    log_relative, centred, noise = features[:, 0, 0], features[:, 1, 0], features[:, 2, 0]
    # |A| tau - 1 sums to 0 over the real joint actions of every game (tau sums to 1 there).
    assert torch.allclose(centred.sum(dim=(1, 2)), torch.zeros(16), atol=1e-4)
    assert torch.allclose(torch.exp(log_relative[real]), (centred + 1)[real].clamp_min(1e-4), rtol=1e-4)
    assert torch.equal(noise, context["noise"])
    for channel in range(3):
        assert not features[:, channel, 0][~real].any()
    assert torch.equal(features[:, :, 0], features[:, :, 1])  # every player sees the same context


def test_raw_features_are_the_context_itself():
    sampler = InverseSampler(min_actions=2, max_actions=4)
    context = sampler.sample(3, torch.Generator().manual_seed(1))
    features, _ = sampler.payoff_features(context)
    assert torch.equal(features[:, 0, 1], context["target"]) and torch.equal(features[:, 1, 0], context["noise"])

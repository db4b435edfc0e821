"""Batched normal-form games with action masks, the equilibrium-invariant embedding and random games.

Conventions used everywhere in DID (docs/mathematics.md, section 1):

* A batch of games is a payoff tensor ``G`` of shape ``[B, N, A_1, ..., A_N]``;
  ``G[b, p][a]`` is player ``p``'s payoff at joint action ``a`` in game ``b``.
* Mixed sizes are padded: ``mask`` has shape ``[B, N, A_max]`` (``A_max = max_p A_p``),
  true where the action is real. ``mask=None`` means every action is real.
  Real actions of a player always come first (a player with ``k`` real actions
  uses indices ``0..k-1``).
* ``joint_mask`` has shape ``[B, A_1, ..., A_N]``: true where every player's action is real.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "action_shape",
    "check_games",
    "full_mask",
    "joint_mask",
    "excess_over_line_minimum",
    "player_scale",
    "embed",
    "normal_games",
    "embedded_games",
    "random_sizes_mask",
    "padded_random_games",
    "CLASSIC_GAMES",
    "classic_game",
]


def action_shape(games: Tensor) -> tuple[int, ...]:
    """The padded action counts ``(A_1, ..., A_N)`` of a batch ``[B, N, A_1..A_N]``."""
    return tuple(games.shape[2:])


def check_games(games: Tensor, mask: Tensor | None = None) -> Tensor:
    """Validate a batch of games and its mask; return the mask (built when ``None``).

    Raises ``ValueError`` with one line naming the problem: wrong rank, players
    and action axes disagreeing, non-finite payoffs, a mask of the wrong shape or
    a player with no real action.
    """
    if not isinstance(games, Tensor):
        raise ValueError(f"games must be a torch.Tensor, got {type(games).__name__}")
    if games.dim() < 3:
        raise ValueError(f"games must have shape [B, N, A_1..A_N], got {tuple(games.shape)}")
    n_players = games.shape[1]
    if games.dim() != 2 + n_players:
        raise ValueError(
            f"games of shape {tuple(games.shape)} declare N={n_players} players "
            f"but have {games.dim() - 2} action axes"
        )
    if min(games.shape[2:]) < 1:
        raise ValueError(f"every player needs at least one action, got action shape {tuple(games.shape[2:])}")
    if not games.is_floating_point():
        raise ValueError(f"games must be floating point, got {games.dtype}")
    if not torch.isfinite(games).all():
        raise ValueError("games contain NaN or infinite payoffs")
    if mask is None:
        return full_mask(games)
    expected = (games.shape[0], n_players, max(games.shape[2:]))
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask must have shape {list(expected)}, got {list(mask.shape)}")
    mask = mask.to(device=games.device, dtype=torch.bool)
    for p, size in enumerate(games.shape[2:]):
        if mask[:, p, size:].any():
            raise ValueError(f"mask marks actions of player {p} beyond its axis length {size}")
    if not mask[:, :, 0].all():
        raise ValueError("every player needs at least one real action (mask[:, p, 0] must be true)")
    return mask


def full_mask(games: Tensor) -> Tensor:
    """The mask ``[B, N, A_max]`` of a batch in which every action on each axis is real."""
    batch, n_players = games.shape[:2]
    sizes = action_shape(games)
    a_max = max(sizes)
    index = torch.arange(a_max, device=games.device)
    per_player = index.unsqueeze(0) < torch.tensor(sizes, device=games.device).unsqueeze(1)
    return per_player.unsqueeze(0).expand(batch, n_players, a_max).clone()


def joint_mask(mask: Tensor, sizes: Sequence[int]) -> Tensor:
    """Real joint actions ``[B, A_1..A_N]`` from per-player masks ``[B, N, A_max]``."""
    n_players = len(sizes)
    out = None
    for p, size in enumerate(sizes):
        view = [mask.shape[0]] + [1] * n_players
        view[1 + p] = size
        m = mask[:, p, :size].reshape(view)
        out = m if out is None else out & m
    assert out is not None
    return out.expand(mask.shape[0], *sizes)


def excess_over_line_minimum(values: Tensor, mask: Tensor) -> Tensor:
    """Per player ``p`` and others' actions ``a_{-p}``: ``values`` minus their minimum over ``p``'s real actions.

    Why: adding to player ``p``'s payoffs any function of ``a_{-p}`` changes no
    deviation gain, so no equilibrium; this removes that free level, leaving a 0
    on every own-action line. ``values [B, N, A_1..A_N]``, ``mask [B, N, A_max]``;
    returns the same shape, ``>= 0``, 0 on padded cells.
    """
    real = joint_mask(mask, values.shape[2:])
    out = []
    for p in range(values.shape[1]):
        low = values[:, p].masked_fill(~real, float("inf")).amin(dim=1 + p, keepdim=True)
        out.append(torch.where(real, values[:, p] - low, torch.zeros_like(values[:, p])))
    return torch.stack(out, dim=1)


def _own_action_stats(games: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per-player payoffs centred over own real actions, and the joint mask.

    Returns ``centred [B, N, A_1..A_N]`` (zero on padded entries) and
    ``jm [B, A_1..A_N]``.
    """
    sizes = action_shape(games)
    jm = joint_mask(mask, sizes)
    weights = jm.to(games.dtype)
    centred = []
    for p in range(len(sizes)):
        g = games[:, p] * weights
        count = weights.sum(dim=1 + p, keepdim=True).clamp_min(1.0)
        mean = g.sum(dim=1 + p, keepdim=True) / count
        centred.append((games[:, p] - mean) * weights)
    return torch.stack(centred, dim=1), jm


def player_scale(games: Tensor, mask: Tensor | None = None) -> Tensor:
    """The scale ``s_p(G)`` of docs/mathematics.md, section 3.1, shape ``[B, N]``.

    RMS over real entries of ``G[p]`` after removing, for every ``a_{-p}``, its
    mean over ``p``'s own real actions. Zero for a player whose payoff does not
    depend on its own action (e.g. a player with a single action).
    """
    mask = check_games(games, mask) if mask is None else mask
    centred, jm = _own_action_stats(games, mask)
    count = jm.flatten(1).sum(dim=1).to(games.dtype).clamp_min(1.0)
    mean_square = centred.pow(2).flatten(2).sum(dim=2) / count.unsqueeze(1)
    # sqrt has an infinite derivative at 0: keep gradients finite for indifferent players.
    return torch.where(mean_square > 0, mean_square.clamp_min(1e-300).sqrt(), torch.zeros_like(mean_square))


def embed(games: Tensor, mask: Tensor | None = None) -> Tensor:
    """The equilibrium-invariant embedding ``Phi(G)``, same shape as ``games``.

    Each player's payoffs are centred over its own real actions and scaled to
    RMS 1 over real entries; padded entries are 0. A player with scale 0 maps to
    all zeros. Deviation gains of ``Phi(G)`` are those of ``G`` divided by ``s_p``.
    """
    mask = check_games(games, mask) if mask is None else mask
    centred, _ = _own_action_stats(games, mask)
    scale = player_scale(games, mask)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    view = list(scale.shape) + [1] * (games.dim() - 2)
    return centred / safe.reshape(view)


def normal_games(
    batch: int,
    sizes: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """I.i.d. standard normal payoffs ``[batch, N, *sizes]`` with ``N = len(sizes)``."""
    shape = (batch, len(sizes), *sizes)
    return torch.randn(shape, generator=generator, dtype=dtype, device="cpu").to(device)


def embedded_games(
    batch: int,
    sizes: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Normal games passed through ``Phi``: the distribution a learned block trains on."""
    return embed(normal_games(batch, sizes, generator=generator, dtype=dtype, device=device))


def random_sizes_mask(
    batch: int,
    n_players: int,
    min_actions: int,
    max_actions: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """A mask ``[batch, N, max_actions]`` with each player's size drawn from ``U{min..max}``."""
    if not 1 <= min_actions <= max_actions:
        raise ValueError(f"need 1 <= min_actions <= max_actions, got {min_actions}, {max_actions}")
    counts = torch.randint(min_actions, max_actions + 1, (batch, n_players), generator=generator)
    mask = torch.arange(max_actions).view(1, 1, -1) < counts.unsqueeze(-1)
    return mask.to(device)


def padded_random_games(
    batch: int,
    n_players: int,
    min_actions: int,
    max_actions: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    embedded: bool = True,
) -> tuple[Tensor, Tensor]:
    """Games of mixed sizes padded to ``max_actions``: ``(games [B, N, A..], mask [B, N, A])``.

    Payoffs are standard normal on real entries (embedded with ``Phi`` when
    ``embedded``) and 0 on padded ones.
    """
    mask = random_sizes_mask(batch, n_players, min_actions, max_actions, generator=generator)
    games = normal_games(batch, [max_actions] * n_players, generator=generator, dtype=dtype)
    games, mask = games.to(device), mask.to(device)
    jm = joint_mask(mask, [max_actions] * n_players).unsqueeze(1)
    games = games * jm
    return (embed(games, mask) if embedded else games), mask


def _two_player(row: list[list[float]], col: list[list[float]]) -> Tensor:
    return torch.tensor([row, col], dtype=torch.float64)


def _three_player_coordination() -> Tensor:
    """Three players choose 0/1; each earns 1 when it matches the majority, else 0."""
    g = torch.zeros(3, 2, 2, 2, dtype=torch.float64)
    for a in range(2):
        for b in range(2):
            for c in range(2):
                acts = (a, b, c)
                majority = int(sum(acts) >= 2)
                for p in range(3):
                    g[p, a, b, c] = float(acts[p] == majority)
    return g


CLASSIC_GAMES: dict[str, Callable[[], Tensor]] = {
    # Actions: (cooperate, defect). Defect strictly dominates: unique CE/CCE is (D, D).
    "prisoners_dilemma": lambda: _two_player([[3, 0], [5, 1]], [[3, 5], [0, 1]]),
    # Actions: (swerve, straight).
    "chicken": lambda: _two_player([[6, 2], [7, 0]], [[6, 7], [2, 0]]),
    # Actions: (opera, football).
    "battle_of_sexes": lambda: _two_player([[3, 0], [0, 2]], [[2, 0], [0, 3]]),
    # Unique CE (and CCE) is uniform.
    "matching_pennies": lambda: _two_player([[1, -1], [-1, 1]], [[-1, 1], [1, -1]]),
    "rock_paper_scissors": lambda: _two_player(
        [[0, -1, 1], [1, 0, -1], [-1, 1, 0]], [[0, 1, -1], [-1, 0, 1], [1, -1, 0]]
    ),
    "three_player_majority": _three_player_coordination,
}


def classic_game(name: str) -> Tensor:
    """A named classic game ``[N, A_1..A_N]`` (float64); see ``CLASSIC_GAMES``."""
    try:
        return CLASSIC_GAMES[name]()
    except KeyError:
        known = ", ".join(sorted(CLASSIC_GAMES))
        raise ValueError(f"unknown classic game {name!r}; known: {known}") from None


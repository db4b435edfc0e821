"""The learned equilibrium block ``deb_marris`` (docs/mathematics.md, section 4.5).

An equivariant network (:mod:`did_deb_marris.network`) maps the embedding
``Phi(G)`` to the dual ``alpha_Phi`` of the embedded game; the joint is
``sigma = softmax(log target - sum_k alpha_k D_k)``, so it is always a
distribution, with zero mass on padded joint actions.

**Scale.** The gains of ``Phi(G)`` are those of ``G`` divided by ``s_p(G)`` and the
relative tolerance of ``Phi(G)`` is ``eps_rel`` (its scale is 1). With
``alpha_k = alpha_Phi,k / s_{p(k)}`` the logits and the eps term of the dual of ``G``
(``eps_p = eps_rel s_p``) equal those of ``Phi(G)``: same ``sigma``, same ``f``. So
the block returns ``alpha = alpha_Phi / s_p`` (0 for a player with ``s_p = 0``,
whose gains are all 0) and serves any game under *relative* epsilon.

**Epsilon.** Weights are trained for one relative ``eps_rel`` (stored in the
checkpoint, 0.05 for the shipped ones). Asking for an absolute epsilon or another
value raises ``ValueError`` (a network answer for the wrong program would be
silently wrong); so does a game with more actions than the weights' ``max_actions``
or a player count other than the one trained for.

Weights files are ``torch.save`` of plain data: ``{"format": "did-deb-marris/1",
"model": state_dict, "meta": {"concept", "max_actions", "n_players", "eps_rel",
"net": NetConfig fields, ...}}`` and are loaded with ``weights_only=True``.

Example::

    >>> import torch
    >>> from did_core.games import classic_game
    >>> from did_deb_marris import DebMarrisBlock
    >>> from did_core.plugins import get_concept
    >>> eq = DebMarrisBlock()(classic_game("chicken").unsqueeze(0), concept=get_concept("ce"), eps=0.05)
    >>> eq.sigma.shape, eq.alpha.shape
    (torch.Size([1, 2, 2]), torch.Size([1, 2, 2, 2]))
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from did_core.blocks import Capabilities, Equilibrium, EquilibriumBlock
from did_core.equilibria import Constraints, Epsilon, constraints, joint_from_dual
from did_core.games import embed, player_scale
from did_deb_marris.network import DebMarrisNet, NetConfig

__all__ = ["DebMarrisBlock", "WeightsError", "load_weights", "shipped_weights", "save_weights", "FORMAT"]

FORMAT = "did-deb-marris/1"


class WeightsError(ValueError):
    """A weights file that is missing, unreadable or not a deb_marris checkpoint."""


def _weights_folder() -> Path:
    return Path(str(resources.files("did_deb_marris").joinpath("weights")))


#: The concepts the package ships weights for (one file ``weights/<concept>.pt`` each).
SHIPPED_CONCEPTS: tuple[str, ...] = tuple(sorted(p.stem for p in _weights_folder().glob("*.pt")))


def shipped_weights(concept: str) -> Path:
    """Path of the weights shipped inside the package for ``concept``."""
    if concept not in SHIPPED_CONCEPTS:
        raise ValueError(f"deb_marris ships no weights for concept {concept!r}; shipped: "
                         f"{', '.join(SHIPPED_CONCEPTS)}")
    return _weights_folder() / f"{concept}.pt"


def save_weights(path: str | Path, net: DebMarrisNet, meta: dict[str, Any]) -> None:
    """Write a weights file: the float32 model state and plain metadata."""
    from did_core.runs import atomic_write_bytes
    import io

    state = {k: v.detach().to("cpu", torch.float32).clone() for k, v in net.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "model": state, "meta": {**meta, "concept": net.concept.name,
                                                            "net": net.config.to_dict()}}, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> tuple[DebMarrisNet, dict[str, Any]]:
    """Load a weights file (``weights_only=True``); return the network (eval mode) and its metadata."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"deb_marris weights file not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise WeightsError(f"cannot load deb_marris weights {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "model" not in data or "meta" not in data:
        raise WeightsError(f"{path} is not a deb_marris weights file (expected format {FORMAT!r}; "
                           "export a training run with `did deb export RUN_DIR OUT.pt`)")
    meta = data["meta"]
    try:
        net = DebMarrisNet(NetConfig(**meta["net"]))
        net.load_state_dict(data["model"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise WeightsError(f"{path}: weights do not match the network they describe: {exc}") from None
    return net.to(device).eval(), meta


class DebMarrisBlock(EquilibriumBlock):
    """Learned eps-ME (C)CE block; differentiable by autograd through the network.

    **Options:** ``weights`` -- a weights file, used for the concept it was trained
    for (default: the shipped ``ce.pt`` / ``cce.pt``, loaded on first use per
    concept); ``device`` -- where the network runs (default: the games' device).
    Networks run in the games' dtype. One network per concept is kept.
    """

    name = "deb_marris"
    capabilities = Capabilities(exact=False, concepts=SHIPPED_CONCEPTS)

    def __init__(self, weights: str | None = None, device: str | None = None) -> None:
        self.device = torch.device(device) if device is not None else None
        self._nets: dict[str, tuple[DebMarrisNet, dict[str, Any]]] = {}
        self.weights = None if weights is None else str(weights)
        if weights is not None:
            net, meta = load_weights(weights)
            self._nets[net.concept.name] = (net, meta)
            self.capabilities = Capabilities(exact=False, concepts=(net.concept.name,))

    def network(self, concept: str) -> tuple[DebMarrisNet, dict[str, Any]]:
        """The network serving ``concept`` and its metadata (loading the shipped weights if needed)."""
        if concept not in self._nets:
            if self.weights is not None:
                have = ", ".join(self._nets)
                raise ValueError(f"deb_marris weights {self.weights} serve concept {have}, not {concept!r}; "
                                 "pass weights trained for it (or none, for the shipped ones)")
            self._nets[concept] = load_weights(shipped_weights(concept))
        return self._nets[concept]

    def _check(self, games: Tensor, concept: str, eps: Epsilon, meta: dict[str, Any]) -> None:
        if not eps.relative:
            raise ValueError("deb_marris serves relative epsilon only (its network sees the embedded game); "
                             "use an exact block for an absolute epsilon")
        if not math.isclose(eps.value, float(meta["eps_rel"]), rel_tol=1e-6):
            raise ValueError(f"deb_marris weights for {concept} were trained for eps_rel={meta['eps_rel']}, "
                             f"asked for eps={eps.value}; use an exact block or weights trained for it")
        n_players = int(meta.get("n_players", 2))
        if games.shape[1] != n_players:
            raise ValueError(f"deb_marris weights for {concept} serve {n_players}-player games, "
                             f"got {games.shape[1]} players")
        if max(games.shape[2:]) > int(meta["max_actions"]):
            raise ValueError(f"deb_marris weights for {concept} serve up to {meta['max_actions']} actions "
                             f"per player, got a game with {max(games.shape[2:])}")

    def solve(self, games: Tensor, mask: Tensor, cons: Constraints, alpha0: Tensor | None) -> Equilibrium:
        concept, eps = cons.concept.name, cons.epsilon
        net, meta = self.network(concept)
        self._check(games, concept, eps, meta)
        device = self.device or games.device
        net = net.to(device=device, dtype=games.dtype)
        x, m = games.to(device), mask.to(device)
        phi = embed(x, m)
        alpha_phi = net(phi, m)
        batch = games.shape[0]
        cons_phi = constraints(phi, m, cons.concept, Epsilon(eps.value))
        sigma = joint_from_dual(alpha_phi.reshape(batch, -1), cons_phi)
        scale = player_scale(x, m)
        inv = torch.where(scale > 0, 1.0 / scale.clamp_min(1e-300), torch.zeros_like(scale))
        alpha = alpha_phi * inv.reshape(*inv.shape, *([1] * (alpha_phi.dim() - 2)))
        sigma = sigma.reshape(batch, *cons.sizes).to(games.device)
        return Equilibrium(sigma=sigma, alpha=alpha.to(games.device), eps=eps.per_player(games.detach(), mask),
                           concept=cons.concept, info={})

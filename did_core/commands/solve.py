"""``did solve GAME``: the eps-maximum-entropy equilibrium of one game, with its gap and violation.

A Bayesian game file (a ``.json`` with a ``"prior"``, :mod:`did_core.game_io.bayesian_format`) is solved as its
agent-normal form (:mod:`did_core.bayesian`): the eps-ME B-CCE (``--concept cce``) or B-CE (``ce``), reported
as each type's strategy, with the joint over the agents (one per player and type) in ``--json``.

The game is solved as ``game / s`` with ``s`` a power of two (the largest payoff brought into [0.5, 1)): the
same equilibria, far from float64's limits; gap, violation and eps are reported in
the game's units. An answer that is not finite, did not converge, or (exact blocks)
violates its tolerance is an error, never printed as an equilibrium.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from did_core.console import ArgumentParser, Command, fail, format_joint, nonempty, yaml_mapping
from did_core.equilibria import Epsilon
from did_core.bayesian import BayesianGames
from did_core.game_io import BayesianLabels, load_game_or_bayesian
from did_core.hookspecs import hookimpl
from did_core.plugins import DEFAULT_CONCEPT, create, exact_block_for, get_concept
from did_core.registry import Registry

__all__ = ["build_parser", "main", "solve", "COMMAND"]


def build_parser() -> ArgumentParser:
    """The arguments of ``did solve``."""
    p = ArgumentParser(prog="did solve")
    p.add_argument("game", help="a .json ({\"payoffs\": [...]}, a Bayesian game with a \"prior\" too), .npy or "
                   "Gambit .nfg file")
    p.add_argument("--block", type=nonempty, help="equilibrium block (default: the preferred installed exact block)")
    p.add_argument("--block-options", type=yaml_mapping, default={}, metavar="YAML",
                   help="options of the block, e.g. '{max_memory_gb: 32}' to let it take on larger games")
    p.add_argument("--concept", type=nonempty, default=DEFAULT_CONCEPT,
                   help=f"equilibrium concept (did plugins lists them; "
                   f"default {DEFAULT_CONCEPT})")
    p.add_argument("--concept-options", type=yaml_mapping, default={}, metavar="YAML",
                   help="options of the concept, e.g. '{cap: 0.3}' (did plugins lists them)")
    p.add_argument("--eps", type=float, default=0.05)
    p.add_argument("--absolute", action="store_true", help="eps is absolute, not relative to the payoff scale")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def main(argv: list[str]) -> int:
    """``did solve GAME [options]``."""
    return solve(build_parser().parse_args(argv))


def solve(args: argparse.Namespace) -> int:
    """``did solve`` on parsed arguments; returns the exit code (user errors: one line, 2)."""
    concept = get_concept(args.concept, args.concept_options)
    eps = Epsilon(args.eps, relative=not args.absolute)
    args.block = args.block or exact_block_for(concept.name)
    block = create("blocks", args.block, **args.block_options)
    game, labels = load_game_or_bayesian(Path(args.game))
    bayesian = game if isinstance(game, BayesianGames) else None
    mask = None
    if bayesian is not None:
        anf, mask = bayesian.agent_normal_form()
        game = anf[0]
    scale = _unit_scale(game)  # solved as game / scale: the same equilibria, far from float64's limits
    if args.absolute:  # an eps over every deviation gain (< 4 once scaled) leaves the same (vacuous) constraints
        if args.eps / scale < sys.float_info.min:
            return fail(f"--eps {args.eps:g} is too small for payoffs as large as {float(game.abs().max()):.3g}: "
                        f"their ratio is below float64's range")
        eps = Epsilon(min(args.eps / scale, 4.0), relative=False)
    eq = block((game / scale).unsqueeze(0), mask, concept=concept, eps=eps)
    sigma = eq.sigma[0].detach().double()
    report = {
        "players": list(labels.players),
        "actions": [list(row) for row in labels.actions],
        **(_bayesian_entries(bayesian, labels, sigma) if bayesian is not None else {}),
        "joint": sigma.tolist(),
        "gap": float(eq.info["gap"][0]),
        "violation": float(eq.info["violation"][0]),
        "entropy": float(eq.info["entropy"][0]),
        "eps": eq.eps[0].tolist(),
    }
    if "active" in eq.info:
        report["active_constraints"] = int(eq.info["active"][0])
    problem = _solve_problem(block, eq, report)
    if problem:
        return fail(f"{args.block} on {args.game}: {problem}")
    report["gap"], report["violation"] = report["gap"] * scale, report["violation"] * scale  # the game's units
    report["eps"] = [args.eps] * len(report["eps"]) if args.absolute else [e * scale for e in report["eps"]]
    if not all(math.isfinite(e) for e in report["eps"]):
        return fail(f"--eps {args.eps:g} is too large: the tolerance it gives each player is beyond float64's range")
    if bayesian is not None:  # the padded types' agents are no player's: their tolerance is not reported
        report["eps"] = [e for e, real in zip(report["eps"], bayesian.type_mask[0].flatten().tolist()) if real]
    if args.json:
        print(json.dumps(report, allow_nan=False))
    elif bayesian is not None:
        _print_bayesian(args, report, labels, block.capabilities.exact, concept.name)
    else:
        _print_report(args, report, labels, block.capabilities.exact, sigma, concept.name, list(game.shape[1:]))
    return 0


def _bayesian_entries(games: BayesianGames, labels: BayesianLabels, sigma: torch.Tensor) -> dict[str, Any]:
    """The report's Bayesian entries: ``"types"``, ``"agents"`` (``"player: type"``, the axes of ``"joint"``) and
    ``"strategies"`` (per player, per type, the probability of each action), cut to the real types and actions."""
    strategies = games.strategies(sigma.unsqueeze(0))[0]
    real_types = [len(t) for t in labels.types]
    real_actions = [len(a) for a in labels.actions]
    return {
        "bayesian": True,
        "types": [list(t) for t in labels.types],
        "prior": [games.prior[0, i, :t].tolist() for i, t in enumerate(real_types)],
        "agents": [f"{p}: {t}" for p, ts in zip(labels.players, labels.types) for t in ts],
        "strategies": [[strategies[i, t, :real_actions[i]].tolist() for t in range(real_types[i])]
                       for i in range(len(real_types))],
    }


def _print_bayesian(args: argparse.Namespace, report: dict[str, Any], labels: BayesianLabels, exact: bool,
                    concept: str) -> None:
    """The text form of ``did solve`` on a Bayesian game: each type's strategy, gap and violation."""
    print(f"Bayesian game: {args.game}  players: {', '.join(labels.players)}  "
          f"types: {[len(t) for t in labels.types]}  actions: {[len(a) for a in labels.actions]}")
    print(f"solved as its agent-normal form ({len(report['agents'])} agents, one per player and type): "
          f"B-{concept.upper()}")
    print(f"block: {args.block}  concept: {concept}  eps: {'absolute' if args.absolute else 'relative'} "
          f"{args.eps} -> per type [{', '.join(f'{e:.6g}' for e in report['eps'])}]")
    print("eps-ME strategies per type" if exact else
          "strategies per type (an approximation of the eps-ME equilibrium: see gap and violation)")
    for i, player in enumerate(labels.players):
        for t, name in enumerate(labels.types[i]):
            shown = "  ".join(f"{a}: {p:.4f}" for a, p in zip(labels.actions[i], report["strategies"][i][t]))
            print(f"  {player}, type {name} (prior {report['prior'][i][t]:.4g}): {shown}")
    print(f"gap: {report['gap']:.3e}  violation: {report['violation']:.3e}  entropy: {report['entropy']:.6f}"
          + (f"  active constraints: {report['active_constraints']}" if "active_constraints" in report else ""))


def _print_report(args: argparse.Namespace, report: dict[str, Any], labels: Any, exact: bool, sigma: torch.Tensor,
                  concept: str, actions: list[int]) -> None:
    """The text form of ``did solve``'s report: the game, the block and eps, the joint, gap and violation."""
    print(f"game: {args.game}  players: {', '.join(labels.players)}  actions: {actions}")
    print(f"block: {args.block}  concept: {concept}  eps: {'absolute' if args.absolute else 'relative'} "
          f"{args.eps} -> per player [{', '.join(f'{e:.6g}' for e in report['eps'])}]")
    print(f"{'eps-ME joint' if exact else 'joint (an approximation of the eps-ME joint: see gap and violation)'}, "
          f"P({', '.join(labels.players)}):")
    print(format_joint(sigma, labels.players, labels.actions))
    print(f"gap: {report['gap']:.3e}  violation: {report['violation']:.3e}  entropy: {report['entropy']:.6f}"
          + (f"  active constraints: {report['active_constraints']}" if "active_constraints" in report else ""))


def _unit_scale(game: torch.Tensor) -> float:
    """The power of two ``s`` that brings the largest ``|payoff|`` of ``game`` into ``[0.5, 1)`` (at most 2 for
    payoffs near float64's largest; 1 for an all-zero game): dividing by it is exact and changes no equilibrium."""
    largest = float(game.abs().max())
    return math.ldexp(1.0, min(math.frexp(largest)[1], 1023)) if largest > 0 else 1.0


def _solve_problem(block: Any, eq: Any, report: dict[str, Any]) -> str | None:
    """Why an answer must not be printed as an equilibrium (``None`` when it may).

    Non-finite numbers (a tolerance too large for float64), an unconverged solve, or
    an exact block's answer that violates its tolerance.
    """
    if not all(math.isfinite(e) for e in report["eps"]):
        return "the tolerance per player is not finite (--eps too large for float64)"
    numbers = torch.tensor([report["gap"], report["violation"], report["entropy"]], dtype=torch.float64)
    if not (torch.isfinite(numbers).all() and torch.isfinite(eq.sigma).all()):
        return "the answer is not finite; no equilibrium to report"
    converged = eq.info.get("converged")
    if converged is not None and not bool(torch.as_tensor(converged).all()):
        return f"did not converge (violation {report['violation']:.3e}); no equilibrium to report"
    if block.capabilities.exact and report["violation"] > 1e-6 * max(1.0, max(report["eps"])):
        return f"the answer violates the eps-constraints by {report['violation']:.3e}; no equilibrium to report"
    return None


COMMAND = Command(main, "the eps-ME (C)CE of one game", build_parser)


@hookimpl
def did_register_commands(register: Registry) -> None:
    register.add("solve", COMMAND)

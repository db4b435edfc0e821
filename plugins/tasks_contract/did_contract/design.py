"""``did design contract PROBLEM.json``: contracts for one problem, and what they do to the equilibrium.

Usage::

    did design contract examples/christmas_tree.json [--block exact_cvx] [--run-dir RUN]
                        [--concept cce|ce] [--eps 0.05] [--absolute] [--steps 200] [--lr 0.05] [--json]

Where the contracts come from:

* ``--run-dir RUN``: the trained generator of a ``did train --task contract`` run,
  applied to the problem (concept and epsilon default to the run's);
* otherwise a per-instance optimisation (:func:`optimise_contracts`): Adam on
  ``theta`` with contracts ``t = softplus(theta)`` (limited liability), maximising
  the principal's utility ``U(sigma*(t), t)`` by differentiating through the
  ``--block`` equilibrium (exact by default), ``--steps`` steps of rate ``--lr``
  from several starts: a small flat contract and value-share contracts
  ``t_i(w) = s (v(w) - min v)``, ``s`` in 0.1, 0.2, 0.4 (the utility is not
  concave in the contract: from a small contract, paying a little more buys no
  change of behaviour, so ascent from zero alone often stays at zero). The best
  iterate of any start is kept, and no contract at all when none beats it, so
  the result is never worse than no contract under that block. Measured on 128
  random quick-profile contexts (CCE, relative eps 0.05, exact Newton block, 200
  steps): from the small flat start alone +0.19 (38% improved), with the
  value-share starts +0.35 (55% improved).

For each block (the learned ``deb_marris`` when installed, the run's blocks and
``--block``) it prints the equilibrium without and with the contracts and the
principal's utility before and after. A malformed file or run directory is one
``did: error: ...`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from did_core.blocks import EquilibriumBlock
from did_core.equilibria import Epsilon
from did_core.tasks import Context
from did_contract.problem import ContractProblem, ProblemError, load_problem
from did_contract.task import induced_games, principal_utility

__all__ = ["main", "optimise_contracts", "design_report", "LEARNED_BLOCK"]

LEARNED_BLOCK = "deb_marris"
TASKS = ("contract",)
#: value shares of the per-instance optimisation's starts (0: a small flat contract).
SHARES: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4)


def _fail(message: str) -> int:
    from did_core.cli import fail

    return fail(message)


def solve(block: EquilibriumBlock, context: Context, contracts: Tensor, concept: str, eps: Epsilon
          ) -> tuple[Tensor, Tensor]:
    """The equilibrium ``sigma [B, A..]`` of the induced games and the principal's utility ``[B]``."""
    games = induced_games(context, contracts.double())
    eq = block(games, context["mask"], concept=concept, eps=eps)
    return eq.sigma, principal_utility(context, contracts.double(), eq.sigma)


def optimise_contracts(context: Context, block: EquilibriumBlock, concept: str = "cce",
                       eps: Epsilon | float = 0.05, steps: int = 200, lr: float = 0.05,
                       shares: tuple[float, ...] = SHARES) -> Tensor:
    """Per-instance contracts ``[B, N, M]`` by multi-start gradient ascent through ``block``.

    Contracts are ``t = softplus(theta)`` on real outcomes. One start per entry of
    ``shares``: ``s > 0`` starts from the value-share contract ``t_i(w) = s (v(w) -
    min_w v)`` for every agent (pay each agent a share of what the outcome is worth),
    ``s = 0`` from ``t = softplus(-2) = 0.13`` everywhere. All starts of all
    contexts run as one batch (the objective is a sum, so they are independent),
    ``steps`` Adam steps of rate ``lr`` each. Returns, per context, the best
    iterate of any start, or zeros where none beats no contract (so the result is
    never worse than no contract under ``block``).
    """
    eps = Epsilon.of(eps)
    batch, n_agents = context["costs"].shape[:2]
    shares = tuple(shares) or (0.0,)
    k = len(shares)
    # Start j of context b sits at row j * batch + b.
    repeated = {key: value.repeat(k, *[1] * (value.dim() - 1)) for key, value in context.items()}
    real = repeated["outcome_mask"].unsqueeze(1).expand(-1, n_agents, -1).double()
    values = repeated["values"].double()
    low = torch.where(repeated["outcome_mask"], values, torch.full_like(values, torch.inf)).amin(dim=1, keepdim=True)
    share = torch.tensor(shares, dtype=torch.float64).repeat_interleave(batch).view(-1, 1)
    flat = torch.full_like(values, F.softplus(torch.tensor(-2.0)).item())
    start = torch.where(share > 0, share * (values - low), flat)
    start = start.clamp_min(1e-3).unsqueeze(1).expand(-1, n_agents, -1)
    theta = torch.log(torch.expm1(start)).clone().requires_grad_(True)
    zeros = torch.zeros_like(real)
    with torch.no_grad():
        best_value = solve(block, repeated, zeros, concept, eps)[1]
    best = zeros.clone()
    optimiser = torch.optim.Adam([theta], lr=lr)
    for step in range(steps + 1):
        contracts = F.softplus(theta) * real
        _, utility = solve(block, repeated, contracts if step < steps else contracts.detach(), concept, eps)
        better = utility.detach() > best_value
        best = torch.where(better.view(-1, 1, 1), contracts.detach(), best)
        best_value = torch.where(better, utility.detach(), best_value)
        if step < steps:
            optimiser.zero_grad()
            (-utility.sum()).backward()
            optimiser.step()
    winner = best_value.view(k, batch).argmax(dim=0)
    return best.view(k, batch, *best.shape[1:])[winner, torch.arange(batch)]


def _generator_contracts(run_dir: Path, problem: ContractProblem) -> tuple[Tensor, dict[str, Any]]:
    """Contracts from a trained run's generator, and the run's config."""
    from did_core.components import build_task_parts
    from did_core.config import load_yaml, resolve_train_config
    from did_core.runs import RunDir

    run = RunDir(run_dir)
    if not run.file("config.yaml").exists():
        raise ProblemError(f"{run_dir} is not a run directory (no config.yaml)")
    cfg = resolve_train_config({}, load_yaml(run.file("config.yaml")))
    if cfg.generator_name not in TASKS and cfg.task not in TASKS:
        raise ProblemError(f"{run_dir} trained task {cfg.task!r}, not a contract generator")
    state = run.load_checkpoint()
    if state is None:
        raise ProblemError(f"{run_dir} has no checkpoint to load")
    _, _, _, generator = build_task_parts(cfg)
    try:
        generator.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:
        raise ProblemError(f"{run_dir}: checkpoint does not fit its generator: {str(exc).splitlines()[0]}") from None
    generator.eval()
    with torch.no_grad():
        contracts = generator(problem.context).double()
    return contracts, cfg.model_dump()


def _joint_lines(problem: ContractProblem, sigma: Tensor, indent: str) -> list[str]:
    sizes = [len(a) for a in problem.actions]
    real = sigma[tuple(slice(0, s) for s in sizes)]
    width = max(len(", ".join(combo)) for combo in _combos(problem.actions))
    lines = []
    for index in torch.cartesian_prod(*[torch.arange(s) for s in sizes]).reshape(-1, len(sizes)).tolist():
        label = ", ".join(problem.actions[p][a] for p, a in enumerate(index))
        lines.append(f"{indent}{label:<{width}}  {float(real[tuple(index)]):.4f}")
    return lines


def _combos(actions: list[list[str]]) -> list[tuple[str, ...]]:
    combos: list[tuple[str, ...]] = [()]
    for names in actions:
        combos = [c + (n,) for c in combos for n in names]
    return combos


def design_report(problem: ContractProblem, contracts: Tensor, blocks: dict[str, EquilibriumBlock],
                  concept: str, eps: Epsilon, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """Equilibria and utilities without and with ``contracts [1, N, M]`` under each block.

    A block named in ``optional`` that fails is reported as ``{"error": message}``
    instead of failing the whole report.
    """
    zeros = torch.zeros_like(contracts)
    sizes = [len(a) for a in problem.actions]
    out: dict[str, Any] = {}
    for name, block in blocks.items():
        try:
            with torch.no_grad():
                sigma0, u0 = solve(block, problem.context, zeros, concept, eps)
                sigma1, u1 = solve(block, problem.context, contracts, concept, eps)
        except Exception as exc:  # noqa: BLE001 - an optional block must not take the report down
            if name not in optional:
                raise
            out[name] = {"error": " ".join(str(exc).split()) or type(exc).__name__}
            continue
        cut = (0, *[slice(0, s) for s in sizes])
        out[name] = {
            "equilibrium_without": sigma0[cut].tolist(),
            "equilibrium_with": sigma1[cut].tolist(),
            "utility_without": float(u0[0]),
            "utility_with": float(u1[0]),
            "utility_change": float(u1[0] - u0[0]),
        }
    return out


def _print_report(problem: ContractProblem, path: str, source: str, contracts: Tensor,
                  report: dict[str, Any], concept: str, eps: Epsilon) -> None:
    sizes = [len(a) for a in problem.actions]
    print(f"contract problem: {path}  agents: {problem.n_agents}  actions: {sizes}  "
          f"outcomes: {len(problem.outcomes)}")
    print(f"contracts ({source}):")
    width = max(12, *(len(o) for o in problem.outcomes))
    name_width = max(len("pays to"), *(len(a) for a in problem.agents))
    print(f"  {'pays to':<{name_width}}  " + "  ".join(f"{o:>{width}}" for o in problem.outcomes))
    for i, agent in enumerate(problem.agents):
        print(f"  {agent:<{name_width}}  " + "  ".join(f"{float(t):>{width}.4f}" for t in contracts[0, i]))
    mode = "relative" if eps.relative else "absolute"
    for name, r in report.items():
        print(f"\nblock {name} ({concept}, {mode} eps {eps.value:g}):")
        if "error" in r:
            print(f"  unavailable: {r['error']}")
            continue
        header = " x ".join(problem.agents)
        for key, label in (("without", "no contract"), ("with", "with the contracts")):
            sigma = torch.tensor(r[f"equilibrium_{key}"], dtype=torch.float64)
            print(f"  equilibrium, {label} (P[{header}]):")
            print("\n".join(_joint_lines(problem, sigma, "    ")))
        print(f"  principal's utility: {r['utility_without']:.4f} without contract -> "
              f"{r['utility_with']:.4f} with ({r['utility_change']:+.4f})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="did design", description="Contracts for one problem file and the equilibrium they induce")
    parser.add_argument("task", help="the design task: contract")
    parser.add_argument("problem", help="a contract-problem JSON file (e.g. examples/christmas_tree.json)")
    parser.add_argument("--block", default=None, help="exact block to optimise and report with (default exact_cvx, "
                        "or the run's exact block with --run-dir)")
    parser.add_argument("--run-dir", help="use the generator of this trained run instead of per-instance optimisation")
    parser.add_argument("--concept", choices=("cce", "ce"), default=None, help="default cce (or the run's)")
    parser.add_argument("--eps", type=float, default=None, help="equilibrium tolerance (default 0.05 or the run's)")
    parser.add_argument("--absolute", action="store_true", help="eps is absolute, not relative")
    parser.add_argument("--steps", type=int, default=200, help="per-instance optimisation steps")
    parser.add_argument("--lr", type=float, default=0.05, help="per-instance optimisation learning rate")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str]) -> int:
    """``did design TASK PROBLEM [...]``; returns the exit code."""
    from did_core.plugins import create, registry

    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)  # one small game: extra intra-op threads only add overhead
    if args.task not in TASKS:
        return _fail(f"unknown design task {args.task!r}; known: {', '.join(TASKS)}")
    if args.steps < 0 or args.lr <= 0:
        return _fail("--steps must be >= 0 and --lr > 0")
    try:
        problem = load_problem(Path(args.problem))
        config: dict[str, Any] = {}
        if args.run_dir:
            contracts, config = _generator_contracts(Path(args.run_dir), problem)
        concept = args.concept or config.get("concept", "cce")
        eps_value = args.eps if args.eps is not None else config.get("eps", 0.05)
        absolute = args.absolute or bool(config.get("absolute_eps", False))
        eps = Epsilon(eps_value, relative=not absolute)
        exact = args.block or config.get("exact_block", "exact_cvx")
        names = [LEARNED_BLOCK] if LEARNED_BLOCK in registry("blocks") else []
        if config:
            names.append(config["block"])
        names = list(dict.fromkeys(names + [exact]))
        blocks: dict[str, Any] = {}
        failed: dict[str, Any] = {}
        for name in names:
            try:
                blocks[name] = create("blocks", name)
            except Exception as exc:  # noqa: BLE001 - the optional learned block may be broken
                if name != LEARNED_BLOCK or name == exact:
                    raise
                failed[name] = {"error": " ".join(str(exc).split()) or type(exc).__name__}
        if args.run_dir:
            source = f"generator of {args.run_dir}"
        else:
            contracts = optimise_contracts(problem.context, blocks[exact], concept, eps, args.steps, args.lr)
            source = (f"per-instance gradient ascent through {exact}, {args.steps} Adam steps "
                      f"from {len(SHARES)} starts, lr {args.lr:g}")
        optional = tuple({LEARNED_BLOCK} - {exact})
        report = {**failed, **design_report(problem, contracts, blocks, concept, eps, optional=optional)}
    except ProblemError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps({"problem": args.problem, "source": source, "concept": concept, "eps": eps.value,
                          "relative_eps": eps.relative, "agents": problem.agents, "actions": problem.actions,
                          "outcomes": problem.outcomes, "contracts": contracts[0].tolist(), "blocks": report}))
    else:
        _print_report(problem, args.problem, source, contracts, report, concept, eps)
    sys.stdout.flush()
    return 0

"""Benchmark of one mechanism-training step, split into its parts, for every task, profile and concept.

Per configuration (task x profile x concept), the mean time per training step of:
sampler, generator forward, equilibrium block forward, block backward (the loss
and the induced game included: the gradient into the intervention), generator
backward, and the optimiser step (Adam), plus steps per second and the ratio
generator (forward + backward) / block (forward + backward). Every batch runs
as the trainer runs it: size groups (``--groups``, the training default).

``--reference`` times, in the same run and on the same batches, the layers as
they were before the speed rewrite (the test reference in ``tests/reference``)
on the padded batch, and reports the speed-up of the whole step.

``--follower-bisection`` (the ``commitment`` task) times, in the same run and on
the same batches, the commitment generator with its exact follower's precision
found as before the safeguarded Newton of :mod:`did_stackelberg.refine`: 32
bisection steps on ``log beta``, torch's softmax along the last axis (kept here
only for this comparison), and reports the speed-up of the whole step.

    python benchmarks/training_step.py [--tasks inverse,contract,scheduling] [--profiles quick,paper]
        [--concepts ce,cce] [--steps 4] [--batch 64] [--threads 1] [--groups 8] [--block exact_newton]
        [--eps 0.05] [--absolute-eps] [--generator-options '{"refine_steps": 0}'] [--reference]
        [--reference-steps 2] [--follower-bisection]
        [--device cpu|cuda] [--out benchmarks/results/training_step_cpu.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import sys
import time
import warnings
from unittest import mock
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor

from did_core.config import TrainConfig, resolve_train_config
from did_core.grouping import grouped
from did_core.plugins import registry
from did_core.runs import OutputRefused, atomic_write_text, output_file
from did_core.components import Components, build_components
from did_core.scoring import context_to

PARTS = ("sampler", "gen fwd", "block fwd", "block bwd", "gen bwd", "optim")


@dataclass
class Timing:
    """Seconds per part, summed over the timed steps."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))
    steps: int = 0

    def ms(self, part: str) -> float:
        return 1000 * self.seconds[part] / max(self.steps, 1)

    @property
    def step_ms(self) -> float:
        return sum(self.ms(p) for p in PARTS)

    @property
    def ratio(self) -> float:
        return (self.ms("gen fwd") + self.ms("gen bwd")) / max(self.ms("block fwd") + self.ms("block bwd"), 1e-9)


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def bisection_precision(regret: Tensor, real: Tensor, eps: Tensor, start: Tensor | None = None) -> Tensor:
    """``did_stackelberg.refine.response_precision`` as it was before the safeguarded Newton (``start`` unused).

    ``regret [A, ...]``, ``real [A, ...]``, ``eps [...]`` -> ``beta [...]``: 32 bisection
    steps on ``log beta`` over ``beta * max r`` in ``[1e-6, 1e12]``, each a softmax
    along the last axis, then the check of the uniform response.
    """
    with torch.no_grad():
        regret, real = regret.movedim(0, -1), real.movedim(0, -1)
        eps = eps.unsqueeze(-1)

        def expected_regret(log_beta: Tensor) -> Tensor:
            logits = (-log_beta.exp() * regret).masked_fill(~real, -torch.inf)
            return (torch.softmax(logits, dim=-1) * regret).sum(dim=-1, keepdim=True)

        scale = regret.amax(dim=-1, keepdim=True).clamp_min(1e-300)
        low, high = torch.log(1e-6 / scale), torch.log(1e12 / scale)
        for _ in range(32):
            middle = (low + high) / 2
            above = expected_regret(middle) > eps
            low, high = torch.where(above, middle, low), torch.where(above, high, middle)
        beta = torch.where(expected_regret(torch.full_like(low, -torch.inf)) <= eps, 0.0, high.exp())
        return beta.squeeze(-1)


def _layers(reference: bool, bisection: bool, generator: torch.nn.Module) -> contextlib.AbstractContextManager:
    """Swap in the layers a row times: the test reference's (``reference``) or the bisection follower's."""
    if reference:
        from reference import to_reference

        to_reference(generator)
    if bisection:
        return mock.patch("did_stackelberg.refine.response_precision", bisection_precision)
    return contextlib.nullcontext()


def _built(task: str, profile: str, concept: str, args: argparse.Namespace) -> tuple[TrainConfig, Components]:
    """The configuration and components of one measured configuration (``ValueError`` on bad options)."""
    cfg = resolve_train_config({"task": task, "profile": profile, "concept": concept, "block": args.block,
                                "batch_size": args.batch, "device": args.device, "seed": 0, "eps": args.eps,
                                "absolute_eps": args.absolute_eps, "generator_options": args.generator_options})
    return cfg, build_components(cfg)


def time_steps(task: str, profile: str, concept: str, args: argparse.Namespace, reference: bool, steps: int,
               bisection: bool = False) -> Timing:
    """Run ``steps`` timed training steps (after one untimed warm-up step) of one configuration."""
    cfg, parts = _built(task, profile, concept, args)
    with _layers(reference, bisection, parts.generator):
        return _timed(parts, cfg, args, 1 if reference else args.groups, steps)


def _timed(parts: Components, cfg: TrainConfig, args: argparse.Namespace, groups: int, steps: int) -> Timing:
    """The timed steps of :func:`time_steps` on built components."""
    optimizer = torch.optim.Adam(parts.generator.parameters(), lr=cfg.lr)
    rng = torch.Generator().manual_seed(cfg.seed)
    timing = Timing()
    device = parts.device
    for step in range(steps + 1):
        spent = dict.fromkeys(PARTS, 0.0)
        t0 = _clock(device)
        context = context_to(parts.sampler.sample(cfg.batch_size, rng), device)
        t1 = _clock(device)
        spent["sampler"] += t1 - t0
        optimizer.zero_grad(set_to_none=True)
        for weight, group in grouped(parts.sampler, context, groups, args.min_saving):
            t0 = _clock(device)
            x = parts.generator(group)
            t1 = _clock(device)
            leaf = x.detach().requires_grad_(True)
            eq = parts.scorer().solve(group, leaf)
            t2 = _clock(device)
            loss, _ = parts.objective.loss(group, leaf, eq, 0.5)
            (loss * weight).backward()
            t3 = _clock(device)
            x.backward(leaf.grad)
            t4 = _clock(device)
            for part, seconds in zip(PARTS[1:5], (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                spent[part] += seconds
        t0 = _clock(device)
        optimizer.step()
        spent["optim"] += _clock(device) - t0
        if step:  # the first step warms up
            for part, seconds in spent.items():
                timing.seconds[part] += seconds
            timing.steps += 1
    return timing


def _json_object(text: str) -> dict:
    """``--generator-options``: a JSON object (argparse turns the error into one line, exit 2)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("not a JSON object")
    return value


def tasks_available() -> list[str]:
    """Every registered task."""
    return registry("tasks").names()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=None, help="comma-separated (default: every registered task)")
    parser.add_argument("--profiles", default="quick,paper")
    parser.add_argument("--concepts", default="ce,cce")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per configuration (after one warm-up)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--groups", type=int, default=TrainConfig.model_fields["size_groups"].default)
    parser.add_argument("--min-saving", type=int, default=TrainConfig.model_fields["group_min_saving"].default)
    parser.add_argument("--block", default="exact_newton")
    parser.add_argument("--eps", type=float, default=TrainConfig.model_fields["eps"].default)
    parser.add_argument("--absolute-eps", action="store_true")
    parser.add_argument("--generator-options", type=_json_object, default={},
                        help="JSON object of the generator's options, e.g. '{\"refine_steps\": 0}'")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reference", action="store_true", help="also time the reference layers, padded")
    parser.add_argument("--reference-steps", type=int, default=2)
    parser.add_argument("--follower-bisection", action="store_true",
                        help="commitment: also time the exact follower's precision by the 32-step bisection")
    parser.add_argument("--out", type=Path, default=None, help="write the table (Markdown) here too")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.eps) and args.eps > 0):
        parser.error(f"--eps must be a finite number > 0, got {args.eps}")
    if args.out:
        try:  # before the measurement: a missing folder, a device or a run's folder is refused now
            output_file(Path(args.out), force_flag=None)
        except OutputRefused as exc:
            parser.error(str(exc))
    torch.set_num_threads(args.threads)
    if args.reference:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    warnings.simplefilter("ignore")
    tasks = args.tasks.split(",") if args.tasks else tasks_available()
    try:  # bad options (a generator option of the wrong type, an unknown task) are refused before measuring
        for task in tasks:
            _built(task, args.profiles.split(",")[0], args.concepts.split(",")[0], args)
    except ValueError as exc:
        parser.error(str(exc))
    header = ["task", "profile", "concept", "layers", *(f"{p} ms" for p in PARTS), "step ms", "steps/s",
              "gen / block"]
    if args.reference or args.follower_bisection:
        header.append("speed-up")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    print(lines[0], flush=True)
    for task in tasks:
        for profile in args.profiles.split(","):
            for concept in args.concepts.split(","):
                fast = time_steps(task, profile, concept, args, reference=False, steps=args.steps)
                rows = [("fast, grouped", fast)]
                if args.reference:
                    rows.insert(0, ("reference, padded",
                                    time_steps(task, profile, concept, args, reference=True,
                                               steps=args.reference_steps)))
                elif args.follower_bisection and task == "commitment":
                    rows.insert(0, ("grouped, bisection follower",
                                    time_steps(task, profile, concept, args, reference=False, steps=args.steps,
                                               bisection=True)))
                for label, t in rows:
                    cells = [task, profile, concept, label, *(f"{t.ms(p):.1f}" for p in PARTS), f"{t.step_ms:.1f}",
                             f"{1000 / t.step_ms:.2f}", f"{t.ratio:.1f}x"]
                    if args.reference or args.follower_bisection:
                        cells.append(f"{rows[0][1].step_ms / t.step_ms:.1f}x" if label.startswith("fast") else "")
                    lines.append("| " + " | ".join(cells) + " |")
                    print(lines[-1], flush=True)
    if args.out:
        device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "CPU"
        meta = (f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {device} "
                f"({torch.get_num_threads()} thread(s), torch {torch.__version__}), block {args.block}, "
                f"eps {args.eps}{' absolute' if args.absolute_eps else ''}, generator options "
                f"{json.dumps(args.generator_options)}, batch "
                f"{args.batch}, {args.groups} size groups, mean of {args.steps} steps after one warm-up "
                f"({args.reference_steps} for the reference).\n\n"
                f"    python benchmarks/training_step.py {' '.join(argv if argv is not None else sys.argv[1:])}\n\n")
        atomic_write_text(args.out, "# Training step\n\n" + meta + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

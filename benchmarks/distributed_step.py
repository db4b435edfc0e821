"""Benchmark of data-parallel training: steps per second at 1, 2, ... processes on the same global batch.

Each process count runs the trainer's own step (:func:`did_core.train.rank_step`: the whole
batch drawn on every rank, this rank's slice, share-weighted loss) inside the trainer's loop
(:class:`did_core.loop.TrainingLoop`: gradients and scalars summed over the ranks, clipping, Adam),
1 process as a plain process and more under torchrun (gloo on the CPU), side by side in one
run, repeated in turn so that a change of the machine's load hits every configuration alike;
the table shows the median. A configuration is ``PROCESSESxTHREADS`` (``OMP_NUM_THREADS`` per
process; ``did train --nproc P`` gives each process the CPUs divided by ``P``). It also
reports how far each configuration's losses are from the first one's (float32 rounding only).

    python benchmarks/distributed_step.py [--task inverse] [--profile quick] [--concept cce]
        [--block exact_newton] [--batch 64] [--steps 10] [--warmup 2] [--runs 1x2,1x1,2x1] [--repeats 3]
        [--out benchmarks/results/distributed_step_cpu.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from did_core.runs import OutputRefused, atomic_write_text, output_file


def worker(args: argparse.Namespace) -> None:
    """One measurement on this process (or on every rank of torchrun's group); rank 0 writes ``--json``."""
    from did_core import distributed
    from did_core.components import build_components
    from did_core.config import resolve_train_config
    from did_core.loop import TrainingLoop
    from did_core.runs import RunDir
    from did_core.train import loop_settings, rank_step

    with distributed.session() as world:
        steps = args.warmup + args.steps + 1  # the last step writes the final checkpoint: not timed
        cfg = resolve_train_config({"task": args.task, "profile": args.profile, "concept": args.concept,
                                    "block": args.block, "batch_size": args.batch, "steps": steps,
                                    "checkpoint_every": 10 ** 9, "log_every": 1, "seed": 0})
        torch.manual_seed(cfg.seed)
        parts = distributed.together(world, lambda: build_components(cfg))
        ends: list[float] = []
        settings = loop_settings(cfg)
        settings.label, settings.stop_when = f"{world.size} process(es)", lambda: bool(ends.append(time.perf_counter()))
        rng = torch.Generator().manual_seed(cfg.seed)
        with tempfile.TemporaryDirectory() as folder:
            records = TrainingLoop(RunDir(Path(folder)), parts.generator, rank_step(cfg, parts, rng, world), settings,
                                   rng, world=world).run()
        if world.is_main:
            timed = ends[args.warmup - 1:]  # from the end of the last warm-up step
            seconds = (timed[-1] - timed[0]) / (len(timed) - 1)
            Path(args.json).write_text(json.dumps({
                "processes": world.size, "threads": torch.get_num_threads(), "step_seconds": seconds,
                "losses": [r["loss"] for r in records]}))


def measure(args: argparse.Namespace, procs: int, threads: int) -> dict:
    """Run one measurement in fresh processes (plain for 1, torchrun for more) and return rank 0's result."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        own = [str(Path(__file__).resolve()), "--worker", "--json", str(out), "--task", args.task,
               "--profile", args.profile, "--concept", args.concept, "--block", args.block,
               "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
        launcher = ([] if procs == 1 else
                    ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"])
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run([sys.executable, *launcher, *own], env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"the {procs}-process measurement failed:\n{done.stderr[-4000:]}")
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> None:
    cpus = os.cpu_count() or 1
    default_runs = f"1x{cpus},1x1,2x{max(1, cpus // 2)}" if cpus > 1 else "1x1,2x1"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="inverse")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--concept", default="cce")
    parser.add_argument("--block", default="exact_newton")
    parser.add_argument("--batch", type=int, default=64, help="the global batch, the same for every process count")
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (at least 1)")
    parser.add_argument("--runs", default=default_runs, help=f"comma-separated PROCESSESxTHREADS_EACH (default here "
                        f"{default_runs}: all CPUs to 1 process, 1 process of 1 thread, the CPUs shared by 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the table (Markdown) here too")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.out:
        try:  # before the measurement: a missing folder, a device or a run's folder is refused now
            output_file(Path(args.out), force_flag=None)
        except OutputRefused as exc:
            parser.error(str(exc))
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be >= 1")
    if args.worker:
        worker(args)
        return
    configs = [tuple(int(v) for v in run.split("x")) for run in args.runs.split(",")]
    load = ""  # what else the machine was doing: 1, 5 and 15 minute load averages as the runs begin
    if hasattr(os, "getloadavg"):
        load = " load average at the start: " + ", ".join(f"{v:.1f}" for v in os.getloadavg())
    results: dict[tuple[int, int], list[dict]] = {c: [] for c in configs}
    for repeat in range(args.repeats):
        for procs, threads in configs:
            result = measure(args, procs, threads)
            results[procs, threads].append(result)
            print(f"repeat {repeat + 1}/{args.repeats}: {procs} process(es) x {threads} thread(s): "
                  f"{1 / result['step_seconds']:.2f} steps/s", file=sys.stderr)
    median = {c: statistics.median(1 / r["step_seconds"] for r in results[c]) for c in configs}
    reference = results[configs[0]][0]["losses"]
    rows = ["| processes | threads each | contexts per process | steps/s (median) | steps/s (each repeat) | "
            f"vs first row | loss difference at step 1 | at step {len(reference)} |",
            "|---|---|---|---|---|---|---|---|"]
    for procs, threads in configs:
        rates = ", ".join(f"{1 / r['step_seconds']:.2f}" for r in results[procs, threads])
        first = max(abs(r["losses"][0] - reference[0]) for r in results[procs, threads])
        last = max(abs(r["losses"][-1] - reference[-1]) for r in results[procs, threads])
        rows.append(f"| {procs} | {threads} | {args.batch / procs:g} | {median[procs, threads]:.2f} | {rates} | "
                    f"{median[procs, threads] / median[configs[0]]:.2f}x | {first:.1e} | {last:.1e} |")
    command = "python benchmarks/distributed_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (f"Measured {stamp} on {platform.machine()} ({cpus} CPUs, torch {torch.__version__}, gloo;{load}): "
            f"task {args.task}, profile {args.profile}, {args.concept}, block {args.block}, global batch "
            f"{args.batch}, {args.steps} timed steps after {args.warmup}, {args.repeats} repeats in turn. The loss "
            f"differences are against the first row's first repeat (float32 rounding, which some tasks amplify "
            f"step by step: splitting the batch in one process does the same).")
    text = "\n".join(["# Data-parallel training step", "", head, "", f"    {command.strip()}", "", *rows, ""])
    print(text)
    if args.out:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()

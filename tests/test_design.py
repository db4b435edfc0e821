"""``did design``: the generic command on a toy task and toy blocks defined here (no installed plugin is loaded).

The toy task's intervention is a bonus game added to a 2x2 base game; its value is
the probability of joint action (1, 1). The toy exact block answers
``sigma = softmax((G_1 + G_2) / eps)`` over joint actions, so every reported joint
and value can be recomputed here by hand.
"""

from __future__ import annotations

import json
import types
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import yaml
from torch import nn

from did_core import plugins
from did_core.blocks import Capabilities, Equilibrium, EquilibriumBlock
from did_core.cli import main
from did_core.config import resolve_train_config
from did_core.tasks import InstanceFormat
from did_core.hookspecs import hookimpl
from did_core.runs import RunDir
from did_core.tasks import ContextSampler, DesignObjective, Task

BASE = [[[1.0, 0.0], [0.5, 2.0]], [[0.0, 1.5], [1.0, 0.2]]]


class ToyFormat(InstanceFormat):
    """``{"payoffs": [2][2][2] numbers}``; ``optimise`` adds ``steps * lr`` to joint action (1, 1) for both players."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def load(self, path: Path) -> dict[str, torch.Tensor]:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc.msg}") from None
        try:
            base = torch.tensor(data["payoffs"], dtype=torch.float64)
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"{path}: 'payoffs' must be a [2][2][2] list of numbers") from None
        if base.shape != (2, 2, 2):
            raise ValueError(f"{path}: 'payoffs' must have shape [2, 2, 2], got {list(base.shape)}")
        return {"base": base.unsqueeze(0)}

    def optimise(self, context, block, concept, eps, steps, lr):
        self.seen.append(block.name)
        x = torch.zeros_like(context["base"])
        x[:, :, 0, 0] = steps * lr
        return x


class FixedFormat(ToyFormat):
    """Reads the same files, but has no per-instance optimisation."""

    optimise = InstanceFormat.optimise


class Sampler(ContextSampler):
    def sample(self, batch, generator):
        return {"base": torch.randn(batch, 2, 2, 2, generator=generator, dtype=torch.float64)}


class Objective(DesignObjective):
    minimize: ClassVar[bool] = False
    report_change: ClassVar[bool] = True
    metric_name: ClassVar[str] = "P(1, 1) change"

    def induce(self, context, x):
        return context["base"] + x, torch.ones(x.shape[0], 2, 2, dtype=torch.bool)

    def value(self, context, x, eq):
        return eq.sigma[:, 0, 0]

    def loss(self, context, x, eq, progress):
        return -self.value(context, x, eq).mean(), {}

    def baseline_intervention(self, context):
        return torch.zeros_like(context["base"])


class Generator(nn.Module):
    """``w * scale`` on every entry."""

    def __init__(self, sampler, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.w = nn.Parameter(torch.tensor(0.1))

    def forward(self, context):
        return self.w * self.scale * torch.ones_like(context["base"])


class LogitBlock(EquilibriumBlock):
    name = "toy_logit"
    capabilities = Capabilities(exact=True)

    def solve(self, games, mask, cons, alpha0):
        logits = (games[:, 0] + games[:, 1]).flatten(1) / cons.epsilon.value
        sigma = torch.softmax(logits, dim=1).view(games.shape[0], 2, 2)
        return Equilibrium(sigma, None, cons.epsilon.per_player(games.detach(), mask), cons.concept)


class UniformBlock(LogitBlock):
    name = "toy_uniform"
    capabilities = Capabilities(exact=False)

    def solve(self, games, mask, cons, alpha0):
        eq = super().solve(games, mask, cons, alpha0)
        eq.sigma = torch.full_like(eq.sigma, 0.25)
        return eq


class BrokenBlock(LogitBlock):
    name = "toy_broken"
    capabilities = Capabilities(exact=False)

    def solve(self, games, mask, cons, alpha0):
        raise RuntimeError("toy failure\nsecond line")


class CeOnlyBlock(UniformBlock):
    name = "toy_ce"
    capabilities = Capabilities(exact=False, concepts=("ce",))


class OtherExactBlock(LogitBlock):
    name = "toy_logit_other"
    capabilities = Capabilities(exact=True, preference=-1)


FORMAT, FIXED = ToyFormat(), FixedFormat()


@pytest.fixture(autouse=True)
def toy_plugin(monkeypatch):
    """Only the core and a throw-away plugin ``toy`` (tasks, blocks, a command named design) are loaded."""
    module = types.ModuleType("toy_design_plugin")

    def tasks(register):
        for name, instances in (("toy", FORMAT), ("toy_fixed", FIXED), ("toy_plain", None)):
            register.add(name, Task(sampler=Sampler, objective=Objective, generator=Generator, instances=instances))

    def blocks(register):
        for block in (LogitBlock, UniformBlock, BrokenBlock, CeOnlyBlock, OtherExactBlock):
            register.add(block.name, block)

    module.did_register_tasks = hookimpl(tasks)
    module.did_register_blocks = hookimpl(blocks)
    module.did_register_commands = hookimpl(lambda register: register.add("design", lambda argv: 99))
    ep = types.SimpleNamespace(name="toy", value="toy_design_plugin", load=lambda: module,
                               dist=types.SimpleNamespace(name="did-plugins-toy", version="1.0"))
    real = metadata.entry_points
    # Only a query by group gets the toy plugin (libraries that did train imports list every group: real ones).
    monkeypatch.setattr(metadata, "entry_points",
                        lambda group=None, **kw: real(**kw) if group is None else list(real(group=group)) + [ep])
    monkeypatch.setenv("DID_LOAD_PLUGINS", "toy")
    plugins.load_plugins(force=True)
    FORMAT.seen.clear()
    yield
    monkeypatch.undo()
    plugins.load_plugins(force=True)


@pytest.fixture
def instance(tmp_path):
    path = tmp_path / "game.json"
    path.write_text(json.dumps({"payoffs": BASE}))
    return path


def _run(capsys, *argv):
    code = main(["design", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _expected(bonus: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The toy exact block's joints without and with ``bonus [2, 2, 2]``, by hand."""
    base = torch.tensor(BASE, dtype=torch.float64)
    joints = []
    for game in (base, base + bonus):
        weights = torch.exp((game[0] + game[1]) / eps)
        joints.append(weights / weights.sum())
    return joints[0], joints[1]


def test_optimised_json_matches_hand_computation(instance, capsys):
    code, out, err = _run(capsys, "toy", instance, "--steps", 4, "--lr", 0.25, "--eps", 0.5, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert FORMAT.seen == ["toy_logit"]  # optimised through the exact block, chosen by capability
    bonus = torch.zeros(2, 2, 2, dtype=torch.float64)
    bonus[:, 0, 0] = 1.0
    assert torch.equal(torch.tensor(report["intervention"], dtype=torch.float64), bonus)
    without, with_ = _expected(bonus, 0.5)
    exact = report["blocks"]["toy_logit"]
    assert not exact["optional"]
    assert torch.allclose(torch.tensor(exact["equilibrium_without"], dtype=torch.float64), without, atol=1e-12)
    assert torch.allclose(torch.tensor(exact["equilibrium_with"], dtype=torch.float64), with_, atol=1e-12)
    assert exact["value_without"] == pytest.approx(float(without[0, 0]), abs=1e-12)
    assert exact["value_with"] == pytest.approx(float(with_[0, 0]), abs=1e-12)
    assert exact["value_change"] == pytest.approx(float(with_[0, 0] - without[0, 0]), abs=1e-12)
    assert exact["improved"] is True
    uniform = report["blocks"]["toy_uniform"]
    assert uniform["optional"] and uniform["value_with"] == uniform["value_without"] == 0.25
    assert uniform["improved"] is False
    assert report["blocks"]["toy_broken"] == {"optional": True, "error": "toy failure second line"}
    assert "toy_ce" not in report["blocks"]  # does not support cce
    assert list(report["blocks"])[-1] == "toy_logit"
    assert report["source"] == ("per-instance optimisation through toy_logit, 4 steps, lr 0.25 "
                                "(task toy ships no generator for cce)")
    assert report["guarded"] is False and report["polish"] is None
    assert report["guard"] == {"block": "toy_logit", "value_without": exact["value_without"],
                               "value_with": exact["value_with"], "kept": "intervention"}
    assert (report["task"], report["instance"], report["concept"]) == ("toy", str(instance), "cce")
    assert (report["eps"], report["relative_eps"]) == (0.5, True)
    assert (report["metric"], report["minimize"], report["report_change"]) == ("P(1, 1) change", False, True)


def test_text_report(instance, capsys):
    code, out, err = _run(capsys, "toy", instance, "--steps", 4, "--lr", 0.25, "--eps", 0.5)
    assert code == 0, err
    bonus = torch.zeros(2, 2, 2, dtype=torch.float64)
    bonus[:, 0, 0] = 1.0
    without, with_ = _expected(bonus, 0.5)
    lines = out.splitlines()
    assert lines[0] == f"toy instance: {instance}  players: 2  actions: [2, 2]"
    assert lines[1] == ("intervention (per-instance optimisation through toy_logit, 4 steps, lr 0.25 "
                        "(task toy ships no generator for cce)):")
    assert lines[2:4] == ["  shape [2, 2, 2] (rows: the last axis)", "  [0, 0]  1.0000  0.0000"]
    for text in ("block toy_logit (cce, relative eps 0.5):", "block toy_uniform (cce, relative eps 0.5, optional):",
                 "block toy_broken (cce, relative eps 0.5, optional):\n  unavailable: toy failure second line",
                 "  equilibrium, baseline intervention:\n" + " " * 16 + "a2=1" + " " * 6 + "a2=2\n    a1=1  "
                 + "".join(f"{float(p):>10.6f}" for p in without[0]), "  equilibrium, with the intervention:",
                 f"  value: {float(without[0, 0]):.4f} (baseline intervention) -> {float(with_[0, 0]):.4f} "
                 f"(with the intervention), change {float(with_[0, 0] - without[0, 0]):+.4f}; higher is better"):
        assert text in out, text


def test_block_concept_and_absolute_flags(instance, capsys):
    code, out, err = _run(capsys, "toy", instance, "--block", "toy_logit_other", "--concept", "ce", "--absolute",
                          "--steps", 0, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert FORMAT.seen == ["toy_logit_other"]
    assert (report["concept"], report["relative_eps"]) == ("ce", False)
    assert not report["blocks"]["toy_logit_other"]["optional"]
    assert report["blocks"]["toy_ce"]["optional"]  # a non-exact block for ce
    assert "toy_logit" not in report["blocks"]  # another exact block replaced by --block


def test_a_learned_block_is_refused_where_the_exact_block_goes(instance, capsys):
    """--block is the exact block that optimises, guards and reports: a learned one was taken as exact."""
    code, out, err = _run(capsys, "toy", instance, "--block", "toy_uniform", "--steps", 0)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--block 'toy_uniform' is not an exact block" in err and "toy_logit, toy_logit_other" in err


def test_run_dir_uses_the_generator_and_the_runs_settings(tmp_path, instance, capsys):
    cfg = resolve_train_config({"task": "toy", "eps": 0.5, "generator_options": {"scale": 2.0}})
    assert cfg.exact_block == "toy_logit"
    run = RunDir(tmp_path / "run").create()
    run.file("config.yaml").write_text(yaml.safe_dump(cfg.model_dump()))
    generator = Generator(None, scale=2.0)
    with torch.no_grad():
        generator.w.fill_(0.3)
    run.save_checkpoint({"model": generator.state_dict()})
    code, out, err = _run(capsys, "toy", instance, "--run-dir", run.path, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["source"] == f"generator of {run.path}" and FORMAT.seen == []
    bonus = torch.full((2, 2, 2), 0.6, dtype=torch.float64)
    assert torch.allclose(torch.tensor(report["intervention"], dtype=torch.float64), bonus, atol=1e-6)
    without, with_ = _expected(bonus, 0.5)  # the run's eps
    exact = report["blocks"]["toy_logit"]
    assert exact["value_with"] == pytest.approx(float(with_[0, 0]), abs=1e-6)
    assert exact["value_without"] == pytest.approx(float(without[0, 0]), abs=1e-12)

    other = RunDir(tmp_path / "other").create()
    other.file("config.yaml").write_text(yaml.safe_dump({"task": "toy_fixed"}))
    code, out, err = _run(capsys, "toy", instance, "--run-dir", other.path)
    assert code == 2 and out == ""
    assert err == f"did: error: {other.path} is a run of task 'toy_fixed', not 'toy'\n"
    empty = RunDir(tmp_path / "empty").create()
    empty.file("config.yaml").write_text(yaml.safe_dump({"task": "toy"}))
    code, _, err = _run(capsys, "toy", instance, "--run-dir", empty.path)
    assert code == 2 and "has no checkpoint" in err and err.count("\n") == 1
    code, _, err = _run(capsys, "toy", instance, "--run-dir", tmp_path / "nowhere")
    assert code == 2 and "not a run directory" in err and err.count("\n") == 1


def test_no_optimisation_needs_a_run(instance, capsys):
    code, out, err = _run(capsys, "toy_fixed", instance)
    assert code == 2 and out == ""
    assert err == ("did: error: task toy_fixed has no per-instance optimisation: give --generator RUN, "
                   "a trained run of task toy_fixed\n")


def test_task_without_instances_and_unknown_task(instance, capsys):
    code, out, err = _run(capsys, "toy_plain", instance)
    assert code == 2 and out == ""
    assert err == "did: error: task toy_plain cannot read instance files (its plugin sets no Task.instances)\n"
    code, _, err = _run(capsys, "nosuch", instance)
    assert code == 2 and "unknown task 'nosuch'" in err and err.count("\n") == 1


@pytest.mark.parametrize("content", ["{ not json", '{"payoffs": [1, 2]}', '{"payoffs": "x"}', "[]", None])
def test_malformed_or_missing_file_is_one_line(content, tmp_path, capsys):
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    code, out, err = _run(capsys, "toy", path)
    assert code == 2 and out == ""
    assert err.startswith("did: error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("flags, text", [
    (["--steps", "-1"], "--steps must be >= 0"),
    (["--lr", "0"], "--lr > 0"),
    (["--eps", "0"], "eps must be a finite number > 0"),
    (["--concept", "nash"], "unknown concept 'nash'"),
    (["--block", "nosuch"], "unknown block 'nosuch'"),
])
def test_bad_flags_are_one_line(flags, text, instance, capsys):
    code, out, err = _run(capsys, "toy", instance, *flags)
    assert code == 2 and out == "" and text in err and err.count("\n") == 1, err


def test_no_plugin_design_command(instance, capsys):
    assert "design" in plugins.registry("commands")  # the toy plugin registers one; the core command wins
    assert main(["design", "toy", str(instance), "--json", "--steps", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["task"] == "toy"


def _worse(context, block, concept, eps, steps, lr):
    """An "optimiser" that makes things worse: a bonus against joint action (1, 1) for both players."""
    x = torch.zeros_like(context["base"])
    x[:, :, 0, 0] = -2.0
    return x


def test_guard_keeps_no_intervention_when_the_exact_block_says_it_is_worse(instance, capsys, monkeypatch):
    monkeypatch.setattr(FORMAT, "optimise", _worse)
    code, out, err = _run(capsys, "toy", instance, "--eps", 0.5, "--json")
    assert code == 0, err
    report = json.loads(out)
    bonus = torch.zeros(2, 2, 2, dtype=torch.float64)
    bonus[:, 0, 0] = -2.0
    without, worse = _expected(bonus, 0.5)
    assert report["guarded"] is True
    assert report["guard"]["kept"] == "baseline"
    assert report["guard"]["value_with"] == pytest.approx(float(worse[0, 0]), abs=1e-12)
    assert report["guard"]["value_without"] == pytest.approx(float(without[0, 0]), abs=1e-12)
    assert torch.equal(torch.tensor(report["intervention"], dtype=torch.float64), torch.zeros(2, 2, 2,
                                                                                             dtype=torch.float64))
    exact = report["blocks"]["toy_logit"]
    assert exact["value_with"] == exact["value_without"] == pytest.approx(float(without[0, 0]), abs=1e-12)

    code, out, err = _run(capsys, "toy", instance, "--eps", 0.5)
    assert code == 0, err
    guard = [line for line in out.splitlines() if line.startswith("guard:")]
    assert guard == [f"guard: under toy_logit, value with the intervention {float(worse[0, 0]):.4f} is worse than "
                     f"{float(without[0, 0]):.4f} (baseline intervention): kept no intervention (baseline "
                     f"intervention); --unguarded keeps the intervention"]

    code, out, err = _run(capsys, "toy", instance, "--eps", 0.5, "--unguarded", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["guarded"] is False and report["guard"] is None
    assert torch.equal(torch.tensor(report["intervention"], dtype=torch.float64), bonus)
    assert report["blocks"]["toy_logit"]["value_with"] == pytest.approx(float(worse[0, 0]), abs=1e-12)


def test_guard_keeps_an_intervention_that_changes_nothing(instance, capsys):
    code, out, err = _run(capsys, "toy", instance, "--steps", 0, "--json")  # x = 0: equal, not worse
    assert code == 0, err
    report = json.loads(out)
    assert report["guarded"] is False and report["guard"]["kept"] == "intervention"


def test_polish_improves_or_keeps_the_exact_value(instance, capsys):
    code, out, err = _run(capsys, "toy", instance, "--steps", 0, "--eps", 0.5, "--polish", 80, "--json")
    assert code == 0, err
    report = json.loads(out)
    polish, exact = report["polish"], report["blocks"]["toy_logit"]
    x = torch.tensor(report["intervention"], dtype=torch.float64)
    without, with_ = _expected(x, 0.5)  # the polished intervention's value, by hand
    assert (polish["block"], polish["budget"]) == ("toy_logit", 80)
    assert polish["value_before"] == pytest.approx(float(without[0, 0]), abs=1e-12)  # from x = 0
    assert polish["value_after"] == pytest.approx(float(with_[0, 0]), abs=1e-12)
    assert exact["value_with"] == pytest.approx(polish["value_after"], abs=1e-12)
    assert polish["value_after"] > polish["value_before"]  # P(1, 1) grows with its own bonus

    code, out, err = _run(capsys, "toy", instance, "--steps", 4, "--lr", 0.25, "--eps", 0.5, "--polish", 1)
    assert code == 0, err
    line = [x for x in out.splitlines() if x.startswith("polish:")]
    assert len(line) == 1 and line[0].startswith("polish: Nelder-Mead under toy_logit, at most 1 evaluations: value ")
    before, after = (float(v) for v in line[0].split(": value ")[1].split(" -> "))
    assert after >= before


@pytest.mark.parametrize("flags, text", [
    (["--polish", "0"], "--polish BUDGET must be >= 1"),
    (["--polish", "-3"], "--polish BUDGET must be >= 1"),
    (["--optimise", "--generator", "somewhere"], "--optimise and --generator exclude each other"),
])
def test_bad_design_flags_are_one_line(flags, text, instance, capsys):
    code, out, err = _run(capsys, "toy", instance, *flags)
    assert code == 2 and out == "" and text in err and err.count("\n") == 1, err


@pytest.fixture
def trained(tmp_path, capsys):
    """A 3-step ``did train`` run of the toy task (a real run directory: config.yaml, checkpoint.pt)."""
    path = tmp_path / "trained"
    assert main(["train", "--task", "toy", "--steps", "3", "--batch-size", "4", "--eval-contexts", "4",
                 "--eps", "0.5", "--run-dir", str(path)]) == 0
    capsys.readouterr()
    return path


def test_generator_and_run_dir_are_one_flag(trained, instance, capsys):
    reports = []
    for flag in ("--generator", "--run-dir"):
        code, out, err = _run(capsys, "toy", instance, flag, trained, "--json")
        assert code == 0, err
        reports.append(json.loads(out))
    assert reports[0] == reports[1]
    assert reports[0]["source"] == f"generator of {trained}" and FORMAT.seen == []


def test_shipped_generator_is_the_default(trained, instance, capsys, monkeypatch):
    from did_core import shipped

    before = {p.name: p.stat().st_mtime_ns for p in trained.iterdir()}
    trained.chmod(0o555)  # a shipped folder may be read-only: did design never writes it
    try:
        monkeypatch.setattr(shipped, "shipped_concepts", lambda task: ["cce"] if task == "toy" else [])
        monkeypatch.setattr(shipped, "shipped_folder", lambda task, concept: trained)
        code, out, err = _run(capsys, "toy", instance, "--json")
        assert code == 0, err
        report = json.loads(out)
        assert report["source"] == "shipped generator (toy, cce)" and FORMAT.seen == []
        code, out, err = _run(capsys, "toy", instance, "--generator", trained, "--json")
        assert code == 0, err
        assert json.loads(out)["intervention"] == report["intervention"]  # the same generator

        code, out, err = _run(capsys, "toy", instance, "--optimise", "--steps", 4, "--lr", 0.25, "--json")
        assert code == 0, err
        report = json.loads(out)
        assert FORMAT.seen == ["toy_logit"]
        assert report["source"] == "per-instance optimisation through toy_logit, 4 steps, lr 0.25 (asked for)"

        code, out, err = _run(capsys, "toy", instance, "--concept", "ce", "--steps", 1, "--json")
        assert code == 0, err  # no shipped generator for ce: per-instance optimisation, and the source says so
        assert json.loads(out)["source"].endswith("(task toy ships no generator for ce)")
    finally:
        trained.chmod(0o755)
    assert {p.name: p.stat().st_mtime_ns for p in trained.iterdir()} == before

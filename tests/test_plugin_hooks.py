"""Every hook of did_core/hookspecs.py, used end to end: a throw-away plugin registers one thing of each kind.

The module ``demo`` below is what a third-party distribution would ship (found
through a fake entry point, tests/toys.py ``installed``): a block
(``did_register_blocks``), a concept (``did_register_concepts``), a task
(``did_register_tasks``), a sampler, a loss and a generator on their own
(``did_register_samplers``, ``did_register_losses``, ``did_register_generators``),
a mechanism task (``did_register_mechanisms``) and a subcommand (``did_register_commands``). Each test uses one through the
same commands and functions a user would.
"""

from __future__ import annotations

import json
import types
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import toys
import yaml
from torch import nn

from did_core.blocks import Capabilities, Equilibrium, EquilibriumBlock
from did_core.cli import main
from did_core.components import build_task_parts
from did_core.concepts import Concept, DenseOperator, StackedOperator
from did_core.default_plugins.concepts import CoarseCorrelated
from did_core.config import resolve_train_config
from did_core.games import classic_game
from did_core.hookspecs import hookimpl
from did_core.mechanism_task import MechanismTask
from did_core.plugins import create, exact_block_for, get_task
from did_core.registry import UnknownNameError
from did_core.tasks import ContextSampler, Task
from did_core.testing import reference_rows, reference_scale

CAP = 0.2


class UniformBlock(EquilibriumBlock):
    """A (deliberately poor) approximate block: the uniform joint over the real joint actions."""

    name = "demo_uniform"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=False)

    def solve(self, games, mask, cons, alpha0) -> Equilibrium:
        sigma = torch.softmax(cons.log_target, dim=1).to(games.dtype)
        return Equilibrium(cons.unflatten_joint(sigma), None, cons.epsilon.per_player(games.detach(), mask),
                           cons.concept)


class CappedCCE(Concept):
    """A CCE in which no joint action gets more than ``CAP`` (rows ``e_a - CAP``, tolerance 0)."""

    name = "demo_capped_cce"
    description = f"coarse correlated equilibrium with P(a) <= {CAP}"

    def operator(self, games, mask):
        cce = CoarseCorrelated().operator(games, mask)
        cap = torch.eye(cce.joints, dtype=games.dtype, device=games.device) - CAP
        return StackedOperator([cce, DenseOperator.extra_rows(cce, cap.expand(cce.batch, -1, -1))])


class ChickenSampler(ContextSampler):
    """Games of chicken with N(0, 0.1) noise on every payoff (context keys of the toy task: ``base``, ``mask``)."""

    def sample(self, batch: int, generator: torch.Generator):
        noise = 0.1 * torch.randn(batch, 2, 2, 2, generator=generator)
        return {"base": classic_game("chicken").float() + noise, "mask": torch.ones(batch, 2, 2, dtype=torch.bool)}

    def payoff_features(self, context):
        return context["base"].unsqueeze(1), context["mask"]


class BothSwerve(toys.ToyObjective):
    """Make joint action (1, 1) likely instead of (0, 0)."""

    metric_name: ClassVar[str] = "-P(1,1)"

    def value(self, context, intervention, eq):
        return -eq.sigma[:, 1, 1]


class Bonus(nn.Module):
    """One learned number: a bonus to both players at joint action (1, 1), whatever the context."""

    def __init__(self, sampler: Any, start: float = 0.0) -> None:
        super().__init__()
        self.bonus = nn.Parameter(torch.tensor(float(start)))

    def forward(self, context):
        x = torch.zeros_like(context["base"])
        x[:, :, 1, 1] = 1.0
        return x * self.bonus


class BrokenConcept(Concept):
    """A concept whose rows cannot be built: a bug in a plugin's code, met in the middle of a command."""

    name = "demo_broken"

    def operator(self, games, mask):
        raise RuntimeError("no rows\nhere")


def hello(argv: list[str]) -> int:
    print("hello", *argv)
    return 3


class PostedPrice:
    """A mechanism task's three commands, each recording the command line the core handed it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def command(self, which: str, code: int):
        def run(argv: list[str]) -> int:
            self.calls.append((which, argv))
            return code
        return run

    def task(self) -> MechanismTask:
        return MechanismTask(description="one posted price", train=self.command("train", 11),
                             evaluate=self.command("evaluate", 12), design=self.command("design", 13))


POSTED_PRICE = PostedPrice()

demo = types.ModuleType("did_demo")
demo.did_register_blocks = hookimpl(lambda register: register.add("demo_uniform", UniformBlock))
demo.did_register_concepts = hookimpl(lambda register: register.add(CappedCCE.name, CappedCCE))
demo.did_register_samplers = hookimpl(lambda register: register.add("demo_chicken", ChickenSampler))
demo.did_register_losses = hookimpl(lambda register: register.add("demo_both_swerve", BothSwerve))
demo.did_register_generators = hookimpl(lambda register: register.add("demo_bonus", Bonus))
demo.did_register_commands = hookimpl(lambda register: register.add("demo-hello", hello))
demo.did_register_mechanisms = hookimpl(lambda register: register.add("demo_price", POSTED_PRICE.task()))
demo.did_register_tasks = hookimpl(lambda register: register.add("demo_swerve", Task(
    sampler=ChickenSampler, objective=BothSwerve, generator=Bonus, description="both players swerve",
    train_profiles={"quick": {"steps": 4, "batch_size": 2, "lr": 0.5, "warmup_steps": 0, "eval_contexts": 3}})))


@pytest.fixture(autouse=True)
def _demo():
    with toys.installed(demo, "demo", "did-demo") as state:
        assert not state.errors, state.errors
        yield state


def test_every_hook_of_the_demo_plugin_is_loaded(_demo):
    (plugin,) = [p for p in _demo.plugins if p.name == "demo"]
    assert plugin.distribution == "did-demo"
    assert sorted(plugin.hooks) == sorted(f"did_register_{k}" for k in ("blocks", "concepts", "samplers", "losses",
                                                                       "generators", "commands", "tasks", "mechanisms"))


def test_a_plugin_command_runs_and_is_listed(capsys):
    assert main(["demo-hello", "a", "b"]) == 3
    assert capsys.readouterr().out == "hello a b\n"
    with pytest.raises(SystemExit):
        main(["--help"])
    (listed,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("commands added by plugins:")]
    assert "demo-hello" in listed.split(":", 1)[1].replace(",", " ").split()


def test_a_plugin_block_answers_did_solve(tmp_path, capsys):
    game = tmp_path / "chicken.json"
    game.write_text(json.dumps({"payoffs": classic_game("chicken").tolist()}))
    assert main(["solve", str(game), "--block", "demo_uniform", "--concept", "cce", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert np.allclose(report["joint"], 0.25, atol=0, rtol=0)
    rows, _ = reference_rows(classic_game("chicken").double().numpy(), "cce")  # gap: the largest regret
    assert report["gap"] == pytest.approx(max(np.array(rows) @ np.full(4, 0.25)), abs=1e-12)
    assert main(["solve", str(game), "--block", "demo_uniform"]) == 0
    assert "an approximation of the eps-ME joint" in capsys.readouterr().out


def test_a_plugin_concept_is_solved_by_the_exact_block_and_did_solve(tmp_path, capsys):
    """The answer carries a KKT certificate of ``max H(sigma) s.t. CCE rows <= eps, sigma <= CAP`` (rows by
    plain loops), and the cap binds."""
    # Without the cap, the eps-ME CCE of this game puts 0.22 on one joint action.
    game = torch.randn(2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    block = create("blocks", exact_block_for(CappedCCE.name))
    eq = block(game.unsqueeze(0), concept=CappedCCE(), eps=0.05)
    rows, owners = reference_rows(game.numpy(), "cce")
    d = np.vstack([np.array(rows), np.eye(9) - CAP])
    eps = np.concatenate([0.05 * reference_scale(game.numpy())[owners], np.zeros(9)])
    sigma, alpha = eq.sigma[0].numpy().reshape(-1), eq.alpha[0].numpy()
    slack = d @ sigma - eps
    assert alpha.shape == (6 + 9,) and alpha.min() >= 0 and slack.max() <= 1e-7
    assert np.abs(alpha * slack).max() <= 1e-7
    logits = -d.T @ alpha
    np.testing.assert_allclose(sigma, np.exp(logits) / np.exp(logits).sum(), rtol=1e-6)
    assert sigma.max() == pytest.approx(CAP, abs=1e-7) and alpha[6:].max() > 0  # the cap binds
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"payoffs": game.tolist()}))
    assert main(["solve", str(path), "--concept", CappedCCE.name, "--json"]) == 0
    np.testing.assert_allclose(json.loads(capsys.readouterr().out)["joint"], eq.sigma[0].numpy(), atol=1e-9)


def test_plugin_sampler_loss_and_generator_replace_a_tasks_own(tmp_path):
    flags = {"task": "toy_task", "sampler": "demo_chicken", "loss": "demo_both_swerve", "generator": "demo_bonus",
             "sampler_options": {}, "steps": 4, "batch_size": 2, "lr": 0.5, "warmup_steps": 0, "eval_contexts": 3}
    _, sampler, objective, generator = build_task_parts(resolve_train_config(flags))
    assert (type(sampler), type(objective), type(generator)) == (ChickenSampler, BothSwerve, Bonus)
    assert main(["train", "--config", _yaml(tmp_path, flags), "--run-dir", str(tmp_path / "run")]) == 0
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert [config[k] for k in ("sampler", "loss", "generator")] == ["demo_chicken", "demo_both_swerve", "demo_bonus"]
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())[config["exact_block"]]
    # The bonus at (1, 1) was learned: both players swerve more often than in the untouched games.
    assert evaluation["metric_name"] == "-P(1,1)" and evaluation["metric"] < evaluation["baseline"]
    model = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]
    assert float(model["bonus"]) > 0


def test_a_plugin_task_trains_with_its_own_profile(tmp_path, capsys):
    cfg = resolve_train_config({"task": "demo_swerve"})
    assert (cfg.steps, cfg.batch_size, cfg.eval_contexts) == (4, 2, 3)
    assert main(["train", "--task", "demo_swerve", "--run-dir", str(tmp_path / "run")]) == 0
    evaluation = json.loads((tmp_path / "run" / "eval.json").read_text())[cfg.exact_block]
    assert evaluation["contexts"] == 3 and evaluation["metric"] < evaluation["baseline"]


def _yaml(folder, flags: dict) -> str:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(flags))
    return str(path)


def test_a_bug_in_a_plugin_is_one_line_naming_the_plugin(tmp_path, capsys, monkeypatch):
    """An exception no command expects (here a concept's operator raising RuntimeError) is exit 1 and one line
    naming the plugin and the function; DID_TRACEBACK=1 prints the traceback before it."""
    broken = types.ModuleType("did_broken")
    broken.did_register_concepts = hookimpl(lambda register: register.add(BrokenConcept.name, BrokenConcept))
    game = tmp_path / "chicken.json"
    game.write_text(json.dumps({"payoffs": classic_game("chicken").tolist()}))
    line = (f"did: error: plugin did-broken, in {__name__}.BrokenConcept.operator: RuntimeError: no rows here")
    monkeypatch.delenv("DID_TRACEBACK", raising=False)
    with toys.installed(broken, "broken", "did-broken"):
        assert main(["solve", str(game), "--concept", BrokenConcept.name]) == 1
        out, err = capsys.readouterr()
        assert out == "" and err == line + " (DID_TRACEBACK=1 shows the traceback)\n"
        monkeypatch.setenv("DID_TRACEBACK", "1")
        assert main(["solve", str(game), "--concept", BrokenConcept.name]) == 1
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last):") and "in operator" in err
        assert err.splitlines()[-1] == line


def test_a_mechanism_task_gets_its_command_lines_from_train_eval_and_design(tmp_path, capsys):
    """``did train --task``, ``did eval --shipped``, ``did design`` and a run of the task (``did eval RUN_DIR``,
    ``did train --resume RUN_DIR``) hand the whole command line to the task's own commands."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"task": "demo_price", "steps": 3}))
    POSTED_PRICE.calls.clear()
    assert main(["train", "--task", "demo_price", "--steps", "3"]) == 11
    assert main(["train", "--resume", str(run)]) == 11
    assert main(["eval", "--shipped=demo_price", "--samples", "10"]) == 12
    assert main(["eval", str(run)]) == 12
    assert main(["design", "demo_price", "prices.json", "--json"]) == 13
    assert POSTED_PRICE.calls == [
        ("train", ["--task", "demo_price", "--steps", "3"]), ("train", ["--resume", str(run)]),
        ("evaluate", ["--shipped=demo_price", "--samples", "10"]), ("evaluate", [str(run)]),
        ("design", ["demo_price", "prices.json", "--json"])]
    assert main(["plugins"]) == 0
    assert "demo_price" in capsys.readouterr().out.split("mechanisms:", 1)[1].split("commands:", 1)[0]


def test_a_mechanism_task_is_not_a_game_task():
    with pytest.raises(UnknownNameError, match="designs a mechanism"):
        get_task("demo_price")
    with pytest.raises(UnknownNameError, match="mechanism tasks: .*demo_price"):
        get_task("no_such_task")


def test_a_name_registered_as_game_task_and_mechanism_task_is_refused():
    twin = types.ModuleType("did_twin")
    twin.did_register_mechanisms = hookimpl(lambda register: register.add("demo_swerve", POSTED_PRICE.task()))
    with toys.installed(twin, "twin", "did-twin") as state:
        (error,) = [e for e in state.errors if "demo_swerve" in e]
        assert "did-demo (game task)" in error and "did-twin (mechanism task)" in error and "neither" in error
        POSTED_PRICE.calls.clear()
        assert main(["train", "--task", "demo_swerve", "--steps", "1"]) == 2
        assert POSTED_PRICE.calls == []


def test_a_mechanism_run_folder_is_started_once_and_read_for_its_task(tmp_path):
    from did_core.files import UnreadableFile
    from did_core.mechanism_task import read_run_config, start_run
    from did_core.runs import RunDirError

    run = start_run(tmp_path / "run", "demo_price", {"settings": {"price": 0.5}})
    run.release()
    assert read_run_config(tmp_path / "run", "demo_price") == {"task": "demo_price", "settings": {"price": 0.5}}
    with pytest.raises(RunDirError, match="already holds a run"):
        start_run(tmp_path / "run", "demo_price", {})
    with pytest.raises(RunDirError, match="is not a run of the task 'other'"):
        read_run_config(tmp_path / "run", "other")
    with pytest.raises(RunDirError, match="no config.json"):
        read_run_config(tmp_path, "demo_price")
    (tmp_path / "run" / "config.json").write_text("{")
    with pytest.raises(UnreadableFile, match="config.json.*is not valid JSON"):
        read_run_config(tmp_path / "run", "demo_price")

"""Concepts take validated options, as blocks and task components do (issue 25, item 9).

A concept declares a pydantic ``Options`` model; ``Concept(**options)`` validates it (one
line for a wrong option), two concepts are equal when their classes and options are, and
a run names them in its config (``concept_options``, the flag ``--concept-options``).
"""

from __future__ import annotations

import json
import types

import pytest
import torch
import yaml

import toys
from did_core.cli import main
from did_core.components import build_components
from did_core.config import ConfigError, TrainConfig, resolve_train_config
from did_core.hookspecs import hookimpl
from did_core.plugins import get_concept
from did_core.runs import RunDir
from did_core.train import check_resume, train
from did_core.testing import CappedCCE


class CapCCE(CappedCCE):
    """:class:`did_core.testing.CappedCCE` under this module's own name."""

    name = "test_option_cap"


plugin = types.ModuleType("did_test_concept_options")
plugin.did_register_concepts = hookimpl(lambda register: register.add(CapCCE.name, CapCCE))

TINY = {"task": "toy_task", "steps": 2, "batch_size": 4, "eval_contexts": 4, "checkpoint_every": 1,
        "sampler_options": {"min_actions": 2, "max_actions": 2}, "generator_options": {"width": 4, "depth": 1}}


@pytest.fixture(autouse=True)
def _plugin():
    with toys.installed(plugin, "test_concept_options", "did-test-concept-options") as state:
        assert not state.errors, state.errors
        yield


def test_options_are_validated_and_a_wrong_one_is_one_line():
    assert CapCCE().options.cap == 0.5 and CapCCE(cap=0.25).options.cap == 0.25
    with pytest.raises(ValueError, match=r"^invalid options for concept 'test_option_cap': cap: Input should be "
                                         r"less than or equal to 1$"):
        CapCCE(cap=2)
    with pytest.raises(ValueError, match="invalid options for concept 'test_option_cap': cpa: Extra inputs are not "
                                         "permitted"):
        CapCCE(cpa=0.3)
    with pytest.raises(ValueError, match="invalid options for concept 'cce': cap: Extra inputs are not permitted"):
        get_concept("cce").__class__(cap=0.3)  # a concept without options takes none


def test_concepts_are_equal_when_class_and_options_are():
    assert CapCCE(cap=0.3) == CapCCE(cap=0.3) and hash(CapCCE(cap=0.3)) == hash(CapCCE(cap=0.3))
    assert CapCCE(cap=0.3) != CapCCE(cap=0.4) and CapCCE() == CapCCE(cap=0.5)
    assert CapCCE() != get_concept("cce") and get_concept("cce") == get_concept("cce")
    assert len({CapCCE(cap=0.3), CapCCE(cap=0.3), CapCCE(cap=0.4)}) == 2
    assert repr(CapCCE(cap=0.3)) == "<concept test_option_cap cap=0.3>" and repr(get_concept("ce")) == "<concept ce>"


def test_a_concept_describes_its_options_in_one_line():
    assert CapCCE.describe_options() == "cap: float = 0.5"
    assert get_concept("cce").describe_options() == ""


def test_get_concept_builds_a_registered_concept_with_options():
    assert get_concept(CapCCE.name, {"cap": 0.3}) == CapCCE(cap=0.3)
    assert get_concept(CapCCE.name) == CapCCE()
    with pytest.raises(ValueError, match="invalid options for concept 'test_option_cap': cap: Input should be "
                                         "greater than 0"):
        get_concept(CapCCE.name, {"cap": 0})
    with pytest.raises(ValueError, match="has its options already"):
        get_concept(CapCCE(cap=0.3), {"cap": 0.4})
    assert get_concept(CapCCE(cap=0.3)) == CapCCE(cap=0.3)


def test_the_run_config_validates_concept_options_and_the_components_use_them():
    cfg = resolve_train_config({**TINY, "concept": CapCCE.name, "concept_options": {"cap": 0.4}})
    assert cfg.concept_options == {"cap": 0.4}
    assert build_components(cfg).concept == CapCCE(cap=0.4)
    assert resolve_train_config({**TINY}).concept_options == {} == TrainConfig(task="t").concept_options
    with pytest.raises(ConfigError, match=r"^invalid options for concept 'test_option_cap': cap: Input should be "
                                          r"less than or equal to 1$"):
        resolve_train_config({**TINY, "concept": CapCCE.name, "concept_options": {"cap": 1.5}})
    with pytest.raises(ConfigError, match="invalid options for concept 'cce': cap: Extra inputs are not permitted"):
        resolve_train_config({**TINY, "concept_options": {"cap": 0.3}})
    with pytest.raises(ConfigError, match="concept_options"):
        resolve_train_config({**TINY, "concept_options": "cap"})


def test_did_train_takes_concept_options_as_a_flag(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--concept-options" in capsys.readouterr().out


def test_a_run_records_its_concept_options_and_older_runs_still_resume(tmp_path):
    # cap 1: random 2x2 games may have only a pure CCE, which a lower cap would leave without one.
    cfg = resolve_train_config({**TINY, "concept": CapCCE.name, "concept_options": {"cap": 1.0}})
    train(cfg, tmp_path / "run")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["concept_options"] == {"cap": 1.0}
    with pytest.raises(ValueError, match=r"cannot resume .* concept_options="):
        check_resume(RunDir(tmp_path / "run"), cfg.model_copy(update={"concept_options": {"cap": 0.5}}))
    # A run made before the field existed: its stored config lacks it, and it resumes with the default.
    plain = resolve_train_config(TINY)
    train(plain, tmp_path / "old")
    run = RunDir(tmp_path / "old")
    state = torch.load(run.path / "checkpoint.pt", weights_only=True)
    stored = json.loads(state["config"])
    del stored["concept_options"]
    state["config"] = json.dumps(stored)
    torch.save(state, run.path / "checkpoint.pt")
    check_resume(run, plain)

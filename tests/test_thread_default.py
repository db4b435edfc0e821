"""``did train`` runs on one intra-op thread unless asked for more (issue 25, item 5).

Batched small games gain nothing from intra-op threads, and on a busy machine a second
thread waits for a core another process holds: ``did train --task inverse --block
exact_newton`` ran 50 steps at a median 19.5 steps/s with one thread and 4.6 with two
beside other jobs on a 2-core machine (the same losses).
"""

from __future__ import annotations

import pytest
import torch

from did_core.config import TrainConfig, generic_default, resolve_train_config
from did_core.train import train

TINY = {"task": "toy_task", "steps": 1, "batch_size": 2, "eval_contexts": 2,
        "sampler_options": {"min_actions": 2, "max_actions": 2}, "generator_options": {"width": 4, "depth": 1}}


@pytest.fixture()
def _threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_default_is_one_thread_and_threads_n_still_asks_for_n():
    assert generic_default("threads") == 1 == TrainConfig(task="t").threads
    assert resolve_train_config(TINY).threads == 1
    assert resolve_train_config({**TINY, "threads": 2}).threads == 2
    assert resolve_train_config({**TINY, "threads": None}).threads == 1  # a flag not given
    assert resolve_train_config(TINY, {"threads": None}).threads is None  # a config file's null: torch's default


def test_training_sets_the_threads(tmp_path, _threads):
    torch.set_num_threads(2)
    train(resolve_train_config(TINY), tmp_path / "one")
    assert torch.get_num_threads() == 1
    train(resolve_train_config({**TINY, "threads": 2}), tmp_path / "two")
    assert torch.get_num_threads() == 2

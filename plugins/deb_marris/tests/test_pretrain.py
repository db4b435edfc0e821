"""`did deb train / export / validate` end to end on a tiny network (seconds)."""

import json

import pytest
import torch

from did_core.plugins import get_concept
from did_deb_marris import DebMarrisBlock, load_weights
from did_deb_marris.cli import main
from did_deb_marris.pretrain import PretrainConfig, random_batch


def test_random_batch_buckets_cover_the_batch():
    cfg = PretrainConfig(batch_size=10, buckets=3, max_actions=5)
    buckets = random_batch(cfg, torch.Generator().manual_seed(0))
    assert sum(g.shape[0] for g, _ in buckets) == 10
    for games, mask in buckets:
        assert games.shape[2] == mask.shape[2] == int(mask.sum(-1).max())
        assert (mask.sum(-1) >= 2).all()


def test_train_export_validate(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--concept", "cce", "--max-actions", "3", "--steps", "4", "--batch-size", "4",
            "--width", "4", "--validate-every", "2", "--val-games", "2", "--run-dir", str(run)]
    assert main(argv) == 0
    history = json.loads((run / "validation.json").read_text())
    assert [h["step"] for h in history] == [2, 4]
    assert {r["size"] for r in history[0]["rows"]} == {2, 3}
    assert (run / "checkpoint.pt").exists() and (run / "tb").is_dir()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4
    assert main(["train", "--resume", str(run)]) == 0  # finished: resumes at step 4, does nothing more
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 4
    out = tmp_path / "w.pt"
    assert main(["export", str(run), str(out)]) == 0
    net, meta = load_weights(out)
    assert meta["max_actions"] == 3 and meta["step"] == 4 and net.concept.name == "cce"
    eq = DebMarrisBlock(weights=str(out))(torch.randn(2, 2, 3, 2, dtype=torch.float64), concept=get_concept("cce"))
    assert torch.allclose(eq.sigma.sum((1, 2)), torch.ones(2, dtype=torch.float64))
    assert main(["validate", "--weights", str(out), "--games", "2", "--sizes", "2,3"]) == 0
    assert "| 3x3 |" in capsys.readouterr().out


@pytest.mark.parametrize("flag, message", [(["--steps", "-2"], "--steps must be positive"),
                                           (["--batch-size", "-4"], "--batch-size must be positive"),
                                           (["--max-actions", "1"], "--max-actions must be at least 2")])
def test_bad_pretraining_options_give_one_line_and_no_directory(tmp_path, capsys, flag, message):
    from did_core.cli import main

    assert main(["deb", "train", "--concept", "cce", *flag, "--run-dir", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

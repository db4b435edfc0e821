"""Shared data and helpers for the did_core.game_io tests.

The Selten sample game (in nested-list and both .nfg forms) is used by the
.nfg, JSON/npy and example-file tests alike, so it and the two small helpers
live here once instead of in each test file.
"""

from __future__ import annotations

from pathlib import Path

import torch


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_game(game: torch.Tensor, expected) -> None:
    assert game.dtype == torch.float64
    assert game.device.type == "cpu"
    torch.testing.assert_close(game, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=0)


# Selten (IJGT 1975) Figure 2 normal form: the sample game of the Gambit docs.
# Player 1 has 3 strategies, player 2 has 2. Contingencies listed with player 1
# fastest: (1,1)->1,1  (2,1)->0,2  (3,1)->0,2  (1,2)->1,1  (2,2)->0,3  (3,2)->2,0.
SELTEN = [
    [[1, 1], [0, 0], [0, 2]],  # G[0][a1][a2]
    [[1, 1], [2, 3], [2, 0]],  # G[1][a1][a2]
]

SELTEN_PAYOFF_NFG = """NFG 1 R "Selten (IJGT, 75), Figure 2, normal form"
{ "Player 1" "Player 2" } { 3 2 }

1 1 0 2 0 2 1 1 0 3 2 0
"""

SELTEN_OUTCOME_NFG = """NFG 1 R "Selten (IJGT, 75), Figure 2, normal form" { "Player 1" "Player 2" }

{
{ "1" "2" "3" }
{ "1" "2" }
}

{
{ "" 1, 1 }
{ "" 0, 2 }
{ "" 0, 2 }
{ "" 1, 1 }
{ "" 0, 3 }
{ "" 2, 0 }
}
1 2 3 4 5 6
"""

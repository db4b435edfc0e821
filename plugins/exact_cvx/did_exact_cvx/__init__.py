"""Exact eps-ME (C)CE blocks for DID."""

from did_exact_cvx.ecos_block import EcosBlock, solve_game

__all__ = ["EcosBlock", "solve_game"]

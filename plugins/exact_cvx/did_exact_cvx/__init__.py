"""Exact eps-ME (C)CE blocks for DID."""

from did_exact_cvx.ecos_block import EcosBlock, solve_game
from did_exact_cvx.newton import NewtonBlock, NewtonResult, solve_dual_newton

__all__ = ["EcosBlock", "solve_game", "NewtonBlock", "NewtonResult", "solve_dual_newton"]

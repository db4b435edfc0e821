"""Deep Incentive Design: incentive design through differentiable equilibrium blocks."""

__version__ = "0.1.0"

"""The default scheduling generator: a P2P payoff generator ending in ``-softplus``, gauge-fixed.

Adding to player ``p``'s taxes any function of the others' actions ``a_{-p}``
changes no deviation gain, hence no equilibrium (docs/mathematics.md, section 3.1), but it changes
the taxes paid. With ``normalize`` (the default) the generator removes that free
level before the output map: from the last layer's output ``r`` it takes, per
player and ``a_{-p}``, the excess over the smallest value on ``p``'s own real
actions, and returns

    -x_p(a) = -(softplus(r_p(a) - min_{d} r_p(d, a_{-p})) - log 2)   (<= 0)

so every player always has a tax-free action, and the output does not depend on
the level of ``r`` at all. Measured on the quick profile (CCE, relative eps 0.05),
the two simpler forms fail:

* plain ``-softplus(r)`` (``normalize=False``): the level of the taxes moves no
  equilibrium, so the payment term ``lam E sum_i x_i`` drives every ``r`` down
  until the softplus saturates: all taxes 0 and no gradient within 25 steps,
  makespan unchanged (with ``lam = 0`` the level drifts up instead: mean tax 16);
* ``softplus(r)`` minus its own-action minimum: two players train, but with
  three the same drift of ``r`` saturates the softplus and every tax dies.
"""

from __future__ import annotations

from did_core.nn.generators import LineGaugedGenerator

__all__ = ["TaxGenerator"]


class TaxGenerator(LineGaugedGenerator):
    """``context -> -x [B, N, M..]`` with taxes ``x >= 0`` (see the module docstring).

    Options: ``width``, ``depth``, ``aggregation``, ``output_scale`` of the P2P
    stack, and ``normalize`` (a tax-free action on every line).
    """

    sign = -1.0

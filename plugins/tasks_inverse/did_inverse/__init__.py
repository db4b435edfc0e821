"""The inverse-equilibrium task of DID (SPEC section 6.2)."""

from did_inverse.task import InverseObjective, InverseSampler

__all__ = ["InverseObjective", "InverseSampler"]

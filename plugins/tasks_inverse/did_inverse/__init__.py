"""The inverse-equilibrium task of DID (docs/mathematics.md, section 6.2)."""

from did_inverse.task import InverseObjective, InverseSampler

__all__ = ["InverseObjective", "InverseSampler"]

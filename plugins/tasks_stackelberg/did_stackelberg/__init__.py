"""Stackelberg tasks of DID: leader commitment (``commitment``) and matrix design (``matrix_design``)."""

from did_stackelberg.commitment import CommitmentObjective, CommitmentSampler
from did_stackelberg.generators import CommitmentGenerator, PaymentGenerator
from did_stackelberg.matrix_design import MatrixDesignObjective, MatrixDesignSampler
from did_stackelberg.reference import edge_search, me_best_response, strong_stackelberg

__all__ = [
    "CommitmentGenerator",
    "CommitmentObjective",
    "CommitmentSampler",
    "MatrixDesignObjective",
    "MatrixDesignSampler",
    "PaymentGenerator",
    "edge_search",
    "me_best_response",
    "strong_stackelberg",
]

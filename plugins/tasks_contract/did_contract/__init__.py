"""The multi-agent contract-design task of DID (docs/mathematics.md, section 6.1)."""

from did_contract.generator import ContractGenerator, contract_features
from did_contract.task import (
    ContractObjective,
    ContractSampler,
    induced_games,
    outcome_distribution,
    payment_weight,
    principal_utility,
)

__all__ = [
    "ContractGenerator",
    "ContractObjective",
    "ContractSampler",
    "contract_features",
    "induced_games",
    "outcome_distribution",
    "payment_weight",
    "principal_utility",
]

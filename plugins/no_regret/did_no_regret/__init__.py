"""DID plugin ``did-plugins-no-regret``: the equilibrium block ``no_regret`` (followers as no-regret learners)."""

from did_no_regret.block import NoRegretBlock, NoRegretOptions
from did_no_regret.learners import LearnerConfig, play

__all__ = ["NoRegretBlock", "NoRegretOptions", "LearnerConfig", "play"]

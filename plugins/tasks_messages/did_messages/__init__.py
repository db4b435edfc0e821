"""DID tasks with private types and messages (seed 004): message allocation and the sequential price mechanism
with messages (muSPM), designed through the followers' eps-ME Bayesian CCE (:mod:`did_core.bayesian`)."""

"""Dynamic affine-maximizer mechanisms on MDPs (sequential sales, task scheduling, gridworld)."""

"""The cohort simulator: realistic synthetic patients, events and their true dropout probabilities."""

from simulation.simulator import SimulatedCohort, simulate
from simulation.truth import true_dropout_probability

__all__ = ["SimulatedCohort", "simulate", "true_dropout_probability"]

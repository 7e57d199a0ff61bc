"""The cohort simulator: realistic synthetic patients, events and their true dropout probabilities."""

"""True dropout probabilities of simulated patients, from their latent state at the as-of time."""

from __future__ import annotations

import numpy as np
import pandas as pd

from config import FeatureConfig, LabelConfig
from features.io import TRUE_PROBABILITY_COLUMNS
from simulation.engagement import (
    LATENT_COLUMNS,
    activity_probability,
    combine_hazard,
    day_hazard,
    lapse_hazard,
    quit_hazard,
    silent_days_before,
)

DEFINITIONS = ("either", "inactivity", "discontinuation")
TRUTH_COLUMNS = ("patient_id", *LATENT_COLUMNS, "discontinue_probability", "quit_day", "active_days", "simulated_days")
_ROWS_PER_BLOCK = 200_000


def active_history(truth: pd.DataFrame) -> np.ndarray:
    """The simulated daily activity of each truth row as a bool matrix (rows x simulated days)."""
    strings = truth["active_days"].to_numpy(dtype=str)
    width = len(strings[0]) if len(strings) else 0
    return (np.array(strings, dtype=f"S{width}").view(np.uint8).reshape(len(strings), width) == ord("1"))


def _quit_any(latent: pd.DataFrame, days: np.ndarray, use: np.ndarray, silent0: np.ndarray) -> np.ndarray:
    """P(silent quit within the window | not quit at its start), summed over every use path."""
    lapse_days = float(np.max(latent["lapse_days"].to_numpy()))
    grace = float(np.max(latent["lapse_grace_days"].to_numpy()))
    # Beyond this many silent days the lapse hazard equals its limit to 1e-12.
    cap = int(np.ceil(grace + 28.0 * lapse_days)) + 1
    top = int(min(silent0.max(initial=0) + days.shape[1], cap))
    states = np.arange(top + 1)[None, :]
    mass = np.zeros((len(days), top + 1))
    mass[np.arange(len(days)), np.minimum(silent0, top)] = 1.0
    quit = np.zeros(len(days))
    by_day = day_hazard(latent, days)
    by_lapse = lapse_hazard(latent, states)
    for j in range(days.shape[1]):
        hazard = combine_hazard(latent, days[:, j : j + 1], by_day[:, j : j + 1], by_lapse)
        quit += (mass * hazard).sum(axis=1)
        stay = mass * (1.0 - hazard)
        use_j = use[:, j : j + 1]
        moved = np.zeros_like(mass)
        moved[:, 0] = (stay * use_j).sum(axis=1)
        moved[:, 1:] = stay[:, :-1] * (1.0 - use_j)
        moved[:, top] += stay[:, top] * (1.0 - use_j[:, 0])
        mass = moved
    return quit


def _block_probability(
    latent: pd.DataFrame, as_of_day: np.ndarray, silent0: np.ndarray, horizon: int, definition: str
) -> np.ndarray:
    """Exact label probability for rows of `latent` (one row per snapshot)."""
    steps = np.arange(horizon)[None, :]
    days = as_of_day[:, None] + steps
    use = activity_probability(latent, days)
    # Along the path with no use at all, the silent run just grows by one a day.
    hazard = quit_hazard(latent, days, silent0[:, None] + steps)
    reach = np.concatenate([np.ones((len(days), 1)), np.cumprod((1.0 - hazard) * (1.0 - use), axis=1)], axis=1)
    quit_unused = (reach[:, :-1] * hazard).sum(axis=1)
    never_used = quit_unused + reach[:, -1]
    p_exit = latent["discontinue_probability"].to_numpy()

    quit_day = latent["quit_day"].to_numpy(dtype=float)
    has_quit = ~np.isnan(quit_day) & (quit_day < as_of_day)
    if definition == "inactivity":
        not_yet, already = never_used, 1.0
    else:
        # An explicit discontinuation on the quit day counts even after some use in the window.
        quit_any = np.zeros(len(days))
        need = ~has_quit & (p_exit > 0)
        if need.any():
            quit_any[need] = _quit_any(latent[need], days[need], use[need], silent0[need])
        if definition == "discontinuation":
            not_yet, already = p_exit * quit_any, 0.0
        else:
            not_yet, already = never_used + p_exit * (quit_any - quit_unused), 1.0
    return np.where(has_quit, already, not_yet)


def true_dropout_probability(
    truth: pd.DataFrame, snapshots: pd.DataFrame, label_config: LabelConfig = LabelConfig()
) -> np.ndarray:
    """P(dropout label = 1 | the simulator's latent state at as-of day d), one value per snapshot row.

    The state at d is each patient's parameters, whether they had silently quit before
    day d and how many days in a row they had been silent; activity from day d on is never used.
    """
    if label_config.definition not in DEFINITIONS:
        raise ValueError(
            f"label definition '{label_config.definition}' is not one of {', '.join(DEFINITIONS)}"
        )
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise ValueError(f"truth: missing column(s) {', '.join(missing)} (is this a lapse simulator truth table?)")
    for column in ("patient_id", "as_of_day"):
        if column not in snapshots.columns:
            raise ValueError(f"snapshots: missing column '{column}'")
    position = pd.Index(truth["patient_id"]).get_indexer(snapshots["patient_id"])
    if (position < 0).any():
        raise ValueError(f"snapshots: {(position < 0).sum()} row(s) name patients that are not in the truth table")
    as_of_day = snapshots["as_of_day"].to_numpy(dtype=np.int64)
    if (as_of_day < 0).any():
        raise ValueError("snapshots: as_of_day must not be negative")
    # Whether a patient quit before d is only known for the days that were simulated.
    beyond = as_of_day > truth["simulated_days"].to_numpy()[position]
    if beyond.any():
        raise ValueError(f"snapshots: {beyond.sum()} row(s) ask about days past the simulated window")

    out = np.empty(len(snapshots))
    for start in range(0, len(snapshots), _ROWS_PER_BLOCK):
        rows = slice(start, start + _ROWS_PER_BLOCK)
        latent = truth.iloc[position[rows]]
        silent0 = silent_days_before(active_history(latent), as_of_day[rows])
        out[rows] = _block_probability(
            latent, as_of_day[rows], silent0, label_config.horizon_days, label_config.definition
        )
    return out


def true_probability_table(
    truth: pd.DataFrame,
    as_of_days: tuple[int, ...] = FeatureConfig().as_of_days,
    horizon_days: int = LabelConfig().horizon_days,
    definitions: tuple[str, ...] = DEFINITIONS,
) -> pd.DataFrame:
    """The true dropout probability of every patient at every as-of day that was simulated, per definition.

    One row per (patient_id, as_of_day, definition) with `horizon_days` and `probability`: the table
    `lapse simulate` writes, so training can measure the ceiling without importing the simulator.
    """
    days = np.asarray(sorted(set(as_of_days)), dtype=np.int64)
    simulated = truth["simulated_days"].to_numpy()
    patient = np.repeat(np.arange(len(truth)), len(days))
    day = np.tile(days, len(truth))
    keep = day <= simulated[patient]
    snapshots = pd.DataFrame({
        "patient_id": truth["patient_id"].to_numpy()[patient[keep]],
        "as_of_day": day[keep],
    })
    parts = []
    for definition in definitions:
        config = LabelConfig(horizon_days=horizon_days, definition=definition)
        parts.append(snapshots.assign(
            definition=pd.Series([definition] * len(snapshots), dtype="str"),
            horizon_days=np.int64(horizon_days),
            probability=true_dropout_probability(truth, snapshots, config),
        ))
    return pd.concat(parts, ignore_index=True)[list(TRUE_PROBABILITY_COLUMNS)]

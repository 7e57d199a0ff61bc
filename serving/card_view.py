"""The served model's card in clinician words: version, training data, accuracy, limits (for the clinician page)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from config import LabelConfig
from models.loaded import LoadedModel
from models.metadata import TrainingWindow

from .scoring import model_card

_LEVEL_WORDS = {
    "usage": "How the patient uses the program",
    "patient": "The patient (baseline and clinical)",
    "intervention": "The support they get",
    "system": "How they came to the program",
}


CANNOT_SEE = (
    "Anything outside the program: life events, other treatment, or contact with the care team that is not "
    "recorded in the program (only coach messages inside it are).",
    "Why someone stops. A patient who stops because they feel better looks the same as one who gives up.",
    "Personality, motivation and social barriers such as time, money or stigma. The only system-level "
    "information it has is how the patient was referred.",
    "Much about new patients: in the first days it has little use of the program to go on, and baseline "
    "characteristics alone predict dropout poorly.",
    "Patients unlike those it learned from: other programs, other populations, or a changed program may be "
    "scored less accurately.",
)


# The promotion gates (training/promotion.py, training/fairness.py) in clinician words.
GATE_WORDS = {
    "min_auc": "ranking patients well enough",
    "auc_vs_champion": "ranking patients at least about as well as the version it replaced",
    "ece": "risks close to the dropout actually seen",
    "comparable": "a fair comparison with the version it replaced",
}


def _gate_words(name: str) -> str:
    if name in GATE_WORDS:
        return GATE_WORDS[name]
    if "fair" in name or "tpr" in name or "group" in name:
        return f"treating patient groups alike ({name.replace('_', ' ')})"
    return name.replace("_", " ")


def _long_date(text: Any) -> str | None:
    try:
        return pd.Timestamp(text).tz_convert("UTC").strftime("%-d %B %Y")
    except (ValueError, TypeError):
        return None


def promotion_words(name: str, version: str) -> dict[str, Any]:
    """How this version came to be served, from its registry tags and promotion run (training/promotion.py):
    promoted after passing every gate, promoted by override (with the reason), or no promotion recorded."""
    try:
        client = MlflowClient()
        tags = client.get_model_version(name, version).tags
        run_id = tags.get("promotion_run_id")
        run = client.get_run(run_id) if run_id else None
    except MlflowException:
        return {"outcome": "unknown", "text": "How this version was approved could not be read from the registry."}
    if run is None:
        return {"outcome": "unrecorded", "text": "No promotion check is recorded for this version: it was put into "
                                                 "use directly, without the promotion gates."}
    gates = {key.removeprefix("gate."): value == "pass" for key, value in tags.items() if key.startswith("gate.")}
    passed = [_gate_words(g) for g, ok in gates.items() if ok]
    failed = [_gate_words(g) for g, ok in gates.items() if not ok]
    outcome = run.data.tags.get("lapse.promotion", "")
    when = _long_date(pd.Timestamp(run.info.start_time, unit="ms", tz="UTC")) or "an unknown date"
    if outcome == "promoted_by_override":
        reason = run.data.tags.get("override_reason") or tags.get("override_reason") or "no reason recorded"
        text = (f"Put into use on {when} by an override: it failed the check{'s' if len(failed) != 1 else ''} for "
                f"{'; '.join(failed) or 'an unrecorded gate'}. The reason given: “{reason}”.")
    elif outcome == "promoted":
        text = f"Put into use on {when} after passing every check: {'; '.join(passed)}."
    elif outcome == "refused":
        text = (f"The promotion check on {when} refused this version (it failed the checks for {'; '.join(failed)}), "
                "yet it is being served.")
    else:
        text = "The promotion record of this version does not say how it was approved."
    return {"outcome": outcome or "unknown", "text": text, "passed": passed, "failed": failed}


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _slice_words(name: str | None) -> str:
    if not name:
        return "on held-out patients"
    if name.startswith("day") and name[3:].isdigit():
        return f"{name[3:]} days after enrolment"
    return "over all scoring days" if name == "pooled" else name


def _metric_words(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """The headline metrics as sentences a clinician can read (only the ones the model records)."""
    m = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
         and math.isfinite(v)}
    out = []
    if "auc" in m:
        out.append({"name": "Ranking", "value": _pct(m["auc"]),
                    "text": f"Given one patient who dropped out and one who did not, it gave the higher risk to "
                            f"the one who dropped out {_pct(m['auc'])} of the time (50% would be guessing; "
                            f"AUC {m['auc']:.2f})."})
    for capacity in ("10pct", "5pct"):
        p, r = m.get(f"precision_at_{capacity}"), m.get(f"recall_at_{capacity}")
        if p is not None and r is not None:
            share = capacity.removesuffix("pct")
            out.append({"name": f"Contacting the top {share}%", "value": _pct(p),
                        "text": f"Of the {share}% of patients it rated most at risk, {_pct(p)} did drop out; "
                                f"they were {_pct(r)} of everyone who dropped out."})
            break
    if "ece" in m:
        out.append({"name": "Calibration", "value": f"{m['ece'] * 100:.1f} points",
                    "text": f"Its risks were off by {m['ece'] * 100:.1f} percentage points on average: a risk "
                            "of 30% means roughly 30 in 100 such patients dropped out."})
    if "dropout_rate" in m:
        out.append({"name": "Dropout in the test group", "value": _pct(m["dropout_rate"]),
                    "text": f"{_pct(m['dropout_rate'])} of the test patients dropped out."})
    if "largest_tpr_gap" in m:
        gap = m["largest_tpr_gap"] * 100
        text = ("Among patients who dropped out, the share it flagged for support differed between patient groups "
                f"(such as sex or age) by at most {gap:.0f} percentage points." if gap >= 0.5 else
                "No difference was measured between patient groups (such as sex or age) in the share of dropouts "
                "it flagged; groups too small to compare are left out.")
        out.append({"name": "Fairness", "value": f"{gap:.0f} points", "text": text})
    if "ceiling_auc" in m:
        out.append({"name": "Best possible on this data", "value": _pct(m["ceiling_auc"]),
                    "text": f"On simulated data the true risks would rank {_pct(m['ceiling_auc'])} correctly; "
                            "no model can do better."})
    return out


def _date(text: Any) -> str | None:
    try:
        return pd.Timestamp(text).tz_convert("UTC").date().isoformat()
    except (ValueError, TypeError):
        return None


def _windows(window: TrainingWindow) -> list[dict[str, Any]]:
    words = {"train": "Learned from", "validation": "Tuned and calibrated on", "test": "Tested on"}
    return [{"part": title, "from": _date(part.enrolled_from), "to": _date(part.enrolled_to),
             "patients": part.patients, "snapshots": part.rows}
            for part, title in ((getattr(window, name), title) for name, title in words.items())]


def _label_words(label: LabelConfig) -> str:
    days = label.horizon_days
    within = f"within the next {days} days"
    if label.definition == "inactivity":
        how = f"no use of the program for {days} days"
    elif label.definition == "discontinuation":
        how = "leaving the program (recorded as discontinued)"
    else:
        how = f"no use of the program for {days} days, or leaving the program"
    return f"The chance that the patient drops out {within}: {how}."


def model_card_view(model: LoadedModel) -> dict[str, Any]:
    """The served model's card in clinician words: version, training data, accuracy, limits."""
    card = model_card(model)
    window = model.metadata.training_window
    levels: dict[str, list[str]] = {}
    for spec in model.specs:
        levels.setdefault(spec.level, []).append(spec.label)
    return {
        "name": card.name,
        "version": card.version,
        "alias": card.alias,
        "promotion": promotion_words(card.name, card.version),
        "loaded_at": str(card.loaded_at),
        "predicts": _label_words(model.label_config),
        "horizon_days": card.horizon_days,
        "data_end": _date(window.data_end),
        "windows": _windows(window),
        "evaluated": f"Measured on the test patients {_slice_words(card.metrics.get('slice'))}.",
        "metrics": _metric_words(card.metrics),
        "tiers": [{"tier": t.tier, "min_risk": t.min_risk} for t in card.thresholds],
        "trigger_risk": card.trigger_risk,
        "cannot_see": list(CANNOT_SEE),
        "looks_at": [{"level": _LEVEL_WORDS.get(level, level), "labels": labels} for level, labels in
                     sorted(levels.items(), key=lambda kv: list(_LEVEL_WORDS).index(kv[0])
                            if kv[0] in _LEVEL_WORDS else 99)],
    }

"""Promotion gates: the candidate becomes champion only if it is not worse on the same holdout.

Both models are re-scored on the candidate run's temporal test set. Every gate result is
logged (a promotion run, and tags on the candidate version) before the `champion` alias
moves, and the alias is the last thing touched: a refused, failed or interrupted promotion
leaves the champion where it was. A refusal is a decision, not an error: its run finishes
normally, tagged `lapse.promotion=refused`, with the reasons as an artifact.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from config import DEFAULT_PATHS, Paths, PromotionGates, TrainingConfig
from training.evaluation import evaluate_by_slice, headline_slice, subgroup_report
from training.fairness import FairnessReport, group_evidence
from training.fit import GROUP_PREFIX, LABEL, PATIENT_KEY

log = logging.getLogger("lapse.promotion")
# Failing group checks spelled out in a gate's detail; the rest are counted (all are in the artifacts).
MAX_DETAILED = 5


@dataclass(frozen=True)
class GateResult:
    """One gate: its name, whether it passed, the measured value and the limit it was held to."""

    name: str
    passed: bool
    value: float
    limit: float
    detail: str


@dataclass(frozen=True)
class PromotionDecision:
    """What `lapse promote` decided and why."""

    candidate_version: str
    champion_version: str | None
    gates: tuple[GateResult, ...]
    passed: bool
    promoted: bool
    override_reason: str | None
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    run_id: str | None
    note: str = ""
    fairness: FairnessReport | None = None


class NotComparable(ValueError):
    """The champion cannot be scored on the candidate's holdout (it needs features the holdout lacks)."""


def holdout_risk(scorer, holdout: pd.DataFrame) -> np.ndarray:
    """A RiskScorer's risks for every holdout row (NotComparable if the holdout lacks its features)."""
    missing = [f for f in scorer.feature_names if f not in holdout.columns]
    if missing:
        raise NotComparable(f"holdout lacks the model's feature(s): {', '.join(missing[:10])}")
    return scorer.predict_risk(holdout[list(scorer.feature_names)].to_numpy(dtype=np.float64, na_value=np.nan))


def holdout_groups(holdout: pd.DataFrame) -> pd.DataFrame:
    """The holdout's subgroup label columns, named by attribute."""
    group_cols = [c for c in holdout.columns if c.startswith(GROUP_PREFIX)]
    return holdout[group_cols].rename(columns=lambda c: c[len(GROUP_PREFIX):])


def holdout_metrics(risk: np.ndarray, threshold: float, holdout: pd.DataFrame,
                    config: TrainingConfig = TrainingConfig()) -> dict[str, float]:
    """Headline-slice metrics of risks on a holdout frame, with the subgroup TPR gaps (reported, not gated)."""
    y = holdout[LABEL].to_numpy(dtype=np.float64)
    days = holdout["as_of_day"].to_numpy()
    headline = headline_slice(days, config.headline_day)
    metrics = evaluate_by_slice(y, risk, days, config)[headline]
    _, gaps = subgroup_report(y, risk, days, holdout_groups(holdout), threshold, (headline,), config)
    return {**metrics, "largest_tpr_gap": gaps[headline]["largest"],
            **{f"tpr_gap.{k}": v for k, v in gaps[headline].items() if k != "largest"}}


def fairness_evidence(holdout: pd.DataFrame, risk: np.ndarray, threshold: float,
                      gates: PromotionGates = PromotionGates(), seed: int = TrainingConfig().seed,
                      champion_risk: np.ndarray | None = None) -> FairnessReport:
    """The fairness gate's evidence on every holdout row (all as-of days), resampling patients.

    A holdout written before the patient key existed is resampled row by row (its intervals too narrow).
    """
    key = holdout[PATIENT_KEY].to_numpy() if PATIENT_KEY in holdout.columns else None
    return group_evidence(holdout[LABEL].to_numpy(dtype=np.float64), risk, threshold, holdout_groups(holdout),
                          key, gates, seed, champion_risk)


def fairness_gates(report: FairnessReport, with_champion: bool) -> tuple[GateResult, ...]:
    """The fairness report as gates: a group served worse than everyone else, and (with a champion) a
    group served worse than under the champion. A failing detail names attribute, group, metric, interval."""
    attributes = ", ".join(dict.fromkeys(g.attribute for g in report.groups)) or "no attribute in the holdout"
    counts = {status: sum(g.status == status for g in report.groups)
              for status in ("pass", "inconclusive", "insufficient evidence")}
    summary = (f"{len(report.groups)} groups of {attributes}: {counts['pass']} within tolerance, "
               f"{counts['inconclusive']} inconclusive, {counts['insufficient evidence']} insufficient evidence")

    def gate(name: str, failures: list) -> GateResult:
        hidden = len(failures) - MAX_DETAILED
        more = f"; and {hidden} more (fairness/verdict.txt)" if hidden > 0 else ""
        detail = "; ".join(str(f) for f in failures[:MAX_DETAILED]) + more if failures else summary
        return GateResult(name, not failures, float(len(failures)), 0.0, detail)

    vs_champion = [f for f in report.failures if f.metric.endswith("vs champion")]
    results = [gate("subgroup_fairness", [f for f in report.failures if f not in vs_champion])]
    if with_champion:
        results.append(gate("subgroup_vs_champion", vs_champion))
    return tuple(results)


def evaluate_gates(candidate: dict[str, float], champion: dict[str, float] | None,
                   gates: PromotionGates = PromotionGates()) -> tuple[GateResult, ...]:
    """The overall gates: absolute floors always, the AUC comparison only when there is a champion."""
    def ok(value: float, test) -> bool:
        return not math.isnan(value) and bool(test(value))

    auc, ece = candidate["auc"], candidate["ece"]
    results = [
        GateResult("min_auc", ok(auc, lambda v: v >= gates.min_auc), auc, gates.min_auc,
                   f"candidate AUC {auc:.4f} must be at least {gates.min_auc}"),
        GateResult("ece", ok(ece, lambda v: v <= gates.max_ece), ece, gates.max_ece,
                   f"candidate ECE {ece:.4f} must be at most {gates.max_ece}"),
    ]
    if champion is not None:
        floor = champion["auc"] - gates.max_auc_drop
        results.insert(1, GateResult(
            "auc_vs_champion", ok(auc, lambda v: v >= floor), auc - champion["auc"], -gates.max_auc_drop,
            f"candidate AUC {auc:.4f} vs champion {champion['auc']:.4f}: may drop at most {gates.max_auc_drop}"))
    return tuple(results)


def _download_holdout(client, run_id: str, dst: str) -> pd.DataFrame:
    from training.job import HOLDOUT_PATH

    path = client.download_artifacts(run_id, HOLDOUT_PATH, dst)
    return pd.read_parquet(path)


def _metric_items(prefix: str, metrics: dict[str, float] | None) -> dict[str, float]:
    if not metrics:
        return {}
    return {f"{prefix}.{k}": float(v) for k, v in metrics.items() if not math.isnan(float(v))}


def promote(config: TrainingConfig = TrainingConfig(), gates: PromotionGates = PromotionGates(),
            override_reason: str | None = None, tracking: str | None = None,
            paths: Paths = DEFAULT_PATHS) -> PromotionDecision:
    """Gate the `candidate` version against the `champion` and move `champion` to it if the gates pass."""
    import mlflow

    from models.scorer import load_scorer
    from training.tracking import alias_version, connect, ensure_experiment, tracking_uri

    uri = tracking or tracking_uri(paths)
    client = connect(uri, paths)
    name = config.registered_model
    candidate = alias_version(client, name, config.candidate_alias)
    if candidate is None:
        raise LookupError(f"model '{name}' has no '{config.candidate_alias}' version: run `lapse train` first")
    champion = alias_version(client, name, config.champion_alias)
    if champion is not None and champion.version == candidate.version:
        return PromotionDecision(str(candidate.version), str(champion.version), (), True, False, override_reason,
                                 {}, None, None, note="the candidate already is the champion")
    override_reason = (override_reason or "").strip() or None

    with tempfile.TemporaryDirectory(prefix="lapse-promote-") as tmp:
        holdout = _download_holdout(client, candidate.run_id, tmp)
    cand_scorer = load_scorer(f"models:/{name}/{candidate.version}", tracking_uri=uri)
    cand_risk = holdout_risk(cand_scorer, holdout)
    cand_metrics = holdout_metrics(cand_risk, cand_scorer.operating_threshold, holdout, config)
    champ_metrics, champ_risk, note = None, None, ""
    if champion is not None:
        try:
            champ_scorer = load_scorer(f"models:/{name}/{champion.version}", tracking_uri=uri)
            champ_risk = holdout_risk(champ_scorer, holdout)
            champ_metrics = holdout_metrics(champ_risk, champ_scorer.operating_threshold, holdout, config)
        except NotComparable as exc:
            note = f"champion version {champion.version} cannot be scored on this holdout: {exc}"
    fairness = fairness_evidence(holdout, cand_risk, cand_scorer.operating_threshold, gates, config.seed, champ_risk)
    results = (*evaluate_gates(cand_metrics, champ_metrics, gates), *fairness_gates(fairness, champ_risk is not None))
    if champion is not None and champ_metrics is None:
        results = (*results, GateResult("comparable", False, math.nan, math.nan, note))
    passed = all(r.passed for r in results)
    promote_it = passed or override_reason is not None
    decision = "promote" if passed else ("promote_override" if promote_it else "refuse")
    outcome = "promoted" if passed else ("promoted_by_override" if promote_it else "refused")
    reasons = [f"{r.name}: {r.detail}" for r in results if not r.passed]

    experiment_id = ensure_experiment(client, config.experiment, uri, paths)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"promote-v{candidate.version}") as run:
        mlflow.set_tags({
            "lapse.kind": "promotion",
            "lapse.promotion": outcome,
            "candidate_version": str(candidate.version),
            "candidate_run_id": candidate.run_id,
            "champion_version": str(champion.version) if champion is not None else "none",
            "decision": decision,
            "override_reason": override_reason or "",
        })
        mlflow.log_params({f"gate.{k}": v for k, v in gates.model_dump().items()})
        mlflow.log_metrics({
            **_metric_items("candidate", cand_metrics),
            **_metric_items("champion", champ_metrics),
            **{f"gate.{r.name}.passed": float(r.passed) for r in results},
        })
        mlflow.log_dict({
            "decision": decision,
            "override_reason": override_reason,
            "candidate_version": str(candidate.version),
            "champion_version": str(champion.version) if champion is not None else None,
            "gates": [{**asdict(r), "value": None if math.isnan(r.value) else r.value} for r in results],
            "reasons": reasons,
            "note": note,
        }, "promotion.json")
        mlflow.log_dict(fairness.to_dict(), "fairness/fairness.json")
        mlflow.log_text(fairness.table().to_csv(index=False), "fairness/groups.csv")
        mlflow.log_text("\n".join(fairness.lines()) + "\n", "fairness/verdict.txt")
        if reasons:
            mlflow.log_text("\n".join(reasons) + "\n", "override.txt" if promote_it else "refusal.txt")
        for r in results:
            client.set_model_version_tag(name, candidate.version, f"gate.{r.name}", "pass" if r.passed else "fail")
        client.set_model_version_tag(name, candidate.version, "promotion_decision", decision)
        client.set_model_version_tag(name, candidate.version, "promotion_run_id", run.info.run_id)
        if override_reason:
            client.set_model_version_tag(name, candidate.version, "override_reason", override_reason)
        run_id = run.info.run_id
    if promote_it:
        client.set_registered_model_alias(name, config.champion_alias, candidate.version)
        log.info("%s version %s is now %s (%s)", name, candidate.version, config.champion_alias, decision)
    return PromotionDecision(str(candidate.version), str(champion.version) if champion is not None else None,
                             results, passed, promote_it, override_reason, cand_metrics, champ_metrics, run_id, note,
                             fairness)

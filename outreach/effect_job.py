"""`run_effect(settings)`: a decisions file in; the effect as JSON, a small HTML page and an MLflow run out.

Only aggregates leave this module (estimates, counts, settings): never a patient's row.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import jinja2
import mlflow
import pandas as pd
from mlflow import MlflowClient

from outreach.decisions_table import decisions_table_from_log
from outreach.effect import EffectResult, estimate_effect
from outreach.errors import OutreachError
from outreach.settings import EffectSettings

JSON_FILE = "effect.json"
HTML_FILE = "effect.html"

PAGE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Effect of support on re-engagement</title>
<style>
body { font-family: Georgia, serif; color: #222; max-width: 900px; margin: 2em auto; padding: 0 1.5em; }
table { border-collapse: collapse; font-family: Helvetica, Arial, sans-serif; font-size: 0.9em; margin: 0.8em 0; }
th, td { padding: 0.25em 0.7em; text-align: right; } th:first-child, td:first-child { text-align: left; }
thead th { border-top: 2px solid #222; border-bottom: 1px solid #222; }
tbody tr:last-child td { border-bottom: 2px solid #222; }
.lead { background: #f3f6f9; border-left: 4px solid #1f5f8b; padding: 0.6em 1em; }
.note { font-size: 0.85em; color: #555; }
</style></head><body>
<h1>Effect of support on re-engagement</h1>
<p class="lead">Offering support changed the chance of the outcome by
<b>{{ pp(r.overall.estimate) }}</b> percentage points ({{ level }}% interval {{ pp(r.overall.lower) }} to
{{ pp(r.overall.upper) }}), averaged over {{ r.n_available }} randomized decisions about {{ r.n_units }} patients
(outcome rate {{ pp(r.outcome_mean) }}%).</p>
{% macro rows(items) %}{% for e in items %}<tr><td>{{ e.term }}</td><td>{{ pp(e.estimate) }}</td>
<td>{{ pp(e.lower) }} to {{ pp(e.upper) }}</td><td>{{ "%.3f" % e.p_value }}</td><td>{{ e.n_decisions }}</td></tr>
{% endfor %}{% endmacro %}
{% set head %}<thead><tr><th></th><th>effect (points)</th><th>{{ level }}% interval</th><th>p</th>
<th>decisions</th></tr></thead>{% endset %}
{% if r.by_tier %}<table><caption>By risk tier</caption>{{ head }}<tbody>{{ rows(r.by_tier) }}</tbody></table>{% endif %}
{% if r.skipped_tiers %}<p class="note">Too few randomized decisions to estimate: {{ r.skipped_tiers|join(", ") }}.</p>
{% endif %}
{% for m in r.moderators %}<table><caption>By {{ m.moderator }} (a straight line; mean {{ "%.2f" % m.center }})
</caption>{{ head }}<tbody>{{ rows([m.at_center, m.slope]) }}</tbody></table>{% endfor %}
<h2>What this is</h2>
<p class="note">The causal excursion effect, estimated by weighted and centred least squares (Boruvka et al. 2018,
JASA): weights from the logged randomization probabilities with reference probability
{{ "%.3f" % r.reference_probability }}; standard errors robust to repeated decisions about the same patient
(cluster sandwich, small-sample correction: {{ r.small_sample }}); t intervals. Slopes are changes in the effect,
in points, per unit of the moderator. {{ r.n_rows - r.n_available }} of {{ r.n_rows }} decisions were not
randomized and are left out. It is an average over the patients and moments that were randomized, not a
promise for any one patient.</p>
</body></html>
""")


def read_decisions_file(path: str | Path, what: str = "decisions") -> pd.DataFrame:
    """A decisions (or features) table from CSV or Parquet."""
    path = Path(path)
    if not path.exists():
        raise OutreachError(f"{path}: no such file", field=what)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".parquet" or path.is_dir():
        return pd.read_parquet(path)
    raise OutreachError(f"{path}: {what} must be a .csv or .parquet file", field=what)


def render_html(result: EffectResult) -> str:
    """The effect as one self-contained HTML page."""
    return PAGE.render(r=result, level=round(result.confidence * 100), pp=lambda v: f"{100 * v:+.1f}")


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_result(result: EffectResult, out: str | Path) -> tuple[Path, Path]:
    """Write effect.json and effect.html into `out` (each replaced whole or not at all)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / JSON_FILE, out / HTML_FILE
    _write_atomic(json_path, json.dumps(result.model_dump(mode="json"), indent=2, sort_keys=True))
    _write_atomic(html_path, render_html(result))
    return json_path, html_path


def metrics(result: EffectResult) -> dict[str, float]:
    """The run's metrics: every estimate and its interval, and the counts."""
    out = {"n_units": result.n_units, "n_available": result.n_available, "n_treated": result.n_treated,
           "reference_probability": result.reference_probability, "outcome_mean": result.outcome_mean}
    named = [("overall", result.overall)] + [(f"tier.{e.term}", e) for e in result.by_tier]
    named += [(f"moderator.{m.moderator}.slope", m.slope) for m in result.moderators]
    for name, e in named:
        out.update({f"{name}.effect": e.estimate, f"{name}.se": e.std_error, f"{name}.lower": e.lower,
                    f"{name}.upper": e.upper})
    return {k.replace("=", "_").replace(" ", "_"): float(v) for k, v in out.items()}


def _artifact_location(uri: str) -> str | None:
    """Artifacts next to a SQLite tracking file (mlartifacts/), as the training job does; else the server's choice."""
    if urlparse(uri).scheme != "sqlite":
        return None
    db = unquote(uri[len("sqlite:///"):])
    if not db or db == ":memory:":
        return None
    return Path(db).resolve().parent.joinpath("mlartifacts").as_uri()


def log_run(result: EffectResult, settings: EffectSettings, files: tuple[Path, Path]) -> str:
    """Log the analysis as a run of the settings' experiment; return the run id."""
    uri = settings.tracking_uri
    if urlparse(uri).scheme == "sqlite":
        db = unquote(uri[len("sqlite:///"):])
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(settings.experiment)
    if found is None:
        experiment_id = client.create_experiment(settings.experiment, artifact_location=_artifact_location(uri))
    else:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        experiment_id = found.experiment_id
    with mlflow.start_run(experiment_id=experiment_id, run_name="effect") as run:
        mlflow.set_tags({"lapse.kind": "effect", "lapse.estimator": "wcls"})
        mlflow.log_params({
            "decisions": settings.source_name, "columns": settings.columns.model_dump_json(),
            "moderators": ",".join(settings.moderators), "controls": ",".join(settings.controls),
            "reference_probability": result.reference_probability, "small_sample": settings.small_sample,
            "confidence": settings.confidence, "min_tier_decisions": settings.min_tier_decisions,
        })
        mlflow.log_metrics(metrics(result))
        for path in files:
            mlflow.log_artifact(str(path))
        return run.info.run_id


def run_effect(settings: EffectSettings) -> EffectResult:
    """Read the decisions (a file, or the decision log + outcomes), estimate the effect, write effect.json +
    effect.html, log to MLflow if asked."""
    if settings.decisions is not None:
        frame = read_decisions_file(settings.decisions)
    else:
        features = read_decisions_file(settings.features, "features") if settings.features is not None else None
        frame = decisions_table_from_log(settings.decisions_db, settings.window_days, settings.moderators,
                                         features=features)
        if frame.empty:
            raise OutreachError("the decision log has no decision whose outcome window has closed yet",
                                field="decisions_db")
    result = estimate_effect(
        frame, settings.columns, settings.moderators, settings.controls, settings.reference_probability,
        settings.confidence, settings.small_sample, settings.min_tier_decisions,
    )
    files = write_result(result, settings.out)
    if settings.tracking_uri:
        log_run(result, settings, files)
    return result

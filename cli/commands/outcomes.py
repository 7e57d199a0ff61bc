"""Record what happened after support was flagged: import coaches' outcomes from a file, or derive re-engagement
from new events. Outcomes are stored next to the decisions they belong to (table outcomes of the decision log);
a retry stores nothing twice, and a file with one bad row stores nothing and names the row and field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.options import DataDir

NAME = "outcomes"

app = typer.Typer(name=NAME, help=" ".join(__doc__.split()), no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode=None)

DecisionsDb = Annotated[Optional[str], typer.Option(
    "--decisions-db", metavar="URL", help="SQLAlchemy URL of the decision log the outcomes belong to (default: "
    "[serving] decision_log_url, else sqlite under .lapse)")]


def _db_url(given: str | None) -> str:
    from config import load_settings
    from config.paths import DEFAULT_PATHS

    return given or load_settings().serving.decision_log_url or DEFAULT_PATHS.decision_log_url


@app.command("import", help="Import outcomes from a CSV or Parquet file with columns outcome_id, decision_id, kind "
             "(attempted, reached, declined, no_answer, re_engaged), at (ISO 8601 with a time zone) and optionally "
             "coach. All rows are stored or none.")
def import_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="the outcomes file (.csv or .parquet)")],
    decisions_db: DecisionsDb = None,
) -> int:
    """Validate every row, check each decision exists, store them in one transaction; print the counts."""
    from outreach.decisions_table import check_decisions_exist
    from outreach.outcomes import read_outcome_file, record_outcomes

    url = _db_url(decisions_db)
    outcomes = read_outcome_file(file)
    check_decisions_exist(outcomes, url, where=f"{file}: row")
    stored, already = record_outcomes(outcomes, url)
    print(f"{file}: {len(outcomes)} rows read, {stored} stored, {already} already stored")
    return 0


@app.command("derive", help="Derive re_engaged outcomes from the data folder's events: a decision's patient used "
             "the program (sessions, modules, exercises, check-ins, questionnaires, messages to the coach) within "
             "the window after it. Deriving again after more events arrive stores nothing twice.")
def derive_command(
    data: DataDir,
    decisions_db: DecisionsDb = None,
    window_days: Annotated[int, typer.Option("--window-days", min=1, help="days after a decision that count")] = 7,
) -> int:
    """Read the events and the logged decisions, store the re-engagement outcomes; print the counts."""
    from features.validate import load_cohort
    from outreach.decisions_table import read_decision_log
    from outreach.reengagement import reengagement_outcomes
    from outreach.outcomes import record_outcomes

    url = _db_url(decisions_db)
    decisions = read_decision_log(url)
    events = load_cohort(data).events
    outcomes = reengagement_outcomes(decisions, events, window_days)
    stored, already = record_outcomes(outcomes, url)
    print(f"{len(decisions)} decisions, {len(outcomes)} re-engaged within {window_days} days: "
          f"{stored} stored, {already} already stored")
    return 0

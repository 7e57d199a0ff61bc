"""Closing the loop: who gets human support (trigger policies), what happened (outcomes), and whether it helped.

- `outreach.outcomes`: typed outcome records and their idempotent SQLite/SQLAlchemy store.
- `outreach.reengagement`: re-engagement outcomes derived from new events.
- `outreach.policy`: the `risk`, `randomized` and `benefit` trigger policies under coach capacity.
- `outreach.effect`: the causal excursion effect by weighted and centred least squares (WCLS).
- `outreach.effect_job`: `run_effect(settings)`: a decisions table in, JSON + HTML + MLflow run out.
"""

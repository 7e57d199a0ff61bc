"""The MLflow pyfunc face of the dropout model: risk plus SHAP contributions per row.

Self-contained: the logged model ships this module and what it imports (models/, config/) as its
code, so it imports nothing else of lapse (not the scoring core, not features/).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel
from scipy.special import expit

from models.scorer import RiskScorer, load_scorer

# The name of the artifact (a folder with model.ubj and model_meta.json) the pyfunc loads.
SCORER_ARTIFACT = "scorer"
CONTRIBUTION_PREFIX = "contrib_"
BASE_COLUMN = "contrib_base"


def output_columns(feature_names: list[str] | tuple[str, ...]) -> list[str]:
    """Columns of the pyfunc output, in order."""
    return ["risk", "log_odds", *(CONTRIBUTION_PREFIX + f for f in feature_names), BASE_COLUMN]


def score_frame(scorer: RiskScorer, features: pd.DataFrame) -> pd.DataFrame:
    """Risk, calibrated log-odds and per-feature contributions (plus base) for a frame of features."""
    missing = [name for name in scorer.feature_names if name not in features.columns]
    if missing:
        raise ValueError(f"the input lacks column(s) the model needs: {', '.join(missing)}")
    X = features.loc[:, list(scorer.feature_names)].to_numpy(dtype=np.float64, na_value=np.nan)
    contribs, base = scorer.contributions(X)
    log_odds = scorer.log_odds(X)
    data = np.column_stack([expit(log_odds), log_odds, contribs, base])
    return pd.DataFrame(data, columns=output_columns(scorer.feature_names), index=features.index)


class DropoutRiskModel(PythonModel):
    """Pyfunc wrapper over RiskScorer; loads the native booster from the `scorer` artifact."""

    def load_context(self, context) -> None:
        self.scorer = load_scorer(context.artifacts[SCORER_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return score_frame(self.scorer, frame)

"""The [outreach] settings turned into what the policies run on: PolicySettings (with the secret) and the effect.

The randomization secret comes only from LAPSE_OUTREACH_SECRET or the file named by `secret_file`;
it is never part of a message, a log line or a settings dump (PolicySettings keeps it as a SecretStr).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from config.outreach import OutreachConfig
from outreach.effect import EffectResult
from outreach.errors import OutreachError
from outreach.settings import PolicySettings

SECRET_ENV = "LAPSE_OUTREACH_SECRET"


def read_secret(config: OutreachConfig) -> str:
    """The randomization secret: the first line of `secret_file` if set, else LAPSE_OUTREACH_SECRET (may be empty)."""
    if config.secret_file:
        path = Path(config.secret_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise OutreachError(f"[outreach] secret_file {path}: cannot be read ({error.strerror})",
                                field="secret_file") from None
        return lines[0].strip() if lines else ""
    return os.environ.get(SECRET_ENV, "")


def policy_settings(config: OutreachConfig, trigger_risk: float, **overrides: object) -> PolicySettings:
    """PolicySettings from [outreach] (its TriggerPolicy settings, the secret, and `overrides` on top);
    `risk_threshold` unset means the served model's `trigger_risk`."""
    threshold = config.risk_threshold if config.risk_threshold is not None else trigger_risk
    values = {**config.trigger_policy(), "risk_threshold": threshold, **overrides}
    try:
        return PolicySettings(**values, secret=read_secret(config))
    except ValidationError as error:
        first = error.errors(include_input=False)[0]
        field = ".".join(map(str, first["loc"]))
        rule = first["msg"].removeprefix("Value error, ")
        if "secret" in rule:
            rule = f"the randomized policy needs its secret: set {SECRET_ENV} or [outreach] secret_file"
        # Only the field and the rule: the secret and other inputs stay out of the message.
        raise OutreachError(f"[outreach] {field + ': ' if field else ''}{rule}", field=field or "outreach") from None


def load_effect(config: OutreachConfig) -> tuple[EffectResult | None, str]:
    """The effect estimate for the benefit policy, or None and why there is none (a sentence for replies)."""
    if not config.effect_file:
        return None, "no effect estimate yet ([outreach] effect_file is not set): ranked by risk"
    path = Path(config.effect_file)
    try:
        return EffectResult.model_validate_json(path.read_text(encoding="utf-8")), ""
    except OSError:
        return None, f"no effect estimate: {path.name} cannot be read: ranked by risk"
    except ValidationError:
        return None, f"no effect estimate: {path.name} is not an effect.json written by lapse effect: ranked by risk"

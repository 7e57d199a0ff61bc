"""The trigger policy on the service's decisions: /score and /triage decide support with outreach.policy.

/score decides each patient on their own (no capacity: it is not a day's list). /triage decides the
day's list: at most `capacity` contacts (and [outreach] capacity_per_day / capacity_per_coach), ranked
by risk, or by expected benefit when asked (`policy: "benefit"` or the [outreach] policy) and an effect
estimate is loaded; without one the reply says so and ranks by risk. The randomized policy draws with
the HMAC of the patient id and the decision time, so the same decision always gets the same draw: the
patient's as_of for /score; for /triage the latest as_of in the list (the list is one day's decision).
Every decision carries the policy, its version, the realized propensity and the draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from config.outreach import OutreachConfig
from models.loaded import LoadedModel
from models.results import PatientRisk, SupportDecision
from outreach.configured import load_effect, policy_settings
from outreach.effect import EffectResult
from outreach.policy import Candidate, Decision, decide
from outreach.settings import PolicySettings


@dataclass(frozen=True)
class ServicePolicy:
    """The [outreach] settings and the effect estimate (if any) the service decides support with."""

    config: OutreachConfig
    effect: EffectResult | None
    # Why there is no effect estimate (said in /triage replies that would rank by benefit).
    effect_note: str
    # /score's settings per trigger risk (the served model's): made once, not on every request.
    _score_settings: dict[float, PolicySettings] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, config: OutreachConfig, trigger_risk: float = 0.5) -> "ServicePolicy":
        """Read the effect file and check the settings (a randomized policy without its secret is refused)."""
        policy_settings(config, trigger_risk)
        effect, note = load_effect(config)
        return cls(config, effect, note)

    def score_settings(self, trigger_risk: float) -> PolicySettings:
        """The settings /score decides with: the configured policy without capacity limits."""
        found = self._score_settings.get(trigger_risk)
        if found is None:
            found = self._score_settings[trigger_risk] = policy_settings(
                self.config, trigger_risk, capacity_per_day=None, capacity_per_coach=None)
        return found


def _candidates(scores: Sequence[PatientRisk], coaches: Sequence[str | None],
                one_list: bool = False) -> list[Candidate]:
    """Candidates decided at each patient's as_of, or (one_list) all at the list's latest as_of: one day's list."""
    moment = max(s.as_of for s in scores) if one_list and scores else None
    # Risk is the one moderator the decision log (and so an effect estimate from it) knows for every decision.
    out = []
    for s, coach in zip(scores, coaches):
        risk = float(s.risk)
        out.append(Candidate(s.patient_id, moment or s.as_of, risk, s.tier, coach, {"risk": risk}))
    return out


def _follow(score: PatientRisk, decision: Decision) -> PatientRisk:
    """The score with its support decision following the policy's action (words say why when they differ)."""
    support = score.support
    if decision.policy == "risk" and decision.action == support.trigger:
        return score
    if decision.action:
        priority = support.priority if support.trigger else "soon"
        how = "chosen by the randomized policy" if decision.policy == "randomized" else "on today's list"
        why = f"{support.why}; {how}" if support.trigger else \
            f"Offer the patient human support ({how}): {support.why.split(', below')[0]}"
    else:
        priority = "routine"
        because = decision.note or f"not chosen by the {decision.policy} policy"
        why = f"{support.why} ({because})" if not support.trigger else \
            f"No outreach now ({because}): {support.why.split(': ', 1)[-1]}"
    return replace(score, support=SupportDecision(decision.action, priority, why))


def _decide_scored(scores: Sequence[PatientRisk], candidates: list[Candidate], settings, effect) -> list[Decision]:
    """The policy decides among the patients the model scored; a patient outside what the model was trained
    on (status not_eligible) is no candidate: never offered support, propensity 0, and it says why."""
    scored = [i for i, s in enumerate(scores) if s.status == "scored"]
    if len(scored) == len(scores):
        return decide(candidates, settings, effect)
    decided: list[Decision | None] = [None] * len(scores)
    for i, d in zip(scored, decide([candidates[i] for i in scored], settings, effect)):
        decided[i] = d
    for i, s in enumerate(scores):
        if decided[i] is None:
            c = candidates[i]
            decided[i] = Decision(patient_id=c.patient_id, decision_time=c.decision_time, action=False, propensity=0.0,
                                  policy=settings.policy, policy_version=settings.policy_version, score=float(s.risk), coach=c.coach,
                                  note="not scored: outside the patients the model was trained on")
    return decided


def _follow_scored(score: PatientRisk, decision: Decision) -> PatientRisk:
    """`_follow` for scored patients; a not-eligible patient keeps the core's answer (no support, and why)."""
    return _follow(score, decision) if score.status == "scored" else score


def decide_scores(scores: list[PatientRisk], policy: ServicePolicy, model: LoadedModel) -> tuple[
        list[PatientRisk], list[Decision]]:
    """/score: each patient decided on their own under the configured policy (no capacity)."""
    settings = policy.score_settings(model.trigger_risk)
    decided = _decide_scored(scores, _candidates(scores, [None] * len(scores)), settings, policy.effect)
    return [_follow_scored(s, d) for s, d in zip(scores, decided)], decided


@dataclass(frozen=True)
class TriageDecision:
    """/triage's day list: positions to contact (best first), every decision, what it was ranked by, and a note."""

    contact: list[int]
    decisions: list[Decision]
    # The scores with their support decisions following the policy (same order as sent).
    scores: list[PatientRisk]
    ranked_by: str
    note: str


def decide_triage(scores: list[PatientRisk], coaches: Sequence[str | None], capacity: int, rank_by: str | None,
                  policy: ServicePolicy, model: LoadedModel) -> TriageDecision:
    """/triage: the day's list under the policy, `capacity` contacts at most, with coach capacity."""
    config = policy.config
    name = rank_by or config.policy
    note = ""
    if name == "benefit" and policy.effect is None:
        note = policy.effect_note
    per_day = capacity if config.capacity_per_day is None else min(capacity, config.capacity_per_day)
    # The team asked for a list: under risk everybody sent is ranked (no threshold), as /triage always did.
    threshold = {"risk_threshold": 0.0} if name == "risk" or (name == "benefit" and policy.effect is None) else {}
    settings = policy_settings(config, model.trigger_risk, policy=name, capacity_per_day=per_day, **threshold)
    benefit = policy.effect if name == "benefit" else None
    decided = _decide_scored(scores, _candidates(scores, coaches, one_list=True), settings, benefit)
    chosen = sorted((i for i, d in enumerate(decided) if d.action), key=lambda i: (-decided[i].score, i))
    ranked_by = "expected benefit" if name == "benefit" and policy.effect is not None else "risk"
    return TriageDecision(chosen, decided, [_follow_scored(s, d) for s, d in zip(scores, decided)], ranked_by, note)

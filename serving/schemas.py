"""Request and response bodies of the risk service, with the rules every field must follow."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from features.catalog import LEVELS
from features.contract import PATIENT_COLUMNS, EventType
from outreach.outcomes import Outcome

from .sent import SentEvents, SentItems, read_events, read_sent
from .settings import serving_config

_LIMITS = serving_config()
M = TypeVar("M", bound=BaseModel)

# Identifiers end up in the decision log, so they are kept to a safe alphabet.
PatientId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]
# Names are checked against the served model's features when scoring (a regex here costs more).
FEATURE_NAME_LENGTH = (1, 64)
FeatureName = Annotated[str, Field(min_length=FEATURE_NAME_LENGTH[0], max_length=FEATURE_NAME_LENGTH[1])]
Finite = Annotated[float, Field(allow_inf_nan=False)]
FiniteOrNull = Annotated[float | None, Field(allow_inf_nan=False)]
Text = Annotated[str, Field(max_length=200)]
# A batch's feature names sent once, for every item that sends `values` (instead of a name per value).
FeatureNames = Annotated[list[FeatureName] | None, Field(
    min_length=1, max_length=500, description="the names of the values that patients send as `values`, in that "
    "order, once for the whole request (required when any patient sends `values`)")]


class Strict(BaseModel):
    """A request part that refuses fields it does not know."""

    model_config = ConfigDict(extra="forbid")


def _profile_field(kind: str, low: float | None, high: float | None, categories: tuple[str, ...]) -> Any:
    """The pydantic type of one patients-table column of the data contract."""
    if kind == "timestamp":
        return AwareDatetime
    if kind == "boolean":
        return bool
    if kind == "category":
        return Literal[categories]
    if kind == "number":
        return Annotated[float, Field(ge=low, le=high, allow_inf_nan=False)]
    if kind == "integer":
        return Annotated[int, Field(ge=low, le=high)]
    return Text


def _profile_model() -> type[BaseModel]:
    """The `profile` object: the contract's patients-table columns except patient_id."""
    fields: dict[str, Any] = {}
    for column in PATIENT_COLUMNS:
        if column.name == "patient_id":
            continue
        kind = _profile_field(column.kind, column.low, column.high, column.categories)
        if column.required:
            fields[column.name] = (kind, Field(description=column.description))
        else:
            fields[column.name] = (kind | None, Field(default=None, description=column.description))
    return create_model("Profile", __base__=Strict, __doc__="The patient's row of the patients table.", **fields)


Profile = _profile_model()


class Event(Strict):
    """One row of the events table for this patient."""

    timestamp: AwareDatetime
    event_type: EventType
    value: Finite | None = None


class PatientIn(Strict):
    """One patient to score: either ready features, or the profile and events to compute them from."""

    patient_id: PatientId
    as_of: AwareDatetime | None = Field(default=None, description="prediction time; required with profile + "
                                        "events; the time of the request if absent with features")
    features: dict[FeatureName, FiniteOrNull] | None = Field(
        default=None, max_length=500, description="feature values by name; null means not known"
    )
    values: list[FiniteOrNull] | None = Field(
        default=None, max_length=500, description="feature values in the order of the request's `feature_names` "
        "(the names sent once for every patient); null means not known"
    )
    profile: Profile | None = None  # type: ignore[valid-type]
    events: list[Event] | None = Field(default=None, max_length=_LIMITS.max_events_per_patient)
    coach: PatientId | None = Field(default=None, description="the patient's coach (/triage: capacity per coach)")

    @model_validator(mode="after")
    def _one_source(self) -> "PatientIn":
        has_raw = self.profile is not None or self.events is not None
        if (self.features is not None) + (self.values is not None) + has_raw != 1:
            raise PydanticCustomError("input_source", "give one of `features`, `values`, or `profile` with `events`")
        if has_raw and (self.profile is None or self.events is None):
            raise PydanticCustomError("input_source", "`profile` and `events` go together")
        return self

    @property
    def sends_features(self) -> bool:
        """Whether the item sends ready feature values (`features` or `values`) rather than profile + events."""
        return self.features is not None or self.values is not None

    @cached_property
    def sent_events(self) -> SentEvents | None:
        """The events as arrays, read once (the guard's range checks, then the features); None with features."""
        return None if self.events is None else read_events(self.events)


class ScoreRequest(Strict):
    """Patients to score in one call."""

    feature_names: FeatureNames = None
    patients: list[PatientIn] = Field(min_length=1, max_length=_LIMITS.max_batch_size)


class ExplainRequest(Strict):
    """One patient whose score is broken down feature by feature."""

    feature_names: FeatureNames = None
    patient: PatientIn


class TriageRequest(Strict):
    """Active patients and how many of them the team can contact now."""

    feature_names: FeatureNames = None
    patients: list[PatientIn] = Field(min_length=1, max_length=_LIMITS.max_batch_size)
    capacity: int = Field(ge=1, le=_LIMITS.max_batch_size, description="how many patients can be contacted")
    policy: Literal["risk", "benefit"] | None = Field(
        default=None, description="rank by risk or by expected benefit (needs an effect estimate); absent: the "
        "service's [outreach] policy")


class _ParsedPatientIn(PatientIn):
    """PatientIn as batches are parsed: any feature name, its length checked once per request on the names
    sent (see `validate_json`) instead of once per key by pydantic (a thousand patients send 67,000 keys)."""

    features: dict[str, FiniteOrNull] | None = Field(default=None, max_length=500)


class _ParsedScoreRequest(ScoreRequest):
    patients: list[_ParsedPatientIn] = Field(min_length=1, max_length=_LIMITS.max_batch_size)


class _ParsedTriageRequest(TriageRequest):
    patients: list[_ParsedPatientIn] = Field(min_length=1, max_length=_LIMITS.max_batch_size)


# Request models of batches and the model they are parsed with (a subclass: same fields, names unchecked).
_PARSED: dict[type[BaseModel], type[BaseModel]] = {ScoreRequest: _ParsedScoreRequest,
                                                   TriageRequest: _ParsedTriageRequest}


def _names_fit(items: SentItems) -> bool:
    low, high = FEATURE_NAME_LENGTH
    return all(low <= len(name) <= high for group in items.groups for name in group.block.names)


def validate_json(model: type[M], body: bytes) -> M:
    """`model.model_validate_json(body)`, with a batch's feature values read into arrays (serving/sent.py).

    A batch is parsed by its `_PARSED` model, then its feature names are checked a block at a time. Anything
    that model or that check refuses is parsed again by `model` itself, so a refusal raises exactly the
    ValidationError `model` gives (every problem, in its order): only accepted requests take the fast path.
    """
    parsed = _PARSED.get(model)
    if parsed is not None:
        try:
            request = parsed.model_validate_json(body)
        except ValidationError:
            request = None
        if request is not None and not _values_errors(request):
            items = read_sent(request.patients, request.feature_names)
            if _names_fit(items):
                request.patients = items
                return request
    request = model.model_validate_json(body)
    errors = _values_errors(request)
    if errors:
        raise ValidationError.from_exception_data(model.__name__, errors)
    return request


def _values_errors(request: BaseModel) -> list[InitErrorDetails]:
    """Where `values` and the request's `feature_names` do not fit together: names repeated, values without
    names, or a count of values other than the count of names."""
    if "feature_names" not in type(request).model_fields:
        return []
    names = request.feature_names
    if names is not None and len(set(names)) == len(names) and hasattr(request, "patients") and all(
            [item.values is None or len(item.values) == len(names) for item in request.patients]):
        return []  # (the common case, found without a loop of Python statements per patient)
    errors: list[InitErrorDetails] = []
    if names is not None:
        first: dict[str, int] = {}
        for j, name in enumerate(names):
            if name in first:
                errors.append(_error("duplicate_feature", f"repeats feature_names[{first[name]}]: send each name once",
                                     ("feature_names", j)))
            first.setdefault(name, j)
    patient = getattr(request, "patient", None)
    items = [(("patient",), patient)] if patient is not None else [
        (("patients", i), item) for i, item in enumerate(request.patients)]
    for where, item in items:
        if item.values is None:
            continue
        if names is None:
            errors.append(_error("missing", "is required when a patient sends `values` (the name of each value, in "
                                 "order)", ("feature_names",)))
            break
        if len(item.values) != len(names):
            errors.append(_error("values_length", f"has {len(item.values)} values for {len(names)} feature_names: "
                                 "send one per name, null when not known", (*where, "values")))
    return errors


def _error(kind: str, message: str, loc: tuple[str | int, ...]) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=None)


class ReloadRequest(Strict):
    """Nothing to send: the alias named at start-up is looked up again."""


class ModelRef(BaseModel):
    """Which model version produced an answer."""

    name: str
    version: str


class Reason(BaseModel):
    """One feature's part in a score, worded for a clinician."""

    feature: str
    label: str
    value: float | None
    contribution: float = Field(description="change in log-odds of dropout from this feature")
    sentence: str


class SupportDecision(BaseModel):
    """Whether to bring in human support now, how soon, and why."""

    trigger: bool
    priority: Literal["urgent", "soon", "routine"]
    why: str


class StatusReason(BaseModel):
    """Why a patient is not scored."""

    code: Literal["no_engagement_yet", "lapsed"]
    words: str


class PatientScore(BaseModel):
    """The answer for one patient."""

    patient_id: str
    as_of: datetime
    risk: float = Field(description="calibrated probability of dropout within the horizon")
    tier: str
    reasons: list[Reason]
    support: SupportDecision
    model: ModelRef
    status: Literal["scored", "not_eligible"] = Field(
        "scored", description="not_eligible: the patient is outside what the model was trained on (no own "
        "engagement yet, or lapsed beyond the dropout definition's engagement window); the risk is then not a "
        "prediction to act on and the support decision does not trigger")
    status_reason: StatusReason | None = Field(None, description="why the patient is not scored (null when scored)")


class ScoreResponse(BaseModel):
    """Scores in the order the patients were sent."""

    results: list[PatientScore]


class LevelTotal(BaseModel):
    """Contributions summed over the features of one engagement level."""

    level: Literal[LEVELS]
    contribution: float


class Explanation(BaseModel):
    """Every feature's contribution to one patient's score."""

    patient_id: str
    as_of: datetime
    risk: float
    tier: str
    base_value: float = Field(description="log-odds of the model before any feature is known")
    margin: float = Field(description="base value plus all contributions (uncalibrated log-odds)")
    contributions: list[Reason]
    levels: list[LevelTotal]
    support: SupportDecision
    model: ModelRef
    status: Literal["scored", "not_eligible"] = "scored"
    status_reason: StatusReason | None = None


class TriageResponse(BaseModel):
    """The patients to contact first, most at risk first."""

    contact: list[PatientScore]
    considered: int
    capacity: int
    ranked_by: Literal["risk", "expected benefit"] = "risk"
    note: str = Field(default="", description="e.g. why the list is ranked by risk when benefit was asked for")


class Threshold(BaseModel):
    """A risk tier and the lowest risk that falls in it."""

    tier: str
    min_risk: float


class ModelCard(BaseModel):
    """What the served model is, what it was trained on, and how well it did."""

    name: str
    version: str
    alias: str
    loaded_at: datetime
    training_window: dict[str, Any]
    metrics: dict[str, Any]
    thresholds: list[Threshold]
    trigger_risk: float = Field(description="risk at or above which human support is triggered")
    horizon_days: int | None
    features: list[dict[str, str]]


class ReloadResult(BaseModel):
    """What a reload did: swapped, kept (same version) or refused."""

    outcome: Literal["swapped", "unchanged", "refused"]
    serving: ModelRef
    detail: str


class Problem(BaseModel):
    """One broken rule: where (a field path such as `patients[0].events[3].value`), which rule, its type."""

    field: str
    rule: str
    type: str


class ErrorBody(BaseModel):
    """Every refusal: a message and, for bad input, the rules broken by field (never the values sent)."""

    error: str
    problems: list[Problem] | None = None


class PatientLeftOut(BaseModel):
    """A patient of a batch that was left out (a value out of range) while the others were scored."""

    index: int
    patient_id: str
    problems: list[Problem]


class DecisionRecord(BaseModel):
    """One row of the decision log, as GET /decisions returns it."""

    id: int = Field(description="the row's position in the log; increases with every decision")
    decided_at: datetime
    request_id: str
    endpoint: str
    patient_id: str
    as_of: datetime
    model_name: str
    model_version: str
    risk: float
    tier: str
    reasons: list[tuple[str, float]] = Field(description="[feature, contribution] pairs, largest first")
    trigger: bool
    priority: Literal["urgent", "soon", "routine"]
    program: str | None = None
    status: Literal["scored", "not_eligible"] | None = Field(
        default=None, description="scored, or not_eligible: outside the patients the model was trained on (its risk "
        "is no prediction to act on); null in decisions logged before statuses were recorded")


class DecisionPage(BaseModel):
    """One page of decisions, oldest first; `next_cursor` fetches the next page (null: none left)."""

    decisions: list[DecisionRecord]
    next_cursor: str | None


class OutcomesRequest(Strict):
    """What came of support decisions: coaches' results, or the patient coming back (idempotent by outcome_id)."""

    outcomes: list[Outcome] = Field(min_length=1, max_length=_LIMITS.max_batch_size)


class OutcomeRecorded(BaseModel):
    """One outcome sent, in request order: when it was first recorded, and whether this call stored it."""

    recorded_at: str = Field(description="when the outcome was first recorded (UTC); a retry returns the same time")
    status: Literal["stored", "already_stored"]


class OutcomesResponse(BaseModel):
    """The outcomes recorded by one call; a retry of the same outcomes changes nothing."""

    stored: int
    already_stored: int
    outcomes: list[OutcomeRecorded]

"""Every model feature with its clinician-facing words: name, label, unit, level and a reason phrase."""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from functools import lru_cache

from config import FeatureConfig

LEVELS = ("patient", "intervention", "system", "usage")


@dataclass(frozen=True)
class FeatureSpec:
    """One feature: what it is called, what it measures, and how to say it to a clinician.

    `phrase` is a format string for a reason sentence: `{value}` is the feature value
    (format specs allowed, e.g. `{value:.0f}`), `{s}` becomes "s" unless the value is 1.
    For flags (unit "flag") `phrase` is said when the flag is 1 and `phrase_off` when 0.
    `missing` is said when the value is NaN (undefined, e.g. no mood check-in yet).
    `phrase_down` (optional) is said instead of `phrase` for a negative value, with the value's size, so a
    change reads "PHQ-9 improved by 9 points", never "PHQ-9 -9 points"; `steady` is said when the shown
    value is 0. A reason's theme (inactivity, symptoms, coach contact, ...) comes from its `group`: THEMES.
    """

    name: str
    label: str
    unit: str
    level: str
    phrase: str = ""
    phrase_off: str = ""
    missing: str = ""
    group: str = ""
    description: str = ""
    phrase_down: str = ""
    steady: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"feature {self.name}: level must be one of {LEVELS}, not {self.level!r}")

    def describe(self, value: float) -> str:
        """Word `value` of this feature as a short sentence for a clinician."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return self.missing or f"{self.label}: not known yet"
        value = float(value)
        if self.unit == "flag":
            return self.phrase if value >= 0.5 else (self.phrase_off or f"Not: {self.phrase.lower()}")
        if self.steady and self._shown(value) == 0:
            return self.steady
        phrase = self.phrase
        if self.phrase_down and value < 0:
            phrase, value = self.phrase_down, -value
        return phrase.format(value=value, s="" if abs(self._shown(value, phrase)) == 1 else "s")

    def words_key(self, value: float) -> object:
        """What `describe(value)` depends on, for a known value (not -0.0, which equals 0.0 as a key): values with the
        same key are worded alike.

        Where the phrases print the value in fixed point only (`{value:.0f}`), that is the value as printed, so new
        values mostly find words already made for another value printed the same (models/reasons.py caches them
        so); otherwise it is the value itself.
        """
        if self.unit == "flag":
            return value >= 0.5
        shown = _only_fixed_point(self.phrase)
        if not shown:
            return value
        if self.phrase_down and value < 0:
            down = _only_fixed_point(self.phrase_down)
            # (A tuple: never equal to the text key of a value that is worded with `phrase`.)
            return (format(value, shown), format(-value, down)) if down else value
        return format(value, shown)

    @property
    def theme(self) -> str:
        """The theme this feature's reasons are grouped under (a key of THEME_WORDS)."""
        return THEMES.get(self.group, "other")

    def _shown(self, value: float, phrase: str | None = None) -> float:
        """The value as the phrase prints it (so 0.6 days shown as "1" reads "1 day")."""
        format_spec = _fixed_point_spec(phrase or self.phrase)
        return float(format(value, format_spec)) if format_spec else round(value, 6)


@lru_cache(maxsize=1024)
def _value_specs(phrase: str) -> tuple[str, ...]:
    """The format spec of each `{value}` in `phrase`, in order. Read once per phrase: a batch words thousands of
    reasons, and parsing the phrase was most of the cost of one."""
    return tuple(format_spec for _, field, format_spec, _ in string.Formatter().parse(phrase) if field == "value")


@lru_cache(maxsize=1024)
def _fixed_point_spec(phrase: str) -> str:
    """The first fixed-point format spec `{value}` has in `phrase` ("" if none)."""
    return next((spec for spec in _value_specs(phrase) if spec.endswith("f")), "")


@lru_cache(maxsize=1024)
def _only_fixed_point(phrase: str) -> str:
    """The fixed-point format spec of `phrase`'s `{value}` when every `{value}` in it is printed with that one spec
    and nothing else ("" otherwise): then the phrase says only the value as printed."""
    specs = set(_value_specs(phrase))
    only = specs.pop() if len(specs) == 1 else ""
    return only if only.endswith("f") else ""


# What each frequency measure counts, in clinician words.
_VOLUME = (
    # (stem, unit, label noun, phrase noun, description)
    ("sessions", "sessions", "Sessions", "{value:.0f} session{s}", "number of sessions"),
    ("active_days", "days", "Days with any activity", "Active on {value:.0f} day{s}",
     "number of days with at least one own-engagement event (patient days counted from enrolment)"),
    ("minutes", "minutes", "Minutes in sessions", "{value:.0f} minute{s} of sessions", "total session minutes"),
    ("modules", "modules", "Modules completed", "{value:.0f} module{s} completed", "number of modules completed"),
    ("exercises", "exercises", "Exercises completed", "{value:.0f} exercise{s} completed",
     "number of exercises completed"),
    ("checkins", "check-ins", "Mood check-ins", "{value:.0f} mood check-in{s}", "number of mood check-ins"),
)


def _window_words(days: int | None) -> tuple[str, str]:
    if days is None:
        return "total", "since enrolment"
    return f"{days}d", f"in the last {days} days"


def build_features(config: FeatureConfig = FeatureConfig()) -> tuple[FeatureSpec, ...]:
    """The feature catalog for a feature configuration (window lengths shape some names)."""
    windows: list[int | None] = [*config.windows_days, None]
    trend = max(config.windows_days)
    recent = config.recent_share_days
    week = 7
    specs: list[FeatureSpec] = []
    add = specs.append

    add(FeatureSpec("days_since_enrolment", "Days since enrolment", "days", "usage",
                    "Enrolled {value:.0f} day{s} ago", group="enrolment",
                    description="time from enrolment to the prediction time"))

    # Recency. A patient who never had such an event gets the days since enrolment.
    add(FeatureSpec("days_since_last_engagement", "Days since the patient last used the program", "days", "usage",
                    "No activity for {value:.0f} day{s}", group="recency",
                    description="days since the last own-engagement event; days since enrolment if none yet"))
    add(FeatureSpec("days_since_last_session", "Days since last session", "days", "usage",
                    "No session for {value:.0f} day{s}", group="recency",
                    description="days since the last session; days since enrolment if none yet"))
    add(FeatureSpec("days_since_last_module", "Days since last module completed", "days", "usage",
                    "No module completed for {value:.0f} day{s}", group="recency",
                    description="days since the last module completion; days since enrolment if none yet"))

    for stem, unit, noun, phrase, what in _VOLUME:
        for days in windows:
            suffix, when = _window_words(days)
            add(FeatureSpec(f"{stem}_{suffix}", f"{noun} {when}", unit, "usage", f"{phrase} {when}",
                            group="frequency", description=f"{what} {when}"))

    add(FeatureSpec("modules_vs_pace", "Modules completed against the recommended pace", "ratio", "usage",
                    "{value:.0%} of the recommended module pace so far", missing="Too early to judge module pace",
                    group="adherence",
                    description="modules completed / (program modules per week x weeks since enrolment)"))
    add(FeatureSpec("sessions_vs_recommended", "Sessions against the recommended number so far", "ratio", "usage",
                    "{value:.0%} of the recommended sessions so far", missing="Too early to judge session pace",
                    group="adherence",
                    description="sessions / (program sessions per week x weeks since enrolment)"))
    add(FeatureSpec(f"sessions_{week}d_vs_recommended", "Last week's sessions against the weekly recommendation",
                    "ratio", "usage", f"{{value:.0%}} of the recommended sessions in the last {week} days",
                    group="adherence", description=f"sessions in the last {week} days / program sessions per week"))
    add(FeatureSpec("core_modules_share", "Share of the core modules completed", "share", "usage",
                    "{value:.0%} of the core modules completed", group="adherence",
                    description="modules completed / program core modules, at most 1"))

    add(FeatureSpec(f"activity_slope_{trend}d", f"Trend in daily activity over the last {trend} days",
                    "events/day per day", "usage",
                    f"Daily activity rising by {{value:.2f}} events a day over the last {trend} days",
                    phrase_down=f"Daily activity falling by {{value:.2f}} events a day over the last {trend} days",
                    steady=f"Daily activity steady over the last {trend} days",
                    missing="Too early to see an activity trend", group="shape",
                    description=f"least-squares slope of own-engagement events per day over the last {trend} "
                                "days (only days since enrolment; needs 2 days)"))
    add(FeatureSpec("current_streak_days", "Current run of consecutive active days", "days", "usage",
                    "Active {value:.0f} day{s} in a row up to now", group="shape",
                    description="consecutive active days ending today or yesterday; 0 if neither was active"))
    add(FeatureSpec("longest_streak_days", "Longest run of consecutive active days", "days", "usage",
                    "Longest run so far: {value:.0f} active day{s} in a row", group="shape",
                    description="longest run of consecutive active days since enrolment"))
    add(FeatureSpec("active_day_share", "Share of days since enrolment with any activity", "share", "usage",
                    "Active on {value:.0%} of days since enrolment", missing="Too early to judge regularity",
                    group="shape", description="active days / days since enrolment (a started day counts)"))
    add(FeatureSpec("gap_days_sd", "Irregularity of the gaps between active days", "days", "usage",
                    "Gaps between active days vary by {value:.1f} day{s}",
                    missing="Too few active days to judge regularity", group="shape",
                    description="standard deviation of the gaps between consecutive active days (needs 3 active days)"))
    add(FeatureSpec("recent_activity_share", f"Share of the last {trend} days' activity in the last {recent} days",
                    "share", "usage", f"{{value:.0%}} of the last {trend} days' activity was in the last {recent} days",
                    missing=f"No activity in the last {trend} days", group="shape",
                    description=f"own-engagement events in the last {recent} days / in the last {trend} days"))

    add(FeatureSpec("latest_mood", "Latest mood rating (0-10, 10 best)", "0-10", "patient",
                    "Latest mood rating {value:.1f} out of 10", missing="No mood check-in yet", group="clinical",
                    description="value of the most recent mood check-in"))
    add(FeatureSpec(f"mood_trend_{trend}d", f"Mood trend over the last {trend} days", "points/week", "patient",
                    "Mood improving by {value:.1f} point{s} a week", group="clinical",
                    phrase_down="Mood worsening by {value:.1f} point{s} a week", steady="Mood steady",
                    missing=f"Too few mood check-ins in the last {trend} days to see a trend",
                    description=f"least-squares slope of mood check-ins against time over the last {trend} days, "
                                "points per week (needs check-ins at least 2 days apart)"))
    add(FeatureSpec("mood_change_since_first", "Mood change since the first check-in", "points", "patient",
                    "Mood better by {value:.1f} point{s} since the first check-in",
                    phrase_down="Mood worse by {value:.1f} point{s} since the first check-in",
                    steady="Mood unchanged since the first check-in", missing="Fewer than two mood check-ins",
                    group="clinical", description="latest mood minus first mood check-in"))
    add(FeatureSpec("latest_phq9", "Latest PHQ-9 score", "points", "patient", "Latest PHQ-9 score {value:.0f}",
                    missing="No PHQ-9 since enrolment", group="clinical",
                    description="most recent PHQ-9 questionnaire total"))
    add(FeatureSpec("phq9_change", "PHQ-9 change since baseline", "points", "patient",
                    "PHQ-9 worse by {value:.0f} point{s} since enrolment",
                    phrase_down="PHQ-9 improved by {value:.0f} point{s} since enrolment",
                    steady="PHQ-9 unchanged since enrolment", missing="No PHQ-9 since enrolment",
                    group="clinical", description="latest PHQ-9 minus baseline PHQ-9 (negative is better)"))
    add(FeatureSpec("gad7_change", "GAD-7 change since baseline", "points", "patient",
                    "GAD-7 worse by {value:.0f} point{s} since enrolment",
                    phrase_down="GAD-7 improved by {value:.0f} point{s} since enrolment",
                    steady="GAD-7 unchanged since enrolment", missing="No GAD-7 since enrolment",
                    group="clinical", description="latest GAD-7 minus baseline GAD-7 (negative is better)"))

    add(FeatureSpec(f"coach_messages_{week}d", f"Coach messages received in the last {week} days", "messages",
                    "intervention", f"{{value:.0f}} coach message{{s}} received in the last {week} days",
                    group="support", description=f"messages from the coach in the last {week} days"))
    add(FeatureSpec("coach_messages_total", "Coach messages received since enrolment", "messages", "intervention",
                    "{value:.0f} coach message{s} received since enrolment", group="support",
                    description="messages from the coach since enrolment"))
    add(FeatureSpec(f"messages_to_coach_{week}d", f"Messages to the coach in the last {week} days", "messages",
                    "intervention", f"{{value:.0f}} message{{s}} to the coach in the last {week} days",
                    group="support", description=f"patient messages to the coach in the last {week} days"))
    add(FeatureSpec("messages_to_coach_total", "Messages to the coach since enrolment", "messages", "intervention",
                    "{value:.0f} message{s} to the coach since enrolment", group="support",
                    description="patient messages to the coach since enrolment"))
    add(FeatureSpec("unanswered_coach_messages", "Coach messages since the patient's last reply", "messages",
                    "intervention", "{value:.0f} coach message{s} without a reply", group="support",
                    description="coach messages after the patient's last message to the coach"))
    add(FeatureSpec("reply_latency_hours", "Average time to reply to the coach", "hours", "intervention",
                    "Replies to the coach after {value:.0f} hour{s} on average",
                    missing="No replies to the coach yet", group="support",
                    description="mean time from a coach message to the patient's next message (replies so far)"))
    add(FeatureSpec(f"reminders_sent_{week}d", f"Reminders sent in the last {week} days", "reminders",
                    "intervention", f"{{value:.0f}} reminder{{s}} sent in the last {week} days", group="support",
                    description=f"automatic reminders sent in the last {week} days"))
    add(FeatureSpec("reminder_open_rate", "Share of reminders opened", "share", "intervention",
                    "{value:.0%} of reminders opened", missing="No reminders sent yet", group="support",
                    description="reminders opened / reminders sent since enrolment"))

    specs += declared_specs(config)

    add(FeatureSpec("age", "Age at enrolment", "years", "patient", "Aged {value:.0f}", missing="Age not recorded",
                    group="baseline", description="age in years at enrolment"))
    add(FeatureSpec("male", "Male", "flag", "patient", "Male", "Not male", "Sex not recorded", group="baseline",
                    description="1 if sex is male, 0 if another recorded sex, NaN if unknown"))
    add(FeatureSpec("education_primary", "Primary education only", "flag", "patient", "Primary education only",
                    "More than primary education", "Education not recorded", group="baseline",
                    description="1 if highest education is primary, NaN if unknown"))
    add(FeatureSpec("education_tertiary", "Tertiary education", "flag", "patient", "Tertiary education",
                    "No tertiary education", "Education not recorded", group="baseline",
                    description="1 if highest education is tertiary, NaN if unknown"))
    add(FeatureSpec("baseline_phq9", "PHQ-9 at enrolment", "points", "patient", "PHQ-9 {value:.0f} at enrolment",
                    missing="No baseline PHQ-9", group="baseline", description="PHQ-9 total at enrolment"))
    add(FeatureSpec("baseline_gad7", "GAD-7 at enrolment", "points", "patient", "GAD-7 {value:.0f} at enrolment",
                    missing="No baseline GAD-7", group="baseline", description="GAD-7 total at enrolment"))
    add(FeatureSpec("comorbid_anxiety", "Anxiety at enrolment (GAD-7 10 or more)", "flag", "patient",
                    "Anxiety at enrolment (GAD-7 10 or more)", "No marked anxiety at enrolment",
                    "No baseline GAD-7", group="baseline", description="1 if baseline GAD-7 >= 10"))
    for name, words, off in (("human_support", "Has a coach or clinician supporting them",
                              "No coach or clinician supporting them"),
                             ("gamification", "Badges, streaks or points shown", "No badges, streaks or points"),
                             ("incentives", "Incentives offered", "No incentives offered"),
                             ("reminders_enabled", "Automatic reminders on", "Automatic reminders off")):
        add(FeatureSpec(name, words, "flag", "intervention", words, off,
                        "Not recorded", group="baseline", description=f"1 if {words[0].lower()}{words[1:]}"))
    for source, words in REFERRAL_SOURCES.items():
        add(FeatureSpec(f"referral_{source}", f"Referred by {words}", "flag", "system", f"Referred by {words}",
                        f"Not referred by {words}", "Referral route not recorded", group="baseline",
                        description=f"1 if referral source is '{source}'"))
    return tuple(specs)


def declared_specs(config: FeatureConfig) -> list[FeatureSpec]:
    """Catalog entries of the program's own declared event types, worded from the declaration ([events])."""
    windows: list[int | None] = [*config.windows_days, None]
    trend, week = max(config.windows_days), 7
    out: list[FeatureSpec] = []
    for declared in config.events.own_types():
        name, words = declared.maps_to, declared.label
        one = f"{name.replace('_', ' ')} event"
        level = "usage" if declared.own_engagement else "intervention"
        for days in windows:
            suffix, when = _window_words(days)
            out.append(FeatureSpec(f"{name}_{suffix}", f"{words[0].upper()}{words[1:]} {when}", "events", level,
                                   f"{{value:.0f}} {words} {when}", group="declared",
                                   description=f"number of {name} events {when} (declared in [events])"))
        out.append(FeatureSpec(f"days_since_last_{name}", f"Days since the last {one}", "days", level,
                               f"No {one} for {{value:.0f}} day{{s}}", group="declared",
                               description=f"days since the last {name} event; days since enrolment if none yet"))
        if declared.own_engagement:
            for days in config.windows_days:
                out.append(FeatureSpec(f"{name}_active_days_{days}d", f"Days with {words} in the last {days} days",
                                       "days", level, f"{words[0].upper()}{words[1:]} on {{value:.0f}} day{{s}} "
                                       f"in the last {days} days", group="declared",
                                       description=f"days with at least one {name} event in the last {days} days"))
            out.append(FeatureSpec(f"{name}_trend_{trend}d", f"Trend in daily {words} over the last {trend} days",
                                   "events/day per day", level,
                                   f"Daily {words} changing by {{value:+.2f}} a day over the last {trend} days",
                                   missing=f"Too early to see a trend in {words}", group="declared",
                                   description=f"least-squares slope of {name} events per day over the last {trend} "
                                               "days (only days since enrolment; needs 2 days)"))
        if declared.value != "none":
            how = "Average" if declared.value == "score" else "Total"
            what = f"{how} {name.replace('_', ' ')} {declared.value}"
            out.append(FeatureSpec(f"{name}_value_{week}d", f"{what} in the last {week} days", declared.value, level,
                                   f"{what} {{value:.1f}} in the last {week} days",
                                   missing=f"No {name.replace('_', ' ')} {declared.value} in the last {week} days",
                                   group="declared", description=f"{what.lower()} of {name} events in the last "
                                                                 f"{week} days"))
            out.append(FeatureSpec(f"{name}_value_change_{week}d", f"Change in {what.lower()} against the week before",
                                   declared.value, level, f"{what} changed by {{value:+.1f}} against the week before",
                                   missing=f"Too few {name.replace('_', ' ')} values to see a change",
                                   group="declared", description=f"{what.lower()} in the last {week} days minus "
                                                                 f"in the {week} days before"))
    return out


# Reasons are grouped by theme (several features saying one thing become one reason): group -> theme.
THEMES = {
    "enrolment": "time", "recency": "inactivity", "frequency": "inactivity", "adherence": "inactivity",
    "shape": "inactivity", "declared": "inactivity", "clinical": "symptoms", "support": "coach", "baseline": "background",
}
# The clinician's name of each theme.
THEME_WORDS = {
    "time": "Time in the program",
    "inactivity": "Use of the program",
    "symptoms": "Mood and symptoms",
    "coach": "Contact with the coach and reminders",
    "background": "Background at enrolment",
    "other": "Other",
}
# Themes whose not-recorded values are missing covariates: never given as a reason.
NOT_A_REASON_WHEN_MISSING = frozenset({"background"})

# Referral routes encoded as flags; any other recorded value sets all of them to 0.
REFERRAL_SOURCES = {"self": "themselves", "gp": "a GP", "employer": "an employer", "clinician": "a clinician"}

FEATURES: tuple[FeatureSpec, ...] = build_features()
_BY_NAME = {spec.name: spec for spec in FEATURES}


def feature_names() -> list[str]:
    """Names of every model feature, in catalog (column) order."""
    return [spec.name for spec in FEATURES]


def features_at_level(level: str) -> list[str]:
    """Names of the features that belong to one engagement level."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    return [spec.name for spec in FEATURES if spec.level == level]


def spec(name: str) -> FeatureSpec:
    """The catalog entry of one feature, by machine name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no feature named {name!r} in the catalog") from None


def catalog_markdown(specs: tuple[FeatureSpec, ...] = FEATURES) -> str:
    """The catalog as a Markdown table (docs/features.md embeds it; a test keeps the two equal)."""
    example = {"flag": 1.0, "share": 0.4, "ratio": 0.75, "0-10": 6.5}
    lines = ["| feature | clinician label | unit | level | group | definition | reason phrase (example) |",
             "|---|---|---|---|---|---|---|"]
    for s in specs:
        phrase = s.describe(example.get(s.unit, 3.0))
        lines.append(f"| `{s.name}` | {s.label} | {s.unit} | {s.level} | {s.group} | {s.description} | {phrase} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(catalog_markdown(), end="")

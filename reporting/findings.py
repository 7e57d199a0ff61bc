"""The report's key findings: each reporting element as one headline figure, its interval and one sentence.

Drawn from the report dict alone (like the page), so every number in a finding is in the JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup

from reporting.formats import ci_label, interval_span, number, percent, share_interval


@dataclass(frozen=True)
class Finding:
    """One reporting element at a glance: `figure` (e.g. '76.3%'), its `interval` (or ''), and a sentence
    (safe HTML: intervals inside it are unbreakable spans)."""

    key: str
    label: str
    figure: str
    interval: str
    sentence: Markup

    @property
    def text(self) -> str:
        """The finding as plain text, as a reader sees it."""
        parts = [self.figure, self.interval, self.sentence.striptags()]
        return " ".join(p for p in parts if p)


def key_findings(report: dict) -> list[Finding]:
    """The five reporting elements (duration of use as two: weekly use and time to dropout), in reading order."""
    return [
        _recommended_use(report),
        _uptake(report),
        _level_of_use(report),
        _weekly_use(report),
        _time_to_dropout(report),
        _completion(report),
    ]


def _suppressed(key: str, label: str, min_cell: int) -> Finding:
    return Finding(key, label, "suppressed", "",
                   Markup("Too few patients to show (a group or count under {}).").format(min_cell))


def _share_parts(s: dict, confidence: float) -> tuple[str, str]:
    return percent(s["share"]), f"({ci_label(confidence)} {share_interval(s['lower'], s['upper'])})"


def _per_week(value: float, what: str) -> str:
    return f"{number(value)} {what}{'' if value == 1 else 's'} a week"


def _recommended_use(r: dict) -> Finding:
    rec, s = r["recommended_use"], r["settings"]
    sentence = Markup("Patients are asked for {} and {}; completing {} core modules within {} days counts as "
                      "completion.").format(_per_week(rec["sessions_per_week"], "session"),
                                            _per_week(rec["modules_per_week"], "module"),
                                            number(rec["core_modules"]), s["window_days"])
    return Finding("recommended-use", "Recommended use", _per_week(rec["sessions_per_week"], "session"), "", sentence)


def _uptake(r: dict) -> Finding:
    s, any_use, within = r["settings"], r["uptake"]["any_use"], r["uptake"]["within_days"]
    if any_use["share"] is None:
        return _suppressed("uptake", "Uptake", s["min_cell"])
    figure, interval = _share_parts(any_use, s["confidence"])
    sentence = Markup("used the program at least once: {} of {} enrolled patients.").format(
        number(any_use["count"]), number(any_use["n"]))
    if within["share"] is not None:
        sentence += Markup(" Within {} days of enrolment: {} {} of the {} observed that long.").format(
            s["uptake_days"], percent(within["share"]),
            interval_span(f"({share_interval(within['lower'], within['upper'])})"), number(within["n"]))
    return Finding("uptake", "Uptake", figure, interval, sentence)


def _level_of_use(r: dict) -> Finding:
    s, lv = r["settings"], r["level_of_use"]
    sessions, modules = lv["sessions"], lv["modules"]
    if sessions["suppressed"] or sessions["median"] is None:
        return _suppressed("level-of-use", "Level of use", s["min_cell"])
    sentence = Markup("per patient (median) in the first {} days, among the {} observed that long.").format(
        s["window_days"], number(sessions["n"]))
    if not modules["suppressed"] and modules["median"] is not None:
        sentence += Markup(" Modules completed: median {} {}.").format(
            number(modules["median"]), interval_span(f"(IQR {number(modules['q1'])}–{number(modules['q3'])})"))
    figure = f"{number(sessions['median'])} session{'' if sessions['median'] == 1 else 's'}"
    return Finding("level-of-use", "Level of use", figure,
                   f"(IQR {number(sessions['q1'])}–{number(sessions['q3'])})", sentence)


def _weekly_use(r: dict) -> Finding:
    s, weekly = r["settings"], r["duration"]["weekly"]
    last, first = weekly[-1]["active"], weekly[0]["active"]
    label = "Duration of use: weekly use"
    if last["share"] is None:
        return _suppressed("weekly-use", label, s["min_cell"])
    figure, interval = _share_parts(last, s["confidence"])
    sentence = Markup("were still active in week {}: {} of the {} observed through that week.").format(
        s["weeks"], number(last["count"]), number(last["n"]))
    if s["weeks"] > 1 and first["share"] is not None:
        sentence += Markup(" In week 1: {} {}.").format(
            percent(first["share"]), interval_span(f"({share_interval(first['lower'], first['upper'])})"))
    return Finding("weekly-use", label, figure, interval, sentence)


def _time_to_dropout(r: dict) -> Finding:
    s, km = r["settings"], r["duration"]["dropout"]
    label = "Duration of use: time to dropout"
    if km["curve_end_day"] is None or km["n"] is None:
        return _suppressed("time-to-dropout", label, s["min_cell"])
    m = km["median_days"]
    if m["median"] is None:
        figure, interval = f"not reached by day {km['curve_end_day']}", ""
    else:
        lo = number(m["lower"]) if m["lower"] is not None else "—"
        hi = number(m["upper"]) if m["upper"] is not None else "not reached"
        figure, interval = f"{number(m['median'])} days", f"({ci_label(s['confidence'])} {lo}–{hi})"
    sentence = Markup("median time to dropout (Kaplan-Meier) among the {} users who could be assessed.").format(
        number(km["n"]))
    at = next((p for p in km["at_days"] if p["day"] == s["subgroup_survival_day"]), None)
    if at is not None and at["survival"] is not None:
        sentence += Markup(" Not yet dropped out on day {}: {} {}.").format(
            at["day"], percent(at["survival"]), interval_span(f"({share_interval(at['lower'], at['upper'])})"))
    return Finding("time-to-dropout", label, figure, interval, sentence)


def _completion(r: dict) -> Finding:
    s, c, rec = r["settings"], r["completion"], r["recommended_use"]
    if c["share"] is None:
        return _suppressed("completion", "Completion", s["min_cell"])
    figure, interval = _share_parts(c, s["confidence"])
    sentence = Markup("completed {} or more core modules within {} days: {} of the {} observed that long.").format(
        number(rec["core_modules"]), s["window_days"], number(c["count"]), number(c["n"]))
    return Finding("completion", "Completion", figure, interval, sentence)

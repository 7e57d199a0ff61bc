"""The simulator's generative parameters (docs/simulator.md explains each knob and where its default comes from)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrajectoryClass:
    """One engagement trajectory class of the simulator (docs/simulator.md explains each knob)."""

    name: str
    # Share among patients who start the program (never-starters are drawn before classes).
    share: float
    # Beta(a, b) of the daily probability of any own engagement while not quit.
    activity_beta: tuple[float, float]
    # Activity decays as exp(-day / fade); drawn uniformly in this range of days. (0, 0): no fade.
    fade_days: tuple[float, float]
    # Daily quit hazard before and after the change day (before covariate hazard ratios).
    hazard_early: float
    hazard_late: float
    # Change day = low + Gamma(2, extra / 2): the day symptoms are good enough to stop
    # (e-attainment), when the base hazard steps from early to late. (0, 0): no change day.
    change_day: tuple[float, float]
    # Share of baseline symptoms lost with sustained engagement.
    symptom_response: float
    # Probability that a quit is recorded with an explicit `discontinued` event.
    discontinue_probability: float
    # Multiplier on sessions, exercises and minutes per active day (bursts are intense).
    intensity: float = 1.0


DEFAULT_TRAJECTORIES: tuple[TrajectoryClass, ...] = (
    TrajectoryClass("steady", 0.34, (18.0, 4.0), (0.0, 0.0), 0.003, 0.003, (0.0, 0.0), 0.45, 0.2, 0.8),
    TrajectoryClass("early_burst", 0.28, (18.0, 3.0), (6.0, 9.0), 0.01, 0.01, (0.0, 0.0), 0.1, 0.15, 2.0),
    TrajectoryClass("slow_fade", 0.24, (16.0, 6.0), (25.0, 45.0), 0.01, 0.01, (0.0, 0.0), 0.2, 0.1, 0.8),
    TrajectoryClass("e_attainment", 0.14, (18.0, 4.0), (0.0, 0.0), 0.003, 0.25, (18.0, 28.0), 0.65, 0.5, 0.8),
)


@dataclass(frozen=True)
class SimulationConfig:
    """Generative parameters of the cohort simulator; docs/simulator.md gives the source of each default."""

    n_patients: int = 20_000
    days: int = 120
    seed: int = 20261201
    # Observation runs from study_start to study_start + days (data_end).
    study_start: str = "2025-09-01T00:00:00+00:00"
    # Patients enrol uniformly over this first share of the observation window.
    enrolment_share: float = 0.75
    # Patients generated at once (bounds memory; part of the seed stream, so keep it fixed).
    chunk_patients: int = 20_000

    # Patient level.
    age_mean: float = 38.0
    age_sd: float = 12.0
    age_range: tuple[int, int] = (18, 80)
    sex_shares: tuple[tuple[str, float], ...] = (("female", 0.62), ("male", 0.35), ("other", 0.02), ("unknown", 0.01))
    education_shares: tuple[tuple[str, float], ...] = (
        ("primary", 0.15), ("secondary", 0.45), ("tertiary", 0.37), ("unknown", 0.03),
    )
    race_ethnicity_shares: tuple[tuple[str, float], ...] = (
        ("white", 0.58), ("black", 0.12), ("hispanic", 0.14), ("asian", 0.08), ("other", 0.04), ("unknown", 0.04),
    )
    phq9_mean: float = 13.0
    phq9_sd: float = 5.0
    # GAD-7 = slope * PHQ-9 + Normal(intercept, sd), clipped to 0..21.
    gad7_slope: float = 0.55
    gad7_intercept: float = 1.5
    gad7_sd: float = 3.5

    # Intervention level: program name, share, P(human support), P(gamification).
    programs: tuple[tuple[str, float, float, float], ...] = (
        ("guided-icbt", 0.30, 0.75, 0.30),
        ("self-guided-icbt", 0.40, 0.10, 0.30),
        ("mood-app", 0.30, 0.05, 0.90),
    )
    incentives_share: float = 0.25
    reminders_share: float = 0.60

    # System level.
    referral_shares: tuple[tuple[str, float], ...] = (
        ("self", 0.35), ("gp", 0.30), ("employer", 0.15), ("clinician", 0.20),
    )
    n_sites: int = 12

    # Hazard ratios on the daily quit hazard (Karyotaki 2015, Torous 2020, Linardon 2020, Valentine).
    hr_male: float = 1.08
    hr_primary_education: float = 1.26
    hr_comorbid_anxiety: float = 1.18
    hr_per_4_years_older: float = 0.94
    age_reference: float = 40.0
    hr_human_support: float = 0.34
    hr_reminders: float = 0.80
    hr_incentives: float = 0.80
    hr_gamification: float = 1.0
    hr_referral: tuple[tuple[str, float], ...] = (("self", 1.0), ("gp", 0.95), ("employer", 1.10), ("clinician", 0.90))
    # Site log hazard ratios ~ Normal(0, sd), drawn once per seed.
    site_log_hr_sd: float = 0.08
    # Unobserved individual frailty: log hazard multiplier ~ Normal(0, sd).
    frailty_sd: float = 0.1
    hazard_cap: float = 0.9
    # Extra daily hazard as engagement wanes: disengagement_hazard * (1 - level) ** power.
    disengagement_hazard: float = 0.05
    disengagement_power: float = 3.0
    # Extra daily hazard after s silent days in a row:
    # lapse_hazard * (1 - exp(-max(s - lapse_grace_days, 0) / lapse_days)).
    lapse_hazard: float = 0.6
    lapse_days: float = 2.0
    lapse_grace_days: float = 1.5

    # Uptake (starting at all): logit P(start) = intercept + terms; higher severity lowers uptake.
    uptake_intercept: float = 0.9
    uptake_per_phq9_point: float = -0.06
    uptake_phq9_reference: float = 13.0
    uptake_human_support: float = 0.5
    uptake_incentives: float = 0.3
    uptake_reminders: float = 0.2
    uptake_female: float = 0.1
    never_starter_discontinue_probability: float = 0.08

    # Activity multipliers (women engage more, Zainal 2025; guidance raises use, Musiat 2022).
    activity_female: float = 1.05
    activity_human_support: float = 1.2
    activity_cap: float = 0.97
    weekend_factor: float = 0.9
    onboarding_probability: float = 0.92
    trajectories: tuple[TrajectoryClass, ...] = DEFAULT_TRAJECTORIES

    # Events on an active day.
    session_minutes_median: float = 9.0
    session_minutes_sigma: float = 0.7
    # Extra sessions (beyond the first) and exercises on an active day are Poisson with mean
    # rate * engagement level ** power, so intensity shows how engaged a patient is.
    extra_sessions_rate: float = 5.0
    extra_sessions_power: float = 1.0
    exercises_rate: float = 3.0
    # Patient-to-patient spread (log sd) of that intensity around the class multiplier.
    intensity_sd: float = 0.05
    mood_checkin_beta: tuple[float, float] = (6.0, 2.5)
    message_to_coach_probability: float = 0.3
    module_beta: tuple[float, float] = (5.0, 3.0)
    module_human_support_bonus: float = 0.12
    total_modules: int = 12
    modules_per_week: float = 1.0
    # PHQ-9 (and GAD-7) are due every this many days and done on the first active day within the window.
    assessment_every_days: int = 14
    assessment_window_days: int = 7
    phq9_noise_sd: float = 2.0
    # Active days of use after which half of the achievable symptom change has happened.
    symptom_half_days: float = 12.0
    mood_intercept: float = 8.3
    mood_per_phq9_point: float = -0.22
    mood_noise_sd: float = 1.2
    # Coach and reminders stop once a patient has been silent this long, or has discontinued.
    coach_messages_per_week: int = 2
    coach_gives_up_days: int = 28
    reminders_give_up_days: int = 21
    reminder_open_active: float = 0.55
    reminder_open_inactive: float = 0.06

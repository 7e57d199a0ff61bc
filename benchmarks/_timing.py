"""Timing shared by the benchmark scripts: medians over repeats, since these machines are noisy."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall time of `repeat` calls and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def wall_cpu_ms(fn: Callable[[], object], calls: int, warmup: int = 0,
                before: Callable[[], object] | None = None) -> tuple[float, float, float]:
    """Median wall ms, 99th percentile wall ms and median CPU ms (this process) of `calls` calls, after `warmup`
    untimed calls; `before()`, when given, runs untimed ahead of each timed call."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(calls):
        if before is not None:
            before()
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall)) * 1e3, float(np.percentile(wall, 99)) * 1e3, float(np.median(cpu)) * 1e3

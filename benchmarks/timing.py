"""Timing shared by the benchmarks: best of several runs, so a noisy neighbour inflates less."""

import time
from collections.abc import Callable


def best_of(repeats: int, function: Callable[[], object]) -> float:
    """The shortest wall time, in seconds, of `repeats` calls of `function`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)

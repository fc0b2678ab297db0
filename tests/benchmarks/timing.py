"""How the benchmarks time: best of several passes, and two functions timed in alternating passes."""

import time


def best_of(fn, items, repeat=5):
    """Seconds per call, best of ``repeat`` passes; each result is dropped as the metric and the
    data loader drop theirs (keeping hundreds of 400 KB masks alive would time page faults)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return best / len(items), [fn(x) for x in items]


def side_by_side(ours, floor, keys, repeat: int = 5) -> tuple[float, float]:
    """Seconds per call of ``ours`` and of ``floor`` over ``keys``, best of ``repeat`` passes each, the
    passes alternating (a quiet spell or a busy one falls on both)."""
    return tuple(alternating([(ours, keys), (floor, keys)], repeat))


def alternating(timed: list[tuple], repeat: int = 5) -> list[float]:
    """Seconds per call of each (function, its inputs), best of ``repeat`` passes each, one pass of each in
    turn."""
    for fn, keys in timed:
        fn(keys[0])
    best = [float("inf")] * len(timed)
    for _ in range(repeat):
        for slot, (fn, keys) in enumerate(timed):
            started = time.perf_counter()
            for key in keys:
                fn(key)
            best[slot] = min(best[slot], time.perf_counter() - started)
    return [seconds / len(keys) for seconds, (_, keys) in zip(best, timed)]

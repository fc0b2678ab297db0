"""``python -m tests.benchmarks [name ...]``: run the benchmarks and print one table.

Each benchmark module's ``run()`` returns rows: ``benchmark``, ``ours`` and ``reference`` (with their
``unit``, and ``digits`` where three decimals are not enough), ``ratio`` (reference / ours for speed, ours /
reference for memory), ``target`` and ``ok``.
"""

import importlib
import sys

MODULES = ["bench_loader", "bench_rle", "bench_postprocess", "bench_thresholds", "bench_resolution",
           "bench_predict_memory"]


def main(names: list[str]) -> int:
    rows = []
    for name in names or MODULES:
        rows += importlib.import_module(f"tests.benchmarks.{name}").run()
    print(f"{'benchmark':<56} {'steelkit':>14} {'reference':>14} {'ratio':>8} {'target':>10}  ok")
    for row in rows:
        digits = row.get("digits", 3)
        print(f"{row['benchmark']:<56} {row['ours']:>11.{digits}f} {row['unit']:<2} "
              f"{row['reference']:>11.{digits}f} {row['unit']:<2} {row['ratio']:>7.2f}x {row['target']:>10}  "
              f"{'yes' if row['ok'] else 'NO'}")
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""``python -m tests.benchmarks``: run every benchmark and print one table."""

import importlib
import sys

MODULES = ["bench_rle"]


def main(names: list[str]) -> int:
    rows = []
    for name in names or MODULES:
        rows += importlib.import_module(f"tests.benchmarks.{name}").run()
    print(f"{'benchmark':<34} {'steelkit':>12} {'reference':>12} {'ratio':>8} {'target':>8}  ok")
    failed = 0
    for row in rows:
        ok = row["speedup"] >= row["target"]
        failed += not ok
        print(f"{row['benchmark']:<34} {row['steelkit_ms']:>10.3f}ms {row['public_ms']:>10.3f}ms "
              f"{row['speedup']:>7.1f}x {row['target']:>7.1f}x  {'yes' if ok else 'NO'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

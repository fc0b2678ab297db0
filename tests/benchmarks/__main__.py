"""``python -m tests.benchmarks [name ...]``: run the benchmarks and print one table.

Each benchmark module's ``run()`` returns rows: ``benchmark``, ``ours`` and ``reference`` (with their
``unit``, and ``digits`` where three decimals are not enough), ``ratio`` (reference / ours for speed, ours /
reference for memory), ``target`` and ``ok``. Each module runs in a process of its own: what one leaves behind
changes the next one's timings (after the loader benchmark's DataLoader, glibc served post-processing's large
allocations by fresh mappings, and its two threads waited on each other's page faults: the dense row read 4.4x
its floor in the same process, 2.2x in its own).
"""

import importlib
import json
import subprocess
import sys

MODULES = ["bench_loader", "bench_rle", "bench_postprocess", "bench_thresholds", "bench_resolution",
           "bench_predict_memory"]
ROWS = "--rows-of"  # internal: run one module here, its rows as the last line of JSON


def rows_of(name: str) -> list[dict]:
    """One module's rows, from a process of its own; what it prints passes through."""
    done = subprocess.run([sys.executable, "-m", "tests.benchmarks", ROWS, name], stdout=subprocess.PIPE, text=True)
    lines = done.stdout.rstrip("\n").splitlines()
    if done.returncode or not lines:
        print("\n".join(lines))
        raise SystemExit(f"benchmark {name} failed (exit {done.returncode})")
    if lines[:-1]:
        print("\n".join(lines[:-1]))
    return json.loads(lines[-1])


def main(names: list[str]) -> int:
    if names[:1] == [ROWS]:
        rows = importlib.import_module(f"tests.benchmarks.{names[1]}").run()
        print(json.dumps([{k: (bool(v) if k == "ok" else v) for k, v in row.items()} for row in rows], default=float))
        return 0
    rows = []
    for name in names or MODULES:
        rows += rows_of(name)
    print(f"{'benchmark':<56} {'steelkit':>14} {'reference':>14} {'ratio':>8} {'target':>10}  ok")
    for row in rows:
        digits = row.get("digits", 3)
        print(f"{row['benchmark']:<56} {row['ours']:>11.{digits}f} {row['unit']:<2} "
              f"{row['reference']:>11.{digits}f} {row['unit']:<2} {row['ratio']:>7.2f}x {row['target']:>10}  "
              f"{'yes' if row['ok'] else 'NO'}")
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

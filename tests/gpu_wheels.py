"""``make gpu-wheels``: the Python 3.12 wheels of what a lent GPU machine's image lacks, for ``make gpu-check``.

That machine (Python 3.12, torch, timm, OpenCV, pandas, scikit-learn, SciPy, PyYAML) reaches no package
registry, and what travels with the working tree is at most 64 MiB. This downloads, at the versions this
project's virtual environment holds (the versions the tests ran with), the manylinux x86-64 wheels of:
segmentation-models-pytorch, albumentations, albucore and its compiled needs (stringzilla, simsimd),
pydantic and its compiled core, and iterative-stratification; then says how much they weigh against the
64 MiB. Usage: ``python -m tests.gpu_wheels [--out gpu-wheels]``; the folder is git-ignored.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# what the GPU image lacks, with what those need that it lacks too (read off each wheel's Requires-Dist)
LACKS = ("segmentation-models-pytorch", "albumentations", "albucore", "stringzilla", "simsimd", "pydantic",
         "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions",
         "iterative-stratification")
PYTHON = "3.12"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
LIMIT_MIB = 64  # what the working tree, carried folders included, may weigh on its way to the machine


def download(out: Path) -> list[Path]:
    """Each of LACKS at this environment's version into ``out`` (files already there are kept)."""
    out.mkdir(parents=True, exist_ok=True)
    pins = [f"{name}=={metadata.version(name)}" for name in LACKS]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", PYTHON, "--implementation", "cp", "--dest", str(out),
               *(arg for platform in PLATFORMS for arg in ("--platform", platform)), *pins]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"gpu-wheels: pip download failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    wheels = sorted(out.glob("*.whl"))
    names = {path.name.split("-")[0].lower().replace("_", "-") for path in wheels}
    missing = [name for name in LACKS if name not in names]
    if missing:
        raise SystemExit(f"gpu-wheels: no wheel came for {', '.join(missing)}")
    return wheels


def tracked_mib() -> float:
    """What the repository's tracked files weigh (they travel beside the wheels)."""
    names = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
    return sum(Path(name.decode()).stat().st_size for name in names if name and Path(name.decode()).is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu-wheels")
    args = parser.parse_args(argv)
    wheels = download(Path(args.out))
    mib = sum(path.stat().st_size for path in wheels) / 2**20
    for path in wheels:
        print(f"  {path.stat().st_size / 2**20:6.2f} MiB  {path.name}")
    tree = tracked_mib()
    verdict = "fits" if mib + tree <= LIMIT_MIB else "does NOT fit"
    print(f"{len(wheels)} wheels, {mib:.1f} MiB in {args.out}/: with the repository's {tree:.1f} MiB it {verdict} "
          f"the {LIMIT_MIB} MiB a lent machine's working tree may carry")
    return 0 if verdict == "fits" else 1


if __name__ == "__main__":
    sys.exit(main())

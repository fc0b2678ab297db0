"""Offline set-up inside a kernel: packages missing from Kaggle's image come from an attached wheels
dataset (``pip install --no-index --no-deps --find-links``), never from the internet.

``--no-deps``: what these packages need is on Kaggle's image already (kernels/kaggle-image.txt), and a
wheels dataset holds only what the image lacks. pip honours ``$PIP_TARGET``: the rehearsal points it at a
folder of its own, so that nothing a notebook installs outlives its run, as on Kaggle.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

# import name -> pip name: what steelkit needs beyond torch, numpy, pandas and cv2
PACKAGES = {"segmentation_models_pytorch": "segmentation-models-pytorch", "albucore": "albucore",
            "timm": "timm", "iterstrat": "iterative-stratification", "tqdm": "tqdm"}
STAGE_COMMAND = "python build_kernel.py stage-wheels OUT --user YOU, then kaggle datasets create -p OUT"


def missing_packages(packages: dict[str, str] = PACKAGES) -> list[str]:
    """The pip names of the packages that cannot be imported here."""
    return [pip for module, pip in packages.items() if importlib.util.find_spec(module) is None]


def ensure_packages(wheels_dirs: list[Path], packages: dict[str, str] = PACKAGES) -> dict[str, str]:
    """Install missing packages from local wheel folders -> {package: where it came from}. Raises naming
    the missing packages and how to stage them when no wheels are attached or they lack one."""
    missing = missing_packages(packages)
    if not missing:
        return {}
    found = [str(d) for d in wheels_dirs if Path(d).is_dir()]
    if not found:
        raise ModuleNotFoundError(f"{', '.join(missing)} not on this image and no wheels dataset attached; "
                                  f"stage one ({STAGE_COMMAND}) and attach it to this kernel")
    links = [arg for d in found for arg in ("--find-links", d)]
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", *links,
                           *missing], capture_output=True, text=True)
    if done.returncode:
        raise ModuleNotFoundError(f"{', '.join(missing)}: not installable from the attached wheels "
                                  f"({', '.join(found)}): {done.stderr.strip().splitlines()[-1:] or ''}; "
                                  f"stage them again ({STAGE_COMMAND})")
    importlib.invalidate_caches()
    still = missing_packages(packages)
    if still:
        raise ModuleNotFoundError(f"{', '.join(still)} installed from {', '.join(found)} but still not importable")
    return {name: _wheel_of(name, found) for name in missing}


def _wheel_of(package: str, folders: list[str]) -> str:
    stem = package.replace("-", "_").lower()
    for folder in folders:
        for wheel in sorted(Path(folder).glob("*.whl")):
            if wheel.name.lower().startswith(stem + "-"):
                return str(wheel)
    return folders[0]


def report(installed: dict[str, str], packages: dict[str, str] = PACKAGES) -> str:
    """Where each package came from: the image, or an attached wheel."""
    lines = []
    for module, pip in packages.items():
        if pip in installed:
            lines.append(f"  {pip}: installed from {installed[pip]}")
        else:
            spec = importlib.util.find_spec(module)
            where = Path(spec.origin).parents[1] if spec and spec.origin else "?"
            lines.append(f"  {pip}: on the image ({where})")
    return "packages:\n" + "\n".join(lines)

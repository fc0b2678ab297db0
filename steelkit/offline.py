"""Offline set-up inside a kernel: packages missing from Kaggle's image come from an attached wheels
dataset (``pip install --no-index --find-links``), never from the internet."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

# import name -> pip name: what steelkit needs beyond Kaggle's image (torch, numpy, pandas, cv2 are there)
PACKAGES = {"segmentation_models_pytorch": "segmentation-models-pytorch", "albumentations": "albumentations",
            "timm": "timm", "iterstrat": "iterative-stratification", "tqdm": "tqdm"}


def missing_packages(packages: dict[str, str] = PACKAGES) -> list[str]:
    """The pip names of the packages that cannot be imported here."""
    return [pip for module, pip in packages.items() if importlib.util.find_spec(module) is None]


def ensure_packages(wheels_dirs: list[Path], packages: dict[str, str] = PACKAGES) -> list[str]:
    """Install missing packages from local wheel folders; raise naming them if no wheels are attached."""
    missing = missing_packages(packages)
    if not missing:
        return []
    found = [str(d) for d in wheels_dirs if Path(d).is_dir()]
    if not found:
        raise ModuleNotFoundError(f"{', '.join(missing)} not installed and no wheels dataset attached "
                                  f"(looked in {', '.join(map(str, wheels_dirs)) or 'nothing'})")
    links = [arg for d in found for arg in ("--find-links", d)]
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", *links, *missing], check=True)
    importlib.invalidate_caches()
    return missing

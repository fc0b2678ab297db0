"""Kaggle's image as a record (kernels/kaggle-image.txt) and as a virtual environment (.venv-kaggle/).

The rehearsal runs notebooks with the interpreter of ``.venv-kaggle/``, built on first use from the record:
every package the image ships, at its version wherever this machine can install it (the record says
where it cannot, and what stands in), and none of those it lacks. It is rebuilt when the record changes
(a copy of the record inside the venv marks what it was built from). A kernelspec that points at its
interpreter lets nbclient start notebooks there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from steelkit.errors import UserError
from steelkit_kaggle import install
from steelkit_kaggle.settings import KERNELS

RECORD = KERNELS / "kaggle-image.txt"
VENV = KERNELS.parent / ".venv-kaggle"
KERNEL_NAME = "steelkit-kaggle"


@dataclass(frozen=True)
class Image:
    ships: dict[str, str]  # pip name -> requirement installed here (the image's, or its stand-in)
    lacks: tuple[str, ...]  # pip names the image does not have


def read_record(path: Path = RECORD) -> Image:
    """Parse the record; a line it cannot read raises naming the line."""
    ships, lacks = {}, []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("python:"):
            continue
        kind, _, rest = line.partition(":")
        if kind == "ships":
            original, _, here = rest.partition("->")
            requirement = (here or original).split("(")[0].strip()
            ships[original.split("==")[0].strip().lower()] = requirement
        elif kind == "lacks" and rest.strip():
            lacks.append(rest.strip().lower())
        else:
            raise UserError(f"{path}, line {number}: {raw!r} is neither 'ships: NAME==VERSION' nor 'lacks: NAME'")
    return Image(ships, tuple(lacks))


def python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def is_current(venv: Path = VENV, record: Path = RECORD) -> bool:
    stamp = venv / "kaggle-image.txt"
    return python(venv).is_file() and stamp.is_file() and stamp.read_text() == record.read_text()


def ensure(venv: Path = VENV, record: Path = RECORD, echo=print) -> Path:
    """.venv-kaggle/ as the record describes it (built or rebuilt when needed) -> its interpreter."""
    if is_current(venv, record):
        return python(venv)
    image = read_record(record)
    echo(f"building {venv} from {record} (Kaggle's image: {len(image.ships)} packages, without "
         f"{', '.join(image.lacks)}) ...")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    try:  # with this environment's uv: the image gets none, and torch's files are shared with .venv/
        install.install(python(venv), list(image.ships.values()), uv=install.uv_of(sys.executable))
    except subprocess.CalledProcessError as error:
        raise UserError(f"could not build {venv} from {record} (exit {error.returncode})") from None
    shutil.copy2(record, venv / "kaggle-image.txt")
    return python(venv)


def kernelspec_dir(into: Path, venv: Path = VENV) -> Path:
    """A Jupyter data folder (for $JUPYTER_PATH) whose kernel ``steelkit-kaggle`` runs the venv's Python."""
    spec = into / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        # the kernel's own log at ERROR: its "running over TCP without encryption" notice is noise on loopback
        "argv": [str(python(venv)), "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.log_level=ERROR"],
        "display_name": "Python 3 (Kaggle-like)", "language": "python"}))
    return into


def importable(module: str, venv: Path = VENV) -> bool:
    """Whether ``module`` imports in the venv as it stands (nothing a rehearsal installed persists there)."""
    return subprocess.run([str(python(venv)), "-c", f"import {module}"], capture_output=True).returncode == 0

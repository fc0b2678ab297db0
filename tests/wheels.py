"""Wheels made locally for the tests (they never reach a package index): an installed pure-Python
distribution packed back into the wheel it came from, with a fresh RECORD, or a one-module wheel made up."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import re
import zipfile
from pathlib import Path


def repack(distribution: str, out: Path) -> Path:
    """``<name>-<version>-py3-none-any.whl`` of an installed distribution, written into ``out``."""
    dist = importlib.metadata.distribution(distribution)
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    info = f"{name}-{dist.version}.dist-info"
    skip = {f"{info}/RECORD", f"{info}/INSTALLER", f"{info}/REQUESTED", f"{info}/direct_url.json"}
    files = {str(file): Path(file.locate()).read_bytes() for file in dist.files
             if not (str(file) in skip or str(file).startswith("..") or "__pycache__" in str(file)
                     or str(file).endswith(".pyc"))}
    return _write(out / f"{name}-{dist.version}-py3-none-any.whl", info, files)


def make(name: str, version: str, out: Path, requires: tuple[str, ...] = ()) -> Path:
    """A made-up wheel ``name`` with one module of that name and the dependencies ``requires``."""
    info = f"{name}-{version}.dist-info"
    metadata = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                        *(f"Requires-Dist: {r}\n" for r in requires)])
    files = {f"{name}.py": b"", f"{info}/METADATA": metadata.encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    return _write(out / f"{name}-{version}-py3-none-any.whl", info, files)


def _write(wheel: Path, info: str, files: dict[str, bytes]) -> Path:
    wheel.parent.mkdir(parents=True, exist_ok=True)
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{path},sha256={digest},{len(data)}")
        records.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return wheel

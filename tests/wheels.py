"""Wheels made locally for the tests (they never reach a package index): an installed pure-Python
distribution packed back into the wheel it came from, with a fresh RECORD."""

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
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{name}-{dist.version}-py3-none-any.whl"
    records = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files:
            path = str(file)
            if path in skip or path.startswith("..") or "__pycache__" in path or path.endswith(".pyc"):
                continue
            data = Path(file.locate()).read_bytes()
            archive.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{path},sha256={digest},{len(data)}")
        records.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return wheel

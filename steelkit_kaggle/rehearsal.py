"""The offline rehearsal: a built notebook executed as Kaggle would, on this machine.

- in ``.venv-kaggle/`` (steelkit_kaggle.image): Kaggle's packages, without those it lacks;
- with the internet off: every Python process of the run loads a sitecustomize that refuses any
  connection off this machine;
- inputs in a folder that plays /kaggle/input, laid out as Kaggle mounts them (``slug``:
  ``<input>/<slug>``; ``owner``: ``<input>/datasets/<owner>/<slug>`` and ``<input>/notebooks/<owner>/<slug>``);
- outputs in a folder that plays /kaggle/working;
- what a notebook installs goes to a folder of this run ($PIP_TARGET), gone afterwards, as on Kaggle,
  where every session starts from the image.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from steelkit.errors import UserError
from steelkit_kaggle import image

LAYOUTS = ("slug", "owner")
NO_NETWORK = '''
"""Loaded by every Python process of a steelkit rehearsal: any connection off this machine fails."""
import socket

_LOCAL = ("127.0.0.1", "::1", "localhost", "0.0.0.0")
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _check(address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in _LOCAL and not host.startswith("127."):
        raise ConnectionRefusedError(f"steelkit rehearsal: network access blocked ({address!r}); "
                                     "Kaggle runs this notebook with the internet off")


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _check((host,))
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''



def mount_path(inputs: Path, slug: str, layout: str = "slug", kind: str = "datasets",
               owner: str = "steelkit-demo") -> Path:
    """Where Kaggle mounts the input ``slug`` in ``layout``."""
    if layout not in LAYOUTS:
        raise UserError(f"input layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    return inputs / slug if layout == "slug" else inputs / kind / owner / slug


def attach(inputs: Path, slug: str, source: Path, layout: str = "slug", kind: str = "datasets",
           owner: str = "steelkit-demo") -> Path:
    """Copy ``source`` into ``inputs`` where Kaggle would mount the input ``slug`` -> its folder there."""
    target = mount_path(inputs, slug, layout, kind, owner)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    return target


def _echoing_client(progress):
    """nbclient's client, also handing the text a cell prints (its epoch lines and progress bars) to
    ``progress`` as it arrives; the inlined steelkit cells' outputs are left out."""
    class Echoing(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            cell = self.nb.cells[cell_index]
            if progress and msg["msg_type"] == "stream" and "steelkit" not in cell.metadata.get("tags", []):
                progress(msg["content"].get("text", ""))
            return super().output(outs, msg, display_id, cell_index)

    return Echoing


def run(folder: Path, input_dir: Path, working: Path | None = None, timeout: int = 3600,
        kaggle_env: bool = True, progress=None) -> dict:
    """Execute a built notebook with nbclient, offline: ``input_dir`` plays /kaggle/input, the outputs go
    to ``working`` (default <folder>/working), every connection off this machine fails; in .venv-kaggle
    unless ``kaggle_env`` is False (then in this Python); what the cells print goes to ``progress`` as it
    comes. Returns the executed notebook's path, the wall time and the working folder; a failing cell
    raises nbclient's CellExecutionError."""
    slug = folder.name
    working = Path(working or folder / "working")
    shutil.rmtree(working, ignore_errors=True)
    working.mkdir(parents=True)
    notebook = nbformat.read(folder / f"{slug}.ipynb", as_version=4)
    kernel_name = "python3"
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (scratch / "site").mkdir()
        (scratch / "site" / "sitecustomize.py").write_text(NO_NETWORK)
        installs = scratch / "installed"  # what the notebook pip-installs, for this run only
        installs.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STEELKIT_", "PYTHONPATH", "PIP_"))}
        env.update(PYTHONPATH=os.pathsep.join([str(scratch / "site"), str(installs)]), PIP_TARGET=str(installs),
                   STEELKIT_INPUT=str(input_dir.resolve()), STEELKIT_WORKING=str(working.resolve()),
                   PYTHONUNBUFFERED="1", PIP_DISABLE_PIP_VERSION_CHECK="1", MPLBACKEND="Agg")
        saved = os.environ.get("JUPYTER_PATH")
        if kaggle_env:
            image.ensure()
            os.environ["JUPYTER_PATH"] = str(image.kernelspec_dir(scratch / "jupyter"))
            kernel_name = image.KERNEL_NAME
        start = time.time()
        client = _echoing_client(progress)(notebook, timeout=timeout, kernel_name=kernel_name,
                                           resources={"metadata": {"path": str(working)}})
        try:
            client.execute(env=env)
        finally:
            nbformat.write(notebook, folder / f"{slug}.executed.ipynb")
            if saved is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = saved
    return {"notebook": folder / f"{slug}.executed.ipynb", "seconds": time.time() - start, "working": working}

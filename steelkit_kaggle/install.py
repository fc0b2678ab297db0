"""Installing into the project's virtual environments with uv, pip's own configuration carried over.

``.venv/`` and ``.venv-kaggle/`` both hold torch with its CUDA libraries (3 GB and more). pip unpacks a
copy into each; uv unpacks a wheel once into its cache and hard-links the files into every environment
(on one file system), and resolves and installs in parallel. uv does not read pip's configuration, so
the indexes, find-links and constraints pip is configured with (``pip config list``, ``PIP_*``) are passed
to it: it installs what pip would, from where pip would. Where uv cannot be had or fails, pip installs as
before. Standard library only: it runs before anything is installed (``python3 -m steelkit_kaggle.install``).

uv leaves out ``EXCLUDED``: triton (0.9 GB), which torch's CUDA wheel requires for ``torch.compile`` on a GPU
alone, a call steelkit never makes (Kaggle's image has its own; the rehearsal then lacks a package Kaggle
has, never the other way round).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

UV = "uv==0.13.9"
OPTIONS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
           "constraint": "--constraint"}
EXCLUDED = ("triton",)


def pip_options(python: str | os.PathLike) -> list[str]:
    """pip's configured indexes, find-links and constraints as uv options, with pip's precedence: the
    environment's ``PIP_*`` over the files' ``[install]`` over their ``[global]`` (``pip config list`` shows
    the files merged)."""
    listed = subprocess.run([str(python), "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    found: dict[str, dict[str, str]] = {"global": {}, "install": {}}
    for line in listed.splitlines():  # section.key='value'
        name, _, value = line.partition("=")
        section, _, key = name.partition(".")
        if section in found and key in OPTIONS:
            found[section][key] = value.strip().strip("'\"")
    options = []
    for key, flag in OPTIONS.items():
        value = os.environ.get(f"PIP_{key.upper().replace('-', '_')}",
                               found["install"].get(key, found["global"].get(key, "")))
        for item in shlex.split(value):
            options += [flag, item]
    return options


def uv_of(python: str | os.PathLike) -> Path:
    """Where the uv of the environment ``python`` belongs to is (or would be)."""
    return Path(python).parent / "uv"


def install(target: str | os.PathLike, requirements: list[str], uv: str | os.PathLike | None = None,
            quiet: bool = True, excluded: tuple[str, ...] = EXCLUDED) -> str:
    """Install ``requirements`` (pip arguments: names, ``-r FILE``) into the environment of the interpreter
    ``target`` with ``uv`` (default: ``target``'s own), leaving out the ``excluded`` packages wherever they
    are required, or pip where there is none or it fails (pip installs them) -> "uv" or "pip", whichever
    installed."""
    quiet_flag = ["--quiet"] if quiet else []
    uv = Path(uv) if uv else uv_of(target)
    try:
        if not uv.is_file():
            raise FileNotFoundError(f"{uv}: no such file")
        # every index weighed against the others, as pip weighs them (uv's default takes a package's first);
        # bytecode compiled as pip compiles it: where PYTHONDONTWRITEBYTECODE is set, nothing else would,
        # and every process would compile torch again (10 s an import here)
        with tempfile.NamedTemporaryFile("w", suffix=".txt") as excludes:
            excludes.write("".join(f"{name}\n" for name in excluded))
            excludes.flush()
            done = subprocess.run([str(uv), "pip", "install", *quiet_flag, "--python", str(target),
                                   "--index-strategy", "unsafe-best-match", "--compile-bytecode",
                                   "--excludes", excludes.name, *pip_options(target), *requirements],
                                  capture_output=quiet, text=True)
        if done.returncode == 0:
            return "uv"
        print(f"uv could not install into {target} ({(done.stderr or '').strip()[-500:]}); pip instead",
              file=sys.stderr)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"no uv ({error}); pip installs into {target}", file=sys.stderr)
    subprocess.run([str(target), "-m", "pip", "install", *quiet_flag, "--disable-pip-version-check",
                    *requirements], check=True)
    return "pip"


def main(argv: list[str]) -> int:
    """``python3 -m steelkit_kaggle.install VENV REQUIREMENT...``: VENV made if missing, then installed into."""
    venv, requirements = Path(argv[0]), argv[1:]
    python = venv / "bin" / "python"
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if not uv_of(python).is_file():  # uv itself comes with pip, wherever pip is configured to look
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", UV],
                       check=False)
    install(python, requirements)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

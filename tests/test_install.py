"""The installer of the project's environments: pip's configuration carried over to uv, a wheel installed
by uv into a fresh venv from a local folder (triton left out), and pip where uv cannot do it."""

import os
import subprocess
import sys
import venv

from steelkit_kaggle import install
from tests import wheels


def test_pips_indexes_find_links_and_constraints_become_uvs_options(tmp_path, monkeypatch):
    config = tmp_path / "pip.conf"
    config.write_text("[global]\nextra-index-url = file:///a/simple file:///b/simple\nfind-links = /wheels\n"
                      "index-url = https://mirror.example/simple\n")
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_CONSTRAINT", str(tmp_path / "constraints.txt"))
    assert install.pip_options(sys.executable) == [
        "--index-url", "https://mirror.example/simple", "--extra-index-url", "file:///a/simple",
        "--extra-index-url", "file:///b/simple", "--find-links", "/wheels", "--constraint",
        str(tmp_path / "constraints.txt")]


def test_uv_installs_a_local_wheel_into_a_fresh_venv_and_pip_stands_in_when_uv_fails(tmp_path):
    folder = tmp_path / "wheels"
    folder.mkdir()
    wheels.repack("six", folder)
    target = tmp_path / "env"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    offline = ["--no-index", "--find-links", str(folder), "six"]
    uv = install.uv_of(sys.executable)
    assert uv.is_file(), f"{uv}: the project's environment is made with uv (make test installs it)"
    assert install.install(python, offline, uv=uv) == "uv"
    no_bytecode = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # the import itself writes none
    assert subprocess.run([str(python), "-c", "import six"], env=no_bytecode).returncode == 0
    assert list(target.glob("lib/python*/site-packages/__pycache__/six.*.pyc")), "compiled as pip compiles"
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "six"], check=True)
    failing = tmp_path / "uv"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    assert install.install(python, offline, uv=failing) == "pip"
    assert subprocess.run([str(python), "-c", "import six"]).returncode == 0


def test_uv_leaves_out_triton_where_a_package_requires_it(tmp_path):
    """torch's CUDA wheel requires triton (0.9 GB, for torch.compile on a GPU): a made-up package requiring it
    installs, triton does not, though it is right there in the folder."""
    found = tmp_path / "wheels"
    wheels.make("triton", "3.0.0", found)
    wheels.make("needs_triton", "1.0", found, requires=("triton==3.0.0",))
    target = tmp_path / "env"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    assert install.install(python, ["--no-index", "--find-links", str(found), "needs_triton"],
                           uv=install.uv_of(sys.executable)) == "uv"
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "freeze"], capture_output=True,
                            text=True, check=True).stdout.lower().replace("_", "-").split()
    assert "needs-triton==1.0" in listed
    assert not [line for line in listed if line.startswith("triton==")], listed

"""``pip install .`` at the repository root, as a newcomer types it: a fresh venv, a clean copy.

The root is the meta-distribution ``agent-aegis``; its core dependency is not on the package
index, so the metadata hook (``hatch_build.py``) points it at the core in the checkout. Plain pip,
not uv: uv would find the core through ``[tool.uv.sources]`` and hide a broken hook. It takes
~30 s (a real resolve and two builds), hence ``slow``: ``nox -s root_install``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from repo_copy import clean_copy


@pytest.mark.slow
def test_pip_install_dot_at_the_root(tmp_path: Path) -> None:
    copy = clean_copy(tmp_path / "clone")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "."],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    version = subprocess.run(
        [str(venv / "bin" / "aegis"), "-V"], capture_output=True, text=True, timeout=60
    )
    assert (version.returncode, version.stdout.strip()) == (0, "0.1.0")
    probe = (
        "import importlib.metadata as m, json, aegis;"
        "print(json.dumps([m.requires('agent-aegis'), aegis.__file__,"
        " m.distribution('agent-aegis').read_text('licenses/LICENSE') or '']))"
    )
    requires, core_file, license_text = json.loads(
        subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    )
    # Without an extra only the core is installed; the extras' lines carry their `extra ==` marker.
    plain = [r for r in requires if "extra ==" not in r]
    assert plain == [f"agent-aegis-core @ {(copy / 'aegis-core').resolve().as_uri()}"]
    assert Path(core_file).is_relative_to(venv)  # installed, not imported from the copy
    assert "MIT License" in license_text

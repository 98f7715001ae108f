"""A plugin distribution's module joins the core's ``aegis.adapters`` package.

Run by ``nox -s plugin_wheel`` twice: with both distributions installed from wheels, and both
installed editable (``AEGIS_EXPECT_INSTALL`` says which), because the two put the files in
different places and the recipe must hold for both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN_SRC = REPO / "tests" / "plugins" / "aegis-example-plugin" / "src"
CORE_SRC = REPO / "aegis-core" / "src"
EXPECT = os.environ.get("AEGIS_EXPECT_INSTALL")


def _run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=os.getcwd(), check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_plugin_module_and_core_module_import_together() -> None:
    import aegis.adapters.base
    import aegis.adapters.example

    assert issubclass(aegis.adapters.example.EchoExecutor, aegis.adapters.base.BaseExecutor)


@pytest.mark.parametrize(
    "first",
    ["aegis.adapters.example", "aegis.adapters.base", "aegis"],
)
def test_import_order_does_not_matter(first: str) -> None:
    # A fresh interpreter each time: the order of the first imports is what could break.
    out = _run(
        f"import {first}\n"
        "import aegis.adapters.example as ex, aegis.adapters.base as base\n"
        "print(issubclass(ex.EchoExecutor, base.BaseExecutor))"
    )
    assert out == "True"


def test_shared_packages_come_from_core_only() -> None:
    import aegis
    import aegis.adapters

    # Exactly one regular package owns each shared name; the plugin adds a path, not a package.
    assert Path(aegis.__file__).parent.name == "aegis"
    assert Path(aegis.adapters.__file__).name == "__init__.py"
    assert not (PLUGIN_SRC / "aegis" / "__init__.py").exists()
    assert not (PLUGIN_SRC / "aegis" / "adapters" / "__init__.py").exists()


@pytest.mark.skipif(EXPECT != "wheel", reason="checks a wheel install")
def test_wheel_install_uses_site_packages_not_the_source_tree() -> None:
    import aegis.adapters.base
    import aegis.adapters.example

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    for module in (aegis.adapters.base, aegis.adapters.example):
        path = Path(module.__file__ or "").resolve()
        assert site in path.parents, f"{module.__name__} imported from {path}"
        assert CORE_SRC not in path.parents and PLUGIN_SRC not in path.parents


@pytest.mark.skipif(EXPECT != "editable", reason="checks an editable install")
def test_editable_install_uses_each_distributions_source_tree() -> None:
    import aegis.adapters.base
    import aegis.adapters.example

    assert Path(aegis.adapters.base.__file__ or "").resolve().is_relative_to(CORE_SRC)
    assert Path(aegis.adapters.example.__file__ or "").resolve().is_relative_to(PLUGIN_SRC)

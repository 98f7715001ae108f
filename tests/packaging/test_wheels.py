"""What the built wheels contain (``nox -s plugin_wheel`` passes the wheelhouse it built)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

WHEELHOUSE = os.environ.get("AEGIS_WHEELHOUSE")

pytestmark = pytest.mark.skipif(
    os.environ.get("AEGIS_EXPECT_INSTALL") != "wheel", reason="needs the wheels: plugin_wheel"
)


def _names(dist: str) -> set[str]:
    assert WHEELHOUSE, "AEGIS_WHEELHOUSE must name the directory the session built into"
    (wheel,) = Path(WHEELHOUSE).glob(f"{dist}-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_plugin_wheel_ships_no_init_of_a_shared_package() -> None:
    names = _names("aegis_example_plugin")
    assert "aegis/adapters/example.py" in names
    assert "aegis/__init__.py" not in names
    assert "aegis/adapters/__init__.py" not in names
    assert not [n for n in names if n.startswith("aegis/") and n != "aegis/adapters/example.py"]


def test_core_wheel_ships_the_shared_packages_and_types() -> None:
    names = _names("agent_aegis_core")
    assert {"aegis/__init__.py", "aegis/adapters/__init__.py", "aegis/py.typed"} <= names
    assert "aegis/adapters/base.py" in names


def test_plugin_wheel_declares_its_entry_point() -> None:
    (wheel,) = Path(WHEELHOUSE or "").glob("aegis_example_plugin-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        entry_points = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
        text = zf.read(entry_points).decode()
    assert "[aegis]" in text
    assert "example = aegis_example_plugin.plugin" in text

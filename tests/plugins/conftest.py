"""These tests need tests/plugins/aegis-example-plugin *installed*; `nox -s plugin_wheel` does that.

Elsewhere (the default suite, a dev venv) they are skipped with that reason. The nox session sets
AEGIS_REQUIRE_EXAMPLE_PLUGIN=1, which turns a missing plugin into an error instead, so the
session cannot pass by skipping.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def example_plugin_installed() -> bool:
    return importlib.util.find_spec("aegis_example_plugin") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if example_plugin_installed():
        return
    if os.environ.get("AEGIS_REQUIRE_EXAMPLE_PLUGIN") == "1":
        raise pytest.UsageError(
            "AEGIS_REQUIRE_EXAMPLE_PLUGIN=1 but aegis-example-plugin is not installed"
        )
    skip = pytest.mark.skip(reason="needs aegis-example-plugin installed: nox -s plugin_wheel")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)

"""Moved: the coding-agent hooks are the distribution agent-aegis-hooks (``aegis.adapters.hooks``).

This name forwards to ``aegis.adapters.hooks.mapping`` when that distribution is installed
(``pip install ./aegis-adapters/hooks``), so code written against the earlier layout still runs.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    try:
        moved = importlib.import_module("aegis.adapters.hooks.mapping")
    except ImportError:
        raise ImportError(
            "aegis.adapters.mcp.hooks moved to agent-aegis-hooks (aegis.adapters.hooks): "
            "pip install ./aegis-adapters/hooks"
        ) from None
    return getattr(moved, name)

"""Approval requests: the handler contract, the durable request book, and the flow between them.

Where to start: ``handlers`` is the small contract a handler implements and ``decide()``;
``flow`` is what the engine calls for an ``approve`` decision; ``store`` is the book of
requests in the audit database (its rows, tokens, links, waits and reaping live in the
modules named after them); ``channels`` loads the channel plugins by name.

The handler classes are importable from here, as they were when this was the original's one
module (``from aegis.runtime.approval import AutoApprovalHandler``: agent-aegis 0.1.x code and
its README's "runtime/ ... ApprovalHandler"). They load on first use, so importing a submodule
does not pull in the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis.runtime.approval.handlers import (
        ApprovalHandler,
        AutoApprovalHandler,
        CallbackApprovalHandler,
        CLIApprovalHandler,
    )

__all__ = [
    "ApprovalHandler",
    "AutoApprovalHandler",
    "CLIApprovalHandler",
    "CallbackApprovalHandler",
]

_WHERE = {name: "handlers" for name in __all__}


def __getattr__(name: str) -> object:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{where}"), name)

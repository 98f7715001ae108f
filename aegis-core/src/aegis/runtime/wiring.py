"""How the ``Runtime``'s constructor arguments become its parts: names looked up in the plugin
registry, one-shot handlers wrapped as channels, a URL or path opened as an audit store.

Kept apart from the pipeline (pipeline.py) because none of it runs per action: a mistake here is
an ``ExecutorError`` / ``AuditError`` when the runtime is built, never a decision.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aegis import plugins
from aegis.errors import AuditError, ExecutorError
from aegis.runtime.approval.channels import ApprovalChannel, HandlerChannel
from aegis.runtime.approval.handlers import ApprovalHandler, CLIApprovalHandler

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore

log = logging.getLogger("aegis.runtime")

Approver = ApprovalHandler | ApprovalChannel | str


def channels_of(value: Approver | Sequence[Approver] | None) -> tuple[ApprovalChannel, ...]:
    """Every approval channel the runtime notifies (one-shot handlers wrapped as channels)."""
    if value is None:
        items: list[Any] = [CLIApprovalHandler()]
    elif isinstance(value, str | ApprovalHandler | ApprovalChannel):
        items = [value]
    else:
        items = list(value)
    if not items:
        raise ExecutorError("approval_handler: give at least one handler or channel")
    out: list[ApprovalChannel] = []
    for item in items:
        resolved = resolve(item, "approval_handlers", (ApprovalHandler, ApprovalChannel))
        out.append(resolved if isinstance(resolved, ApprovalChannel) else HandlerChannel(resolved))
    return tuple(out)


def built_by_name(
    value: Approver | Sequence[Approver] | None, channels: tuple[ApprovalChannel, ...]
) -> tuple[ApprovalChannel, ...]:
    given = [value] if isinstance(value, str | ApprovalHandler | ApprovalChannel) else value
    if given is None:
        return ()
    return tuple(c for item, c in zip(given, channels, strict=True) if isinstance(item, str))


async def close_channel(channel: ApprovalChannel) -> None:
    """``aclose()`` (or ``close()``) of a channel the runtime owns; errors are only logged."""
    closer = getattr(channel, "aclose", None) or getattr(channel, "close", None)
    if closer is None:
        return
    try:
        value = closer()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            await asyncio.wait_for(value, 10.0)
    except Exception:
        log.exception("could not close approval channel %s", getattr(channel, "name", channel))


def resolve(value: Any, kind: str, base: type | tuple[type, ...]) -> Any:
    if isinstance(value, str):
        registration = plugins.get_registry().get(kind, value)
        if registration is None:
            known = ", ".join(plugins.get_registry().names(kind)) or "none"
            raise ExecutorError(
                f"no {kind[:-1].replace('_', ' ')} named {value!r} (registered: {known})"
            )
        value = registration.obj()
    if not isinstance(value, base):
        names = " or ".join(b.__name__ for b in (base if isinstance(base, tuple) else (base,)))
        raise ExecutorError(f"expected a {names}, got {type(value).__name__}")
    return value


def is_store(value: object) -> bool:
    from aegis.runtime.audit import AuditStore

    return isinstance(value, AuditStore)


def make_store(value: AuditStore | str | None) -> AuditStore:
    from aegis.runtime.audit import AuditStore

    if isinstance(value, AuditStore):
        return value
    if value is None or isinstance(value, str | os.PathLike):
        return AuditStore(value)  # None: $AEGIS_AUDIT_URL, else the default file
    raise AuditError(f"audit must be an AuditStore or a SQLAlchemy URL, got {type(value).__name__}")

"""``aegis serve POLICY``: the REST API and dashboard, run with uvicorn.

Secure by default: without API keys the server answers on 127.0.0.1 only (and says so), and
refuses any other address; changing the policy over HTTP needs a key with ``admin``.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

from cyclopts import Parameter

from aegis.adapters.base import BaseExecutor
from aegis.core.action import Action
from aegis.core.policy import Policy
from aegis.core.result import Result
from aegis.errors import AegisError
from aegis.runtime.approval.channels import ApprovalChannel
from aegis.runtime.audit import AuditStore
from aegis.runtime.engine import Runtime
from aegis.runtime.policy_versions import PolicyHistory, VersionedPolicy
from aegis.server.auth import ApiKey, AuthError, parse_keys
from aegis.server.context import ServerConfig
from aegis.server.jobs import ServerQueueChannel


class NoExecutor(BaseExecutor):
    """Stands in when the server only authorises: it is never called (``Runtime.authorize``)."""

    async def execute(self, action: Action) -> Result:
        raise RuntimeError("aegis serve without --executor authorises; it never executes")


def load_executor(spec: str, options: dict[str, str]) -> BaseExecutor | str:
    """A registered executor name, or ``package.module:Factory`` for one of your own."""
    if ":" not in spec:
        from aegis import plugins

        reg = plugins.get_registry().get("executors", spec)
        if reg is None:
            known = ", ".join(plugins.get_registry().names("executors")) or "none"
            raise AegisError(f"--executor: no executor named {spec!r} (registered: {known})")
        made: Any = reg.obj(**options)
    else:
        module, _, attr = spec.partition(":")
        try:
            made = getattr(importlib.import_module(module), attr)(**options)
        except (ImportError, AttributeError) as exc:
            raise AegisError(f"--executor {spec}: {exc}") from exc
    if not isinstance(made, BaseExecutor):
        raise AegisError(f"--executor {spec}: made a {type(made).__name__}, not a BaseExecutor")
    return made


def _options(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise AegisError(f"--executor-option {item!r}: expected NAME=VALUE")
        out[name] = value
    return out


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build(
    policy: str,
    *,
    database: str,
    executor: str | None,
    executor_options: dict[str, str],
    approval: list[str],
    keys: tuple[ApiKey, ...],
    config: ServerConfig,
    shadow: str | None = None,
) -> Any:
    from aegis.server.app import create_app

    channels: list[ApprovalChannel | str] = [
        ServerQueueChannel() if name == "queue" else name for name in approval
    ]
    # Loaded first, so a bad candidate file stops the start-up with its error; once running,
    # the shadow only ever adds its verdict to the records (aegis.runtime.shadow).
    candidate = Policy.from_yaml(shadow) if shadow else None
    store = AuditStore(database)
    try:
        text = Path(policy).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AegisError(f"{policy}: cannot read the policy file: {exc}") from exc
    # The file seeds the version history; the newest version is what every replica serves.
    source = VersionedPolicy.open(PolicyHistory(store), text, path=policy)
    runtime = Runtime(
        executor=load_executor(executor, executor_options) if executor else NoExecutor(),
        policy=source,
        approval_handler=channels,
        audit=store,
        shadow=candidate,
    )
    return create_app(
        runtime,
        keys=keys,
        config=config,
        authorize_only=executor is None,
        session_secret=os.environ.get("AEGIS_SESSION_SECRET"),
    )


def serve(
    policy: str,
    /,
    *,
    host: Annotated[str, Parameter(help="Address to bind (non-loopback needs API keys).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, Parameter(help="TCP port.")] = 8000,
    database: Annotated[
        str | None,
        Parameter(help="SQLAlchemy URL of the audit database (or AEGIS_DATABASE_URL)."),
    ] = None,
    executor: Annotated[
        str | None,
        Parameter(help="Executor plugin name or module:Factory; without it /execute authorises."),
    ] = None,
    executor_option: Annotated[
        list[str] | None, Parameter(help="NAME=VALUE passed to the executor factory.")
    ] = None,
    api_key: Annotated[
        list[str] | None,
        Parameter(help="[NAME=]KEY[:scope+scope][@AGENT]; also AEGIS_API_KEYS (comma-separated)."),
    ] = None,
    approval: Annotated[
        list[str] | None,
        Parameter(help="Approval channels (default: queue; 'auto' approves everything)."),
    ] = None,
    outcome_timeout: Annotated[
        float, Parameter(help="Seconds an authorised caller has to report the outcome.")
    ] = 300.0,
    rate_limit: Annotated[float, Parameter(help="Requests/s per key (0: unlimited).")] = 0.0,
    max_body: Annotated[int, Parameter(help="Largest request body in bytes.")] = 1_000_000,
    secure_cookies: Annotated[bool, Parameter(help="Dashboard cookies only over HTTPS.")] = False,
    workers: Annotated[int, Parameter(help="uvicorn worker processes.")] = 1,
    notify: Annotated[
        bool,
        Parameter(help="On PostgreSQL, LISTEN/NOTIFY wakes other replicas' waiters at once."),
    ] = True,
    shadow: Annotated[
        str | None,
        Parameter(help="Candidate policy recorded beside the live one; it never decides."),
    ] = None,
) -> int:
    """Serve the REST API (/api/v1, OpenAPI at /schema) and the dashboard (/dashboard)."""
    import uvicorn

    specs = list(api_key or [])
    env_keys = os.environ.get("AEGIS_API_KEYS", "")
    specs += [s for s in env_keys.split(",") if s.strip()]
    try:
        keys = parse_keys(specs)
    except AuthError as exc:
        sys.stderr.write(f"aegis serve: {exc}\n")
        return 2
    if not keys and not _is_loopback(host):
        sys.stderr.write(
            f"aegis serve: refusing to listen on {host} without API keys "
            "(give --api-key or AEGIS_API_KEYS, or bind 127.0.0.1)\n"
        )
        return 2
    if not keys:
        sys.stderr.write(
            "aegis serve: no API keys: listening on loopback only; callers are anonymous "
            "and nobody can change the policy\n"
        )
    url = database or os.environ.get("AEGIS_DATABASE_URL") or "sqlite:///aegis_audit.db"
    config = ServerConfig(
        max_body_bytes=max_body,
        rate_per_key=rate_limit,
        secure_cookies=secure_cookies,
        outcome_timeout=outcome_timeout,
        notify=notify,
    )
    try:
        app = build(
            policy,
            database=url,
            executor=executor,
            executor_options=_options(executor_option),
            approval=approval or ["queue"],
            keys=keys,
            config=config,
            shadow=shadow,
        )
    except AegisError as exc:
        sys.stderr.write(f"aegis serve: {str(exc).splitlines()[0]}\n")
        return 2
    if workers != 1:
        sys.stderr.write("aegis serve: --workers other than 1: run several replicas instead\n")
        return 2
    # No access log (warning level hides it anyway) and no X-Forwarded-* rewriting: the server
    # never reads a client's address, and both cost CPU on every request.
    served = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_keep_alive=5,
        access_log=False,
        proxy_headers=False,
    )
    run_until_signal(served, app.state.aegis.service.drain_soon)
    return 0


def run_until_signal(config: Any, on_signal: Callable[[], None]) -> None:
    """uvicorn's server, telling the app the moment a stop signal arrives: uvicorn itself
    tells it only after every open connection (a 55 s long-poll, a live tail) has ended."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            on_signal()
            super().handle_exit(sig, frame)

    Server(config).run()

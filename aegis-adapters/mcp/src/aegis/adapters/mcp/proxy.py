"""The MCP proxy: a real MCP server whose every tool call goes through the Aegis runtime.

* ``tools/list`` is the union of the upstreams' tools (named ``server__tool`` when there are
  several), minus tools the policy blocks outright and tools in quarantine (``pins``).
* ``tools/call`` becomes ``Action(type=tool, target=server, params=arguments)`` and goes through
  ``runtime.run_one``: decided, maybe approved, executed on the upstream, audited. Anything that
  did not run comes back as a tool error (``is_error``) whose text says why, so the model reads
  the reason instead of the client seeing a transport failure.
* Resources and prompts are passed through and governed as actions of their own kind:
  ``resources/read`` (params ``{"uri"}``) and ``prompts/get`` (params ``{"name", "arguments"}``).
* A name the proxy did not list (a hidden or unknown tool) is refused by the policy gate and
  audited like any other stopped call, so hiding is never the only defence.

That gate is ``gate.ProxyGate`` (a runtime gate, kept whatever policy is swapped in);
resources and prompts are ``passthrough``; what a client gets back is built in ``replies``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal

import attrs
import mcp_types as types
from aegis.adapters.mcp import explain, tool_action
from aegis.adapters.mcp.config import PREFIX_RULE, ConfigError, prefixable
from aegis.adapters.mcp.executor import ProgressCallback, progress_callback
from aegis.adapters.mcp.gate import ProxyGate
from aegis.adapters.mcp.passthrough import Passthrough
from aegis.adapters.mcp.pins import QUARANTINED, TRUSTED, PinEvent, PinStore, ToolShape
from aegis.adapters.mcp.replies import progress_forwarder, to_call_result
from aegis.adapters.mcp.upstream import Upstream, UpstreamDown

from aegis.core.action import Action
from aegis.core.decision import PolicyDecision
from aegis.core.result import Result, ResultStatus
from aegis.core.risk import Approval, RiskLevel
from mcp.server.lowlevel import NotificationOptions, Server

log = logging.getLogger("aegis.mcp.proxy")

Quarantine = Literal["hide", "approve"]
SEPARATOR = "__"


def tool_shape(tool: types.Tool) -> ToolShape:
    """What is pinned of a tool: all of the definition the proxy lists to its clients."""
    extra = tool.model_dump(
        by_alias=True,
        mode="json",
        exclude_none=True,
        exclude={"name", "description", "input_schema"},
    )
    return ToolShape(tool.name, tool.description or "", tool.input_schema or {}, extra)


@attrs.frozen
class Route:
    server: str
    tool: str
    definition: types.Tool


class Proxy(Passthrough):
    """One MCP server in front of ``upstreams``, deciding every call through ``runtime``.

    It adds its gate to the runtime when made (``ProxyGate``), so a tool it does not list is
    refused even if a client names it. ``pins`` (with ``quarantine``) holds
    back tools whose definition changed since it was trusted: hidden, or asked for approval.
    ``prefix`` names tools ``server__tool``; by default only when there are several upstreams,
    so that two servers' tools of one name cannot be confused."""

    def __init__(
        self,
        runtime: Any,
        upstreams: Sequence[Upstream],
        *,
        pins: PinStore | None = None,
        quarantine: Quarantine = "hide",
        prefix: bool | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.runtime = runtime
        self.upstreams = {u.name: u for u in upstreams}
        self.pins = pins
        self.quarantine = quarantine
        self.prefix = len(self.upstreams) > 1 if prefix is None else prefix
        if self.prefix and not all(prefixable(name) for name in self.upstreams):
            raise ConfigError(PREFIX_RULE)
        self.start_timeout = start_timeout
        self.routes: dict[str, Route] = {}
        self.known: set[tuple[str, str]] = set()
        self.status: dict[tuple[str, str], str] = {}
        self._reasons: dict[tuple[str, str], str] = {}
        self._resources: dict[str, str] = {}  # uri -> server
        self._prompts: dict[str, tuple[str, str]] = {}  # exposed name -> (server, prompt)
        self._clients: dict[Any, Any] = {}  # connection -> a session, told about list changes
        self._refresh_lock = asyncio.Lock()
        runtime.add_gate(ProxyGate(self))
        for upstream in upstreams:
            upstream._on_notification = self._upstream_notification

    # -- lifecycle ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Proxy]:
        await self.runtime.open()
        try:
            await asyncio.gather(*(u.start(self.start_timeout) for u in self.upstreams.values()))
            for upstream in self.upstreams.values():
                if upstream.error:
                    log.warning("%s", upstream.error)
            await self.refresh()
            yield self
        finally:
            await asyncio.gather(*(u.stop() for u in self.upstreams.values()))
            await self.runtime.close()

    def server(self) -> Server[Any]:
        return Server(
            "aegis-mcp-proxy",
            version="0.1.0",
            instructions="Tool calls pass through Aegis: policy, approval and audit.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_read_resource=self._read_resource,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
        )

    def initialization_options(self, server: Server[Any]) -> Any:
        changes = NotificationOptions(
            tools_changed=True, resources_changed=True, prompts_changed=True
        )
        return server.create_initialization_options(notification_options=changes)

    # -- the tool table ----------------------------------------------------------------------

    def exposed(self, server: str, name: str) -> str:
        return f"{server}{SEPARATOR}{name}" if self.prefix else name

    def quarantine_reason(self, server: str, tool: str) -> str:
        why = self._reasons.get((server, tool), "changed since it was pinned")
        return (
            f"tool {tool!r} on server {server!r} is quarantined ({why}); a human must run "
            f"'aegis mcp pins accept {server} {tool}' before it can be used"
        )

    async def refresh(self, only: str | None = None) -> None:
        """List the upstreams' tools again and compare them with the pins."""
        async with self._refresh_lock:
            for upstream in self.upstreams.values():
                if only is not None and upstream.name != only:
                    continue
                await self._refresh_one(upstream)

    async def _refresh_one(self, upstream: Upstream) -> None:
        name = upstream.name
        try:
            tools = await upstream.list_tools()
        except Exception as exc:
            log.warning("upstream %r: tools/list failed: %s", name, exc)
            tools = []
        status: dict[str, str] = {t.name: TRUSTED for t in tools}
        events: list[PinEvent] = []
        if self.pins is not None and tools:
            shapes = [tool_shape(t) for t in tools]
            try:
                status, events = await self._reconcile(name, shapes)
            except Exception as exc:  # unchecked (or unrecorded) is not trusted: hold back
                log.warning("upstream %r: tool pins could not be checked: %s", name, exc)
                status, events = {}, []  # a tool with no status is quarantined (below)
                for tool in tools:
                    self._reasons[(name, tool.name)] = f"its pin could not be checked ({exc})"
        for key in [k for k in self.known if k[0] == name]:
            self.known.discard(key)
            self.status.pop(key, None)
        for exposed, route in list(self.routes.items()):
            if route.server == name:
                del self.routes[exposed]
        for tool in tools:
            key = (name, tool.name)
            self.known.add(key)
            self.status[key] = status.get(tool.name, QUARANTINED)
            self.routes[self.exposed(name, tool.name)] = Route(name, tool.name, tool)
        for event in events:
            if event.kind == "quarantined":
                self._reasons[(event.server, event.tool)] = event.reason

    async def _reconcile(
        self, name: str, shapes: list[ToolShape]
    ) -> tuple[dict[str, str], list[PinEvent]]:
        """The pins checked and changed, each change recorded *before* it is made: a record
        that cannot be written leaves the pins as they were (and raises)."""
        assert self.pins is not None
        _, planned = await asyncio.to_thread(self.pins.reconcile, name, shapes, apply=False)
        for event in planned:
            await self._audit_pin_event(event)
        status, events = await asyncio.to_thread(self.pins.reconcile, name, shapes)
        for event in events:
            if event not in planned:  # another process changed the pins in between
                await self._audit_pin_event(event)
        return status, events

    async def _audit_pin_event(self, event: PinEvent) -> None:
        action = Action(
            type=f"mcp_pin_{event.kind}",
            target=event.server,
            params={
                "tool": event.tool,
                "old_digest": event.old_digest,
                "new_digest": event.new_digest,
            },
            description=f"tool pin {event.kind}: {event.tool} ({event.reason})",
        )
        stopped = event.kind == "quarantined"
        await self._record(action, "mcp-tool-pinning", event.reason, stopped=stopped)

    async def record_refusal(self, name: str, reason: str) -> None:
        """A call refused before the runtime could be asked (malformed): audited as blocked."""
        try:
            action = Action(name, "(unknown)", {}, metadata={"mcp": "tools/call"})
        except ValueError:  # not even a usable name (ActionError is a ValueError)
            action = Action("tools/call", "(unknown)", {}, metadata={"mcp": "tools/call"})
        await self._record(action, "mcp-proxy:malformed", reason, stopped=True)

    async def _record(self, action: Action, rule: str, reason: str, *, stopped: bool) -> None:
        action = attrs.evolve(
            action, session_id=self.runtime.session_id, agent_id=self.runtime.agent_id
        )
        decision = PolicyDecision(
            action,
            RiskLevel.HIGH if stopped else RiskLevel.LOW,
            Approval.BLOCK if stopped else Approval.AUTO,
            rule,
            reason=reason,
        )
        status = ResultStatus.BLOCKED if stopped else ResultStatus.SUCCESS
        await self.runtime.audit.record(Result(action, status, decision=decision, reason=reason))

    def _listed(self, route: Route) -> bool:
        key = (route.server, route.tool)
        if self.status.get(key) == QUARANTINED and self.quarantine == "hide":
            return False
        try:
            probe = tool_action(route.tool, route.server, {})
        except ValueError:  # a name no call could use (ActionError): not listed, never callable
            return False
        decision = self.runtime.evaluate(probe)
        # Blocked outright: blocked even though no condition was left unknown by empty params.
        return decision.is_allowed or bool(decision.unknown_conditions)

    # -- handlers ----------------------------------------------------------------------------

    def _remember(self, ctx: Any) -> None:
        # The SDK builds a session object per request; keep one per connection, or every
        # request would add one and each list change would be sent to the client that often.
        session = getattr(ctx, "session", None)
        if session is not None:
            self._clients[getattr(session, "_connection", session)] = session

    async def _recheck_quarantine(self, keys: list[tuple[str, str]]) -> None:
        """A human may have accepted a tool from another process (``aegis mcp pins accept``)."""
        if self.pins is None or not keys:
            return
        for server, tool in keys:
            pin = await asyncio.to_thread(self.pins.get, server, tool)
            route = self.routes.get(self.exposed(server, tool))
            if pin is None or route is None or pin.status != TRUSTED:
                continue
            if (route.server, route.tool) != (server, tool):  # a name two tools share
                continue
            if pin.digest == tool_shape(route.definition).digest:
                self.status[(server, tool)] = TRUSTED

    def _quarantined(self) -> list[tuple[str, str]]:
        return [key for key, state in self.status.items() if state == QUARANTINED]

    async def _list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        self._remember(ctx)
        await self._recheck_quarantine(self._quarantined())
        tools = [
            route.definition.model_copy(update={"name": name})
            for name, route in sorted(self.routes.items())
            if self._listed(route)
        ]
        return types.ListToolsResult(tools=tools)

    async def _call_tool(
        self, ctx: Any, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        self._remember(ctx)
        return await self.call(params.name, params.arguments, progress_forwarder(ctx))

    async def call(
        self, name: str, arguments: Mapping[str, Any] | None, progress: ProgressCallback | None
    ) -> types.CallToolResult:
        """One ``tools/call`` as the client named it, through the runtime (both transports)."""
        route = self.routes.get(name)
        if route is not None:
            server, tool = route.server, route.tool
        elif not self.prefix and len(self.upstreams) == 1:
            server, tool = next(iter(self.upstreams)), name
        else:
            server, tool = "(unknown)", name
        if self.status.get((server, tool)) == QUARANTINED:
            await self._recheck_quarantine([(server, tool)])
        try:
            action = tool_action(tool, server, arguments or {})
        except ValueError as exc:  # ActionError: a look-alike name, params nested too deep...
            reason = f"not run: the call is not a usable action ({exc})"
            await self.record_refusal(name, reason)
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=f"Refused by Aegis: {reason}")],
                is_error=True,
            )
        token = progress_callback.set(progress)
        try:
            result = await self.runtime.run_one(action)
        finally:
            progress_callback.reset(token)
        return to_call_result(result)

    # -- notifications from upstreams --------------------------------------------------------

    async def _upstream_notification(self, upstream: Upstream, message: Any) -> None:
        root = getattr(message, "root", message)
        if isinstance(root, types.ToolListChangedNotification):
            # Not inline: this runs in the upstream session's reader, which the re-list needs.
            asyncio.get_running_loop().create_task(self._tools_changed(upstream.name))
        elif isinstance(root, types.ResourceListChangedNotification):
            await self._tell_clients("send_resource_list_changed")
        elif isinstance(root, types.PromptListChangedNotification):
            await self._tell_clients("send_prompt_list_changed")

    async def _tools_changed(self, server: str) -> None:
        try:
            await self.refresh(only=server)
            await self._tell_clients("send_tool_list_changed")
        except Exception:
            log.exception("could not refresh the tools of %r", server)

    async def _tell_clients(self, method: str) -> None:
        for key, session in list(self._clients.items()):
            try:
                await getattr(session, method)()
            except Exception:
                del self._clients[key]


__all__ = ["Proxy", "ProxyGate", "Route", "UpstreamDown", "explain", "to_call_result"]

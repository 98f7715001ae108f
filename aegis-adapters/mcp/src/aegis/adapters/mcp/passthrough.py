"""Resources and prompts, passed through to the upstreams and governed as actions of their
own kind: ``resources/read`` (params ``{"uri"}``) and ``prompts/get`` (params ``{"name",
"arguments"}``).

Apart from ``proxy`` because none of it touches the tool table, pinning or quarantine: it
lists what the live upstreams offer, remembers which upstream offered what, and sends a read
or a get through ``runtime.run_one`` like any other action. ``Passthrough`` is a mixin of
``Proxy``: the state it reads is the proxy's own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import mcp_types as types
from aegis.adapters.mcp.replies import refusal
from aegis.adapters.mcp.upstream import Upstream

from aegis.core.action import Action

log = logging.getLogger("aegis.mcp.proxy")


class Passthrough:
    """The ``resources/*`` and ``prompts/*`` handlers of ``Proxy``."""

    # The proxy's state this mixin works on (set in ``Proxy.__init__``).
    runtime: Any
    upstreams: dict[str, Upstream]
    prefix: bool
    _resources: dict[str, str]
    _prompts: dict[str, tuple[str, str]]

    if TYPE_CHECKING:

        def exposed(self, server: str, name: str) -> str: ...

        def _remember(self, ctx: Any) -> None: ...

    async def _list_resources(self, ctx: Any, params: Any) -> types.ListResourcesResult:
        self._remember(ctx)
        found: list[types.Resource] = []
        for upstream in self._with("resources"):
            try:
                resources = await upstream.list_resources()
            except Exception as exc:
                log.warning("upstream %r: resources/list failed: %s", upstream.name, exc)
                continue
            for resource in resources:
                self._resources[str(resource.uri)] = upstream.name
                found.append(resource)
        return types.ListResourcesResult(resources=found)

    async def _read_resource(
        self, ctx: Any, params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        server = self._resources.get(uri)
        if server is None and len(self.upstreams) == 1:
            server = next(iter(self.upstreams))
        action = Action(
            "resources/read",
            server or "(unknown)",
            {"uri": uri},
            metadata={"mcp": "resources/read"},
        )
        result = await self.runtime.run_one(action)
        if result.ok and isinstance(result.data, types.ReadResourceResult):
            return result.data
        raise refusal(result)

    async def _list_prompts(self, ctx: Any, params: Any) -> types.ListPromptsResult:
        self._remember(ctx)
        found: list[types.Prompt] = []
        for upstream in self._with("prompts"):
            try:
                prompts = await upstream.list_prompts()
            except Exception as exc:
                log.warning("upstream %r: prompts/list failed: %s", upstream.name, exc)
                continue
            for prompt in prompts:
                name = self.exposed(upstream.name, prompt.name)
                self._prompts[name] = (upstream.name, prompt.name)
                found.append(prompt.model_copy(update={"name": name}))
        return types.ListPromptsResult(prompts=found)

    async def _get_prompt(
        self, ctx: Any, params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        server, name = self._prompts.get(params.name, ("(unknown)", params.name))
        if server == "(unknown)" and not self.prefix and len(self.upstreams) == 1:
            server = next(iter(self.upstreams))
        action = Action(
            "prompts/get",
            server,
            {"name": name, "arguments": dict(params.arguments or {})},
            metadata={"mcp": "prompts/get"},
        )
        result = await self.runtime.run_one(action)
        if result.ok and isinstance(result.data, types.GetPromptResult):
            return result.data
        raise refusal(result)

    def _with(self, capability: str) -> list[Upstream]:
        return [
            u
            for u in self.upstreams.values()
            if u.alive and getattr(u.capabilities, capability, None) is not None
        ]

"""One hook call from raw stdin to (exit code, stdout, stderr), for any agent, in any process.

The in-process command (``aegis hook claude-code``), the ``aegis-hook`` client's fallback and
the hook daemon all go through ``Hooks.handle``, so they answer alike. A ``Hooks`` holds what
is worth keeping between calls (the policy, the audit store, one runtime per agent); the daemon
keeps one open, a one-shot process builds one and closes it.

Every failure answers the agent's "no": exit code 2 with the reason on stderr for Claude Code
and Codex (their documented block path), ``{"permission": "deny"}`` for Cursor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

BLOCK_EXIT = 2
AGENTS = ("claude-code", "cursor", "codex")


@attrs.frozen
class HookOptions:
    """What a hook is configured with; the daemon serves only callers configured the same."""

    policy: str
    db: str
    map: str | None = None
    wait: tuple[str, ...] = ()
    approval_handler: str | None = None
    approval_timeout: float = 50.0
    report_timeout: float = 3600.0

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "db": self.db,
            "map": self.map,
            "wait": sorted(self.wait),
            "approval_handler": self.approval_handler,
            "approval_timeout": float(self.approval_timeout),
            "report_timeout": float(self.report_timeout),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HookOptions:
        return cls(
            policy=str(data["policy"]),
            db=str(data["db"]),
            map=data.get("map"),
            wait=tuple(data.get("wait") or ()),
            approval_handler=data.get("approval_handler"),
            approval_timeout=float(data.get("approval_timeout", 50.0)),
            report_timeout=float(data.get("report_timeout", 3600.0)),
        )


@attrs.frozen
class Reply:
    code: int = 0
    stdout: str = ""
    stderr: str = ""


def file_digest(path: str) -> str:
    import aegis_hook

    return aegis_hook.file_digest(path)  # the client's own digest: it is compared with it


def refusal(agent: str, message: str) -> Reply:
    """The agent's "no" when the call could not even be decided."""
    from aegis.adapters.hooks.mapping import cursor_answer

    if agent == "cursor":
        return Reply(0, cursor_answer("deny", message) + "\n")
    return Reply(BLOCK_EXIT, "", message + "\n")


class Hooks:
    """The policy, the audit store and one runtime per agent, opened once."""

    def __init__(self, options: HookOptions, *, reap_each_call: bool = True) -> None:
        from aegis.core.policy import Policy
        from aegis.runtime.audit import AuditStore

        self.options = options
        self.digest = file_digest(options.policy)
        self.policy = Policy.from_yaml(options.policy)
        self.overrides = _overrides(options.map)
        self.audit = AuditStore(options.db)
        self._runtimes: dict[str, Any] = {}
        #: A one-shot process closes overdue records on its way; the daemon does it on a timer.
        self.reap_each_call = reap_each_call

    def reload_if(self, digest: str) -> bool:
        """Load the policy file again if it now has ``digest``; True when it does."""
        from aegis.core.policy import Policy

        if digest == self.digest:
            return True
        if file_digest(self.options.policy) != digest:
            return False
        self.policy = Policy.from_yaml(self.options.policy)
        self.digest = digest
        for runtime in self._runtimes.values():
            runtime.update_policy(self.policy)
        return True

    def runtime(self, agent: str) -> Any:
        runtime = self._runtimes.get(agent)
        if runtime is None:
            runtime = _runtime(self.options, self.policy, self.audit, agent)
            self._runtimes[agent] = runtime
        return runtime

    async def close(self) -> None:
        for runtime in self._runtimes.values():
            await runtime.close()
        await self.audit.close()

    async def handle(self, agent: str, raw: str) -> Reply:
        try:
            return await self._handle(agent, raw)
        except Exception as exc:  # never "allow" on a path that broke
            return refusal(
                agent,
                f"aegis hook: internal error, the tool call is denied: {type(exc).__name__}: {exc}",
            )

    async def _handle(self, agent: str, raw: str) -> Reply:
        from aegis.adapters.hooks import mapping
        from aegis.adapters.hooks.run import post_tool_use, pre_tool_use, reap

        try:
            payload = mapping.parse_payload(raw)
            if agent == "claude-code":
                call = mapping.claude_call(payload, self.overrides)
            elif agent == "codex":
                call = mapping.codex_call(payload, self.overrides)
            elif agent == "cursor":
                call = mapping.cursor_call(payload)
            else:
                raise mapping.HookInputError(f"unknown agent {agent!r}")
        except mapping.HookInputError as exc:
            return refusal(agent, f"aegis hook: the tool call is denied: {exc}")
        runtime = self.runtime(agent)
        await runtime.open()
        if self.reap_each_call:
            await reap(runtime)
        if call.event in ("PreToolUse",) or call.event.startswith("before"):
            answer = await pre_tool_use(
                runtime,
                call,
                wait_rules=set(self.options.wait),
                can_ask=agent != "codex",
                report_timeout=self.options.report_timeout,
            )
            return _answer(agent, answer)
        if call.event in ("PostToolUse", "PostToolUseFailure") or call.event.startswith("after"):
            await post_tool_use(runtime, call)
            return Reply(0, "{}\n" if agent == "cursor" else "")
        return refusal(agent, f"aegis hook: unsupported hook event {call.event!r}; denied")


def _answer(agent: str, answer: Any) -> Reply:
    from aegis.adapters.hooks.mapping import claude_answer, cursor_answer

    if answer.updated_input is not None and agent != "claude-code":
        # Only Claude Code reads an edited input back; another agent would run the call as
        # submitted, not the one recorded (``mapping.edited_action`` denies these already).
        return refusal(agent, f"aegis hook: {agent} cannot run an edited call; denied")
    if agent == "cursor":
        return Reply(0, cursor_answer(answer.decision, answer.reason) + "\n")
    if agent == "codex":
        # Codex: exit 2 with the reason on stderr is its block path in every version; an allow
        # says nothing (Codex has fail-open parsing for answers it does not support).
        if answer.decision == "allow":
            return Reply(0, "")
        return Reply(BLOCK_EXIT, "", answer.reason + "\n")
    return Reply(0, claude_answer(answer.decision, answer.reason, answer.updated_input) + "\n")


def _runtime(options: HookOptions, policy: Any, audit: Any, agent: str) -> Any:
    from aegis.adapters.base import BaseExecutor
    from aegis.core.approval import ApprovalDecision
    from aegis.runtime.approval.handlers import CallbackApprovalHandler
    from aegis.runtime.engine import Runtime

    class _NotHere(BaseExecutor):
        """The coding agent runs the tool; a hook never executes anything itself."""

        async def execute(self, action: Any) -> Any:
            raise RuntimeError("a hook does not execute tools")

    # No handler named: a waited-on approval is denied with a reason, never read from stdin
    # (stdin is the hook payload).
    handler: Any = options.approval_handler or CallbackApprovalHandler(
        lambda _a, _d: ApprovalDecision.deny(
            reason="no approval channel is configured for this hook (--approval-handler NAME)"
        )
    )
    return Runtime(
        executor=_NotHere(),
        policy=policy,
        approval_handler=handler,
        audit=audit,
        approval_timeout=options.approval_timeout,
        agent_id=agent,
    )


def _overrides(path: str | None) -> dict[str, tuple[str, str]]:
    if path is None:
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    out: dict[str, tuple[str, str]] = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of ToolName -> {{type, target}}")
    for tool, spec in data.items():
        if not (
            isinstance(spec, dict)
            and isinstance(spec.get("type"), str)
            and isinstance(spec.get("target"), str)
        ):
            raise ValueError(f'{path}: {tool}: expected {{"type": ..., "target": FIELD}}')
        out[tool] = (spec["type"], spec["target"])
    return out


async def run_once(agent: str, options: HookOptions, raw: str) -> Reply:
    """The whole call in this process: build, handle, close."""
    try:
        hooks = Hooks(options)
    except Exception as exc:  # a broken policy, map or store: denied, with the reason
        return refusal(agent, f"aegis hook: the tool call is denied: {type(exc).__name__}: {exc}")
    try:
        return await hooks.handle(agent, raw)
    finally:
        await hooks.close()

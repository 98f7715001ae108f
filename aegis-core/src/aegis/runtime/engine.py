"""The ``Runtime``: what a user builds, opens, points at a policy and calls.

It holds the parts (policy, shadow, approval channels, executor, audit store, hooks, retry,
identity), opens and closes them, and offers the entry points: ``run_one`` and ``authorize``
for one action, ``execute`` and ``plan`` for several. What happens to each action is the
pipeline (pipeline.py); turning constructor arguments into parts is wiring.py; the order of a
plan's steps is plans.py. Two steps stay here because other modules ask the runtime for them:
``_decide`` (the policy's answer, checked; the pipeline and limit_state.py decide through it)
and ``bind`` (the runtime's identity stamped on an action, public for adapters that decide
without ``run_one``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from aegis.adapters.base import BaseExecutor
from aegis.core.action import Action, with_identity
from aegis.core.approvers import check_timeout
from aegis.core.decision import PolicyDecision
from aegis.core.plan import ExecutionPlan, PlanStep
from aegis.core.result import Result, ResultStatus
from aegis.core.retry import NO_RETRY, RetryPolicy
from aegis.core.risk import Approval, RiskLevel
from aegis.errors import ExecutorError
from aegis.runtime import limit_state
from aegis.runtime.approval.channels import ApprovalChannel, HandlerChannel
from aegis.runtime.approval.handlers import (
    DEFAULT_APPROVAL_TIMEOUT,
    DEFAULT_EXECUTION_TIMEOUT,
    ApprovalHandler,
)
from aegis.runtime.gates import PolicyGate, apply_gates
from aegis.runtime.hooks import RuntimeHooks

# What one action goes through lives in ``pipeline``; Authorization is imported from here too.
from aegis.runtime.pipeline import Authorization as Authorization
from aegis.runtime.pipeline import run_action
from aegis.runtime.plans import run_plan
from aegis.runtime.shadow import DEFAULT_SHADOW_TIMEOUT, ShadowPolicy
from aegis.runtime.stops import blocked_decision, record_stop
from aegis.runtime.wiring import (
    Approver,
    built_by_name,
    channels_of,
    close_channel,
    is_store,
    make_store,
    resolve,
)

if TYPE_CHECKING:
    from aegis.core.stateful import LimitState
    from aegis.runtime.audit import AuditStore
    from aegis.runtime.audit.logger import AuditLogger
    from aegis.runtime.audit.writer import SideWrite


log = logging.getLogger("aegis.runtime")


class PolicySource(Protocol):
    """Anything that decides: a Policy, a PolicyHierarchy, a PolicyWatcher."""

    def evaluate(self, action: Action) -> PolicyDecision: ...


class Runtime:
    """Connects a policy, an approval handler, an executor and the audit store.

    ``executor`` and ``approval_handler`` may be given by registered name (``"cli"``,
    ``"auto"``, or one a plugin registered). ``audit`` may be an ``AuditStore`` or a SQLAlchemy
    URL or file path; by default ``$AEGIS_AUDIT_URL``, else ``sqlite:///aegis_audit.db`` in the
    working directory. The runtime closes only a store it created. ``shadow``: a candidate
    policy (or its YAML path) whose decision each record also carries; it never decides
    anything (``aegis.runtime.shadow``).
    """

    def __init__(
        self,
        *,
        executor: BaseExecutor | str,
        policy: PolicySource,
        approval_handler: Approver | Sequence[Approver] | None = None,
        audit: AuditStore | str | None = None,
        audit_logger: AuditLogger | None = None,
        hooks: RuntimeHooks | None = None,
        retry: RetryPolicy | None = None,
        session_id: str | None = None,
        agent_id: str | None = None,
        dry_run: bool = False,
        approval_timeout: float | None = DEFAULT_APPROVAL_TIMEOUT,
        execution_timeout: float | None = DEFAULT_EXECUTION_TIMEOUT,
        shadow: object = None,
        shadow_timeout: float = DEFAULT_SHADOW_TIMEOUT,
    ) -> None:
        self.executor: BaseExecutor = resolve(executor, "executors", BaseExecutor)
        self._policy = policy
        self._gates: tuple[PolicyGate, ...] = ()
        self._shadow_timeout = shadow_timeout
        self._shadow = None if shadow is None else ShadowPolicy(shadow, timeout=shadow_timeout)
        self.channels: tuple[ApprovalChannel, ...] = channels_of(approval_handler)
        #: Channels the runtime built from a registered name: it closes them (a Socket Mode
        #: connection, a gateway, a poller); channels you passed in are yours to close.
        self._owned_channels = built_by_name(approval_handler, self.channels)
        first = self.channels[0]
        #: The first channel's handler (the one-handler API of earlier versions).
        self.approval_handler: ApprovalHandler | ApprovalChannel = (
            first.handler if isinstance(first, HandlerChannel) else first
        )
        if audit_logger is not None:  # the original README's AuditLogger: record into its store
            from aegis.runtime.audit.logger import store_for

            audit = store_for(audit, audit_logger)
        self._owns_audit = not is_store(audit)
        self.audit: AuditStore = make_store(audit)
        self.hooks = hooks
        self.retry = retry or NO_RETRY
        # Identity given here wins over what an action claims (an agent cannot borrow another
        # session's limits or history); without one, each action keeps its own session.
        self._session_fixed = session_id is not None
        self.session_id = session_id or uuid.uuid4().hex
        self.agent_id = agent_id
        self.dry_run = dry_run
        self.approval_timeout = check_timeout(approval_timeout, "approval_timeout")
        self.execution_timeout = check_timeout(execution_timeout, "execution_timeout")
        self._open_lock = asyncio.Lock()
        self._opened = False

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Open the audit store and set up the executor (done lazily by ``run_one`` too)."""
        if self._opened:
            return
        async with self._open_lock:
            if self._opened:
                return
            await self.audit.open()
            await self.executor.setup()
            self._opened = True

    async def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        await self._flush_links()
        if self._shadow is not None:
            self._shadow.close()
        try:
            await self.executor.teardown()
        finally:
            for channel in self._owned_channels:
                await close_channel(channel)
            if self._owns_audit:
                await self.audit.close()

    # -- policy -----------------------------------------------------------------------------

    @property
    def policy(self) -> PolicySource:
        return self._policy

    def update_policy(self, policy: PolicySource) -> None:
        """Swap the policy; actions evaluated from now on (and plans executed) use it. Gates
        stay (``add_gate``)."""
        self._policy = policy

    def add_gate(self, gate: PolicyGate) -> None:
        """Check every decision after the policy, whichever policy is in force then; a gate
        can only make a decision stricter (``aegis.runtime.gates``)."""
        self._gates = (*self._gates, gate)

    @property
    def shadow(self) -> ShadowPolicy | None:
        return self._shadow

    def update_shadow(self, shadow: object | None) -> None:
        """Swap the shadow policy (None: none); records from now on carry the new one's verdict."""
        old, timeout = self._shadow, self._shadow_timeout
        self._shadow = None if shadow is None else ShadowPolicy(shadow, timeout=timeout)
        if old is not None:
            old.close()

    def evaluate(self, action: Action) -> PolicyDecision:
        """The current policy's decision for ``action``; a policy that raises blocks."""
        return self._decide(self.bind(action))

    def strictest(self, actions: Sequence[Action]) -> tuple[Action, PolicyDecision]:
        """Of several actions one call may be named as (a hook's names for one tool), the one
        (bound, as ``evaluate`` binds) whose decision is strictest, with that decision; the
        first of equals. An adapter that cannot tell which name a policy uses takes this, so
        no rule for any of the names is escaped."""
        best: tuple[Action, PolicyDecision] | None = None
        for candidate in actions:
            bound = self.bind(candidate)
            decision = self._decide(bound)
            if best is None or decision.approval.strictness > best[1].approval.strictness:
                best = (bound, decision)
        if best is None:
            raise ValueError("strictest() needs at least one action")
        return best

    def _decide(self, action: Action, state: LimitState | None = None) -> PolicyDecision:
        """``state``: the write transaction's history (limit_state); without it, a stateful
        policy reads a snapshot, and the final decision is made when the record is written."""
        policy = self._policy
        try:
            if state is None and getattr(policy, "stateful", False):
                decision = limit_state.snapshot_evaluate(policy, action, self.audit)
            elif state is None:
                decision = policy.evaluate(action)
            else:
                decision = policy.evaluate(action, state=state)  # type: ignore[call-arg]
        except Exception as exc:
            return blocked_decision(
                action, f"policy evaluation failed: {type(exc).__name__}: {exc}"
            )
        if not isinstance(decision, PolicyDecision):
            return blocked_decision(
                action, f"policy returned {type(decision).__name__}, not a PolicyDecision"
            )
        # A custom policy source is not trusted to build its answer right: an approval that is
        # not an Approval member (say, the string "block") would slip past every `is` check.
        if type(decision.approval) is not Approval or type(decision.risk_level) is not RiskLevel:
            return blocked_decision(
                action,
                f"policy returned a malformed decision (approval={decision.approval!r}, "
                f"risk_level={decision.risk_level!r})",
            )
        if decision.action is not action and decision.action != action:
            return blocked_decision(action, "policy returned a decision about another action")
        return apply_gates(self._gates, action, decision) if self._gates else decision

    def plan(self, actions: Iterable[Action]) -> ExecutionPlan:
        """Evaluate a batch without running anything (advice, not permission)."""
        steps = tuple(PlanStep(i, a, self.evaluate(a)) for i, a in enumerate(actions))
        fingerprint = getattr(self._policy, "fingerprint", None)
        return ExecutionPlan(steps, fingerprint if isinstance(fingerprint, str) else None)

    # -- running ----------------------------------------------------------------------------

    async def run_one(
        self,
        action: Action,
        *,
        dry_run: bool | None = None,
        executor: BaseExecutor | None = None,
    ) -> Result:
        """Take one action through the whole pipeline and return its audited result.

        ``executor`` runs this one action instead of the runtime's own. It is for adapters
        that carry the function to call with the action (a governed CrewAI or LangChain tool,
        a framework's tool-call hook): the tool then runs *inside* the pipeline, after the
        decision and approval and with the action the runtime hands over, so its outcome is
        what the audit records. Everything else (policy, approval, hooks, retry, audit) is the
        same. The runtime does not set up or tear down such an executor.
        """
        if executor is not None and not isinstance(executor, BaseExecutor):
            raise ExecutorError(f"expected a BaseExecutor, got {type(executor).__name__}")
        return await self._run_result(
            action, dry_run=self.dry_run if dry_run is None else dry_run, executor=executor
        )

    async def authorize(
        self,
        action: Action,
        *,
        detached: bool = False,
        side_write: SideWrite | None = None,
        remap_edit: Callable[[Action], Action] | None = None,
    ) -> Authorization | Result:
        """Decide, approve and begin the record of an action that *someone else* will run.

        For callers that act themselves (agents over HTTP, coding-agent hooks): everything up
        to the executor happens as in ``run_one`` (hooks, approval, re-evaluation, an
        approver's edit closing the submitted action's record, the request linked to the
        record of what runs); then, instead of executing, the record is written as pending and
        an ``Authorization`` with its id is returned. The caller acts and reports with
        ``AuditStore.finish(audit_id, result)`` (from any process on the same database).
        Anything not allowed comes back as its final, audited ``Result``, as from ``run_one``.
        ``detached``: this process may exit before the report (a hook), so the pending row
        names no owner process. ``side_write``: as for ``AuditStore.begin``, written with the
        pending row (a hook's pairing of the call with its record). ``remap_edit``: for callers
        whose action is derived from its params (a hook's Bash call has the command as its
        target), the action an approver's edited params amount to; see ``seek_approval``.
        """
        return await run_action(
            self,
            action,
            dry_run=False,
            authorize=True,
            detached=detached,
            side_write=side_write,
            remap_edit=remap_edit,
        )

    async def execute(
        self,
        plan: ExecutionPlan | Iterable[Action],
        *,
        stop_on_failure: bool = True,
        rollback: bool = True,
        dry_run: bool | None = None,
    ) -> list[Result]:
        """Run a plan's actions in order, each re-evaluated against the current policy.

        When a step fails, is denied or is blocked, later steps are recorded as skipped (as in
        the original API: a plan is a sequence, and later steps may rely on earlier ones).
        When a step *failed* (the executor ran and failed), with ``rollback`` the executor is
        asked for compensating actions for it and the earlier successful steps (newest
        first); each goes through the full pipeline and is linked to the step it undoes. A
        denied or blocked step never ran, so nothing is compensated. ``dry_run=True``
        decides and records every step without running any.
        """
        steps: Sequence[PlanStep | Action] = (
            plan.steps if isinstance(plan, ExecutionPlan) else list(plan)
        )
        return await run_plan(
            steps,
            run=functools.partial(
                self._run_result, dry_run=self.dry_run if dry_run is None else dry_run
            ),
            skip=self._record_skip,
            evaluate=self.evaluate,
            executor=self.executor,
            stop_on_failure=stop_on_failure,
            rollback=rollback,
        )

    async def _run_result(
        self,
        action: Action,
        *,
        dry_run: bool,
        parent_id: int | None = None,
        note: str | None = None,
        executor: BaseExecutor | None = None,
    ) -> Result:
        out = await run_action(
            self, action, dry_run=dry_run, parent_id=parent_id, note=note, executor=executor
        )
        assert isinstance(out, Result)
        return out

    async def _record_skip(self, action: Action, reason: str) -> Result:
        bound = self.bind(action)
        shadow = None if self._shadow is None else await self._shadow.verdict(bound)
        decision = await limit_state.decide(self, bound)
        return await record_stop(self, bound, decision, ResultStatus.SKIPPED, reason, shadow=shadow)

    async def _flush_links(self) -> None:
        book = self.audit.approvals
        if not book.links_pending:
            return
        try:
            await book.run(book.flush_links)
        except Exception:  # the actions ran and are audited; the links are a convenience
            log.exception("could not link approval requests to their records")

    def bind(self, action: Action) -> Action:
        """The action under this runtime's identity: its ``agent_id`` (if set) and fixed
        ``session_id`` win over what the action claims, so an agent cannot claim another's
        rules, limits or history. ``evaluate`` and ``run_one`` bind every action; an adapter
        recording what it decided elsewhere binds the same way."""
        agent = self.agent_id if self.agent_id is not None else action.agent_id
        session = self.session_id if self._session_fixed else action.session_id or self.session_id
        return with_identity(action, agent, session)

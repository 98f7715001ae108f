"""The pipeline: EVALUATE -> APPROVE -> EXECUTE -> VERIFY -> AUDIT, failing closed at each step.

Invariants this module exists to keep:

* An action runs only if the policy in force *now* allows it, a handler explicitly approved it
  when approval is required, every pre-execution hook succeeded, and the audit store has
  written its record. Any error, timeout or cancellation before that point means "not executed".
* Every action ends with exactly one audit record (a rollback action gets its own, linked to the
  step it compensates). Outcomes that never reach the executor are recorded in one write;
  executed ones are written before execution and completed after. If the store cannot write,
  ``AuditError`` is raised and nothing runs; the record is committed before ``run_one`` returns.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from aegis.adapters.base import BaseExecutor
from aegis.core.action import Action, with_identity
from aegis.core.approval import ApprovalDecision
from aegis.core.approvers import check_timeout
from aegis.core.decision import PolicyDecision
from aegis.core.plan import ExecutionPlan, PlanStep
from aegis.core.result import Result, ResultStatus
from aegis.core.retry import NO_RETRY, RetryPolicy
from aegis.core.risk import Approval, RiskLevel
from aegis.errors import AuditError, ExecutorError
from aegis.runtime import limit_state
from aegis.runtime.approval.alongside import delivered, unwritten
from aegis.runtime.approval.channels import ApprovalChannel, HandlerChannel
from aegis.runtime.approval.flow import Sought, handed_over, seek_approval
from aegis.runtime.approval.handlers import (
    DEFAULT_APPROVAL_TIMEOUT,
    DEFAULT_EXECUTION_TIMEOUT,
    ApprovalHandler,
)
from aegis.runtime.execution import join_reasons
from aegis.runtime.hooks import RuntimeHooks, fire, observed
from aegis.runtime.plans import run_plan
from aegis.runtime.recorded import execute_recorded, shielded
from aegis.runtime.shadow import DEFAULT_SHADOW_TIMEOUT, ShadowPolicy, ShadowVerdict, consult
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
        """Swap the policy; actions evaluated from now on (and plans executed) use it."""
        self._policy = policy

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
        return self._decide(self._bind(action))

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
            return _blocked_decision(
                action, f"policy evaluation failed: {type(exc).__name__}: {exc}"
            )
        if not isinstance(decision, PolicyDecision):
            return _blocked_decision(
                action, f"policy returned {type(decision).__name__}, not a PolicyDecision"
            )
        # A custom policy source is not trusted to build its answer right: an approval that is
        # not an Approval member (say, the string "block") would slip past every `is` check.
        if type(decision.approval) is not Approval or type(decision.risk_level) is not RiskLevel:
            return _blocked_decision(
                action,
                f"policy returned a malformed decision (approval={decision.approval!r}, "
                f"risk_level={decision.risk_level!r})",
            )
        if decision.action is not action and decision.action != action:
            return _blocked_decision(action, "policy returned a decision about another action")
        return decision

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
        return await self._run(
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
        out = await self._run(
            action, dry_run=dry_run, parent_id=parent_id, note=note, executor=executor
        )
        assert isinstance(out, Result)
        return out

    async def _record_skip(self, action: Action, reason: str) -> Result:
        bound = self._bind(action)
        shadow = None if self._shadow is None else await self._shadow.verdict(bound)
        decision = await limit_state.decide(self, bound)
        return await self._record_stop(bound, decision, ResultStatus.SKIPPED, reason, shadow=shadow)

    async def _run(
        self,
        action: Action,
        *,
        dry_run: bool,
        parent_id: int | None = None,
        note: str | None = None,
        executor: BaseExecutor | None = None,
        authorize: bool = False,
        detached: bool = False,
        side_write: SideWrite | None = None,
        remap_edit: Callable[[Action], Action] | None = None,
    ) -> Result | Authorization:
        if not self._opened:  # no coroutine per action once open
            await self.open()
        action = self._bind(action)
        try:
            decision = (
                await limit_state.decide(self, action)  # a server's snapshot: off the loop
                if limit_state.reads_a_server(self)
                else self._decide(action)
            )
        except BaseException as exc:  # past _decide's Exception guard: Ctrl-C, SystemExit...
            reason = f"policy evaluation was interrupted: {type(exc).__name__}; not run"
            await self._record_stop(
                action,
                _blocked_decision(action, reason),
                ResultStatus.BLOCKED,
                reason,
                parent_id=parent_id,
                note=note,
            )
            raise
        approval: ApprovalDecision | None = None
        shadow: ShadowVerdict | None = None

        def stop(status: ResultStatus, reason: str) -> Awaitable[Result]:
            """Record the action as not run (reads ``approval`` as it is when called)."""
            return self._record_stop(
                action,
                decision,
                status,
                reason,
                approval=approval,
                parent_id=parent_id,
                note=note,
                shadow=shadow,
            )

        candidate = self._shadow  # inline when it can: no coroutine on the hot path
        if candidate is not None:
            shadow = candidate.inline_verdict(action) or await consult(candidate, action, stop)

        blocked, denied = ResultStatus.BLOCKED, ResultStatus.DENIED
        failure = (
            await self._gate("on_decision", blocked, stop, decision=decision)
            if observed(self.hooks, "on_decision")
            else None
        )
        if failure:
            return await stop(blocked, failure)
        if not decision.is_allowed:
            return await stop(
                blocked,
                decision.reason or f"blocked by rule {decision.matched_rule or '(defaults)'}",
            )
        if dry_run:
            return await stop(ResultStatus.SKIPPED, f"dry run: would be {decision.approval.value}")

        sought: Sought | None = None
        if decision.requires_approval:
            try:
                sought = await seek_approval(
                    self, action, decision, self.channels, remap_edit=remap_edit
                )
            except asyncio.CancelledError as exc:
                if not handed_over(exc):  # handed over: its adopter records it
                    await shielded(stop(denied, "cancelled while awaiting approval"))
                raise
            except AuditError as exc:  # the request could not be stored: nobody may be asked
                return await stop(blocked, f"approval request could not be stored: {exc}")
            except BaseException as exc:  # SystemExit, KeyboardInterrupt while asking
                await shielded(
                    stop(
                        denied,
                        f"interrupted by {type(exc).__name__} while "
                        "awaiting approval; the action did not run",
                    )
                )
                raise
            approval = sought.approval
            failure = (
                await self._gate(
                    "on_approval", denied, stop, action=action, decision=decision, approval=approval
                )
                if observed(self.hooks, "on_approval")
                else None
            )
            if failure:
                return await stop(denied, failure)
            if sought.status is not None:
                return await stop(sought.status, sought.reason or "denied")
            if sought.original is not None:  # edited: the original is closed, the edit runs
                parent_id = await self._record_edit(sought, parent_id, note, shadow)
                note = None
                if candidate is not None:
                    shadow = await consult(candidate, sought.action, stop)
            action, decision = sought.action, sought.decision  # the decision it runs under

        failure = (
            await self._gate("before_execute", blocked, stop, action=action, decision=decision)
            if observed(self.hooks, "before_execute")
            else None
        )
        if failure:
            return await stop(blocked, failure)
        result: Result | Authorization
        try:
            if authorize and getattr(self._policy, "stateful", False):
                begun = await limit_state.begin_limited(
                    self,
                    action,
                    decision,
                    approval,
                    parent_id=parent_id,
                    detached=detached,
                    shadow=shadow,
                    side_write=side_write,
                )
                if isinstance(begun, Result):
                    return begun
                result = Authorization(action, begun[1], delivered(approval), begun[0])
            elif authorize:
                audit_id = await self.audit.begin(
                    action,
                    decision,
                    approval,
                    parent_id=parent_id,
                    detached=detached,
                    shadow=shadow,
                    side_write=side_write,
                )
                result = Authorization(action, decision, delivered(approval), audit_id)
            else:
                result = await execute_recorded(
                    self,
                    action,
                    decision,
                    approval,
                    parent_id,
                    note,
                    executor or self.executor,
                    shadow,
                )
        except AuditError as exc:
            if not authorize or unwritten(approval) is None:
                raise
            # The auto answer and its request went with the record: none of them exists now.
            # Record the stop on its own (as execute_recorded does for run_one).
            return await self._record_stop(
                action,
                decision,
                blocked,
                f"approval request could not be stored: {exc}",
                parent_id=parent_id,
                note=note,
                shadow=shadow,
            )
        if sought is not None and sought.request_id and result.audit_id is not None:
            self._link_request(sought.request_id, result.audit_id)
        return result

    async def _record_edit(
        self,
        sought: Sought,
        parent_id: int | None,
        note: str | None,
        shadow: ShadowVerdict | None,
    ) -> int:
        """Close the submitted action's record before its edited version runs, linked to it."""
        original = sought.original
        assert original is not None
        edited_by = sought.approval.approver or "an approver"
        reason = join_reasons(
            note,
            f"edited by {edited_by} before approval (request {sought.request_id});"
            " the edited action runs as the next record",
        )
        stopped = Result(
            original,
            ResultStatus.SKIPPED,
            decision=await limit_state.decide(self, original),
            approval=sought.approval,
            reason=reason,
        )
        return await self.audit.record(stopped, parent_id=parent_id, shadow=shadow)

    def _link_request(self, request_id: str, audit_id: int) -> None:
        """Point the request at the action's record, off the action's path (see defer_link)."""
        try:
            self.audit.approvals.defer_link(request_id, audit_id)
        except Exception:  # the action ran and is audited; the link is a convenience
            log.exception("could not link approval request %s to record %s", request_id, audit_id)

    async def _flush_links(self) -> None:
        book = self.audit.approvals
        if not book.links_pending:
            return
        try:
            await book.run(book.flush_links)
        except Exception:  # the actions ran and are audited; the links are a convenience
            log.exception("could not link approval requests to their records")

    async def _gate(
        self,
        event: str,
        status: ResultStatus,
        stop: Callable[[ResultStatus, str], Awaitable[Result]],
        **kwargs: Any,
    ) -> str | None:
        """Fire a hook that runs before execution; returns its failure, if any.

        Callers check ``observed`` first, so an unobserved event costs no coroutine.

        A task cancelled inside the hook is recorded as stopped with ``status`` before the
        cancellation goes on: the action did not run, and the audit must say so (unless it
        was handed over: the process that took it records it).
        """
        try:
            return await fire(self.hooks, event, **kwargs)
        except asyncio.CancelledError as exc:
            if not handed_over(exc):
                await shielded(
                    stop(status, f"cancelled in the {event} hook; the action did not run")
                )
            raise

    async def _record_stop(
        self,
        action: Action,
        decision: PolicyDecision,
        status: ResultStatus,
        reason: str,
        *,
        approval: ApprovalDecision | None = None,
        parent_id: int | None = None,
        note: str | None = None,
        shadow: ShadowVerdict | None = None,
    ) -> Result:
        await self.open()
        result = Result(
            action, status, decision=decision, approval=approval, reason=join_reasons(note, reason)
        )
        audit_id = await self.audit.record(result, parent_id=parent_id, shadow=shadow)
        return attrs.evolve(result, audit_id=audit_id, approval=delivered(approval))

    def _bind(self, action: Action) -> Action:
        """Stamp the runtime's identity on the action; an agent cannot claim another's rules."""
        agent = self.agent_id if self.agent_id is not None else action.agent_id
        session = self.session_id if self._session_fixed else action.session_id or self.session_id
        return with_identity(action, agent, session)


@attrs.frozen
class Authorization:
    """An action allowed (and approved, if it had to be) whose record is begun, not finished.

    Whoever runs it reports the outcome with ``AuditStore.finish(audit_id, result)``.
    """

    action: Action
    decision: PolicyDecision
    approval: ApprovalDecision | None
    audit_id: int


def _blocked_decision(action: Action, reason: str) -> PolicyDecision:
    return PolicyDecision(action, RiskLevel.CRITICAL, Approval.BLOCK, None, reason=reason)

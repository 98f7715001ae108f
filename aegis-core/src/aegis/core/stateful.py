"""The contract of a stateful condition: the history it reads (``LimitState``) and the check
class that marks a condition as stateful (``StatefulCheck``). The conditions themselves are in
``aegis.core.limits``; the database side in ``aegis.runtime.limit_state``.
"""

from __future__ import annotations

from aegis.core.action import Action
from aegis.core.condition import EvalContext, Tristate

#: One usage row: (limit id, key, time in epoch seconds, amount).
Usage = tuple[str, str, float, float]


class LimitState:
    """History for stateful checks, plus the bookkeeping of one evaluation.

    Subclasses answer the three reads; everything else is shared. ``pending`` collects the
    usage an evaluation would consume; whoever owns the state decides whether it is kept
    (the runtime keeps it only for an action allowed to run, in the same transaction).
    """

    def __init__(self) -> None:
        self.pending: list[Usage] = []
        #: Per evaluation: each check's answer and the usage it would take.
        self.answers: dict[StatefulCheck, tuple[Tristate, Usage | None]] = {}
        self.taken: set[StatefulCheck] = set()
        #: The leaf being asked "what if you held?" (see ``policy_compile.Limited``).
        self.forced: object = None

    # -- reads (subclasses) ----------------------------------------------------------------

    def count(self, limit_id: str, key: str, since: float) -> int:
        """Rows of ``limit_id``/``key`` later than ``since``."""
        raise NotImplementedError

    def total(self, limit_id: str, key: str, since: float) -> float:
        """Sum of the amounts of rows of ``limit_id``/``key`` later than ``since``."""
        raise NotImplementedError

    def first_after(self, limit_id: str, key: str, after: float) -> float | None:
        """The earliest time of a row of ``limit_id``/``key`` later than ``after``."""
        raise NotImplementedError

    # -- one evaluation --------------------------------------------------------------------

    def start(self) -> None:
        """Forget the previous evaluation's answers (pending usage stays until taken)."""
        self.answers.clear()
        self.taken.clear()
        self.forced = None

    def answer(self, check: StatefulCheck, action: Action, ctx: EvalContext) -> Tristate:
        found = self.answers.get(check)
        if found is None:
            found = check.answer(action, ctx.now.timestamp(), self)
            self.answers[check] = found
        return found[0]

    def take(self, check: StatefulCheck) -> None:
        """Keep the usage ``check`` would consume (once per evaluation)."""
        found = self.answers.get(check)
        if found is None or found[1] is None or check in self.taken:
            return
        self.taken.add(check)
        self.pending.append(found[1])


class MemoryLimitState(LimitState):
    """History in a list: for ``aegis test`` cases and for tests. Not shared between processes."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Usage] = []

    def commit(self) -> None:
        """Keep what the last evaluation consumed, as if its action ran."""
        self.rows.extend(self.pending)
        self.pending.clear()

    def _rows(self, limit_id: str, key: str, since: float) -> list[Usage]:
        return [r for r in self.rows if r[0] == limit_id and r[1] == key and r[2] > since]

    def count(self, limit_id: str, key: str, since: float) -> int:
        return len(self._rows(limit_id, key, since))

    def total(self, limit_id: str, key: str, since: float) -> float:
        return float(sum(r[3] for r in self._rows(limit_id, key, since)))

    def first_after(self, limit_id: str, key: str, after: float) -> float | None:
        times = [r[2] for r in self._rows(limit_id, key, after)]
        return min(times) if times else None


class StatefulCheck:
    """A check that reads history. ``answer`` returns (outcome, usage it would consume)."""

    __slots__ = ("limit_id", "window")

    def __init__(self, limit_id: str, window: float) -> None:
        self.limit_id = limit_id
        self.window = window

    def __call__(self, action: Action, ctx: EvalContext) -> Tristate:
        state = ctx.state
        if state is None:
            return None
        return state.answer(self, action, ctx)

    def answer(
        self, action: Action, now: float, state: LimitState
    ) -> tuple[Tristate, Usage | None]:
        raise NotImplementedError

    def observe(self, action: Action, now: float, state: LimitState) -> None:
        """Called for every action evaluated with a state, whichever rule decides it."""

    @property
    def observes(self) -> bool:
        return type(self).observe is not StatefulCheck.observe

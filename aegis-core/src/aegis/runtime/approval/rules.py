"""Whether one answer counts, and what it does to its request: the checks made once, in core.

Channels only carry answers; every one of them goes through ``judge``. Nothing here does I/O,
so each rule is tested directly and the store applies the ruling atomically.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from aegis.core.frozen import freeze_params
from aegis.core.redact import REDACTED
from aegis.errors import ActionError

if TYPE_CHECKING:
    from aegis.core.approvers import ApprovalRequirements
    from aegis.runtime.approval.record import AnswerRecord

VERDICTS = ("approve", "deny")


class Verdict(NamedTuple):
    """A ruling: whether the answer was accepted, the request's new state (None: unchanged)."""

    accepted: bool
    new_state: str | None
    message: str


class Judged(Protocol):
    """What ``judge`` reads of a request: an ``ApprovalRequest``, or a new request judged
    before anything of it is built or stored (``approval.alongside.plan``)."""

    @property
    def state(self) -> str: ...
    @property
    def expires_at(self) -> float: ...
    @property
    def digest(self) -> str: ...
    @property
    def matched_rule(self) -> str | None: ...
    @property
    def requirements(self) -> ApprovalRequirements: ...
    @property
    def escalated(self) -> bool: ...
    @property
    def answers(self) -> tuple[AnswerRecord, ...]: ...
    @property
    def approvers(self) -> tuple[str, ...]: ...


def judge(
    request: Judged,
    identity: str,
    verdict: str,
    reason: str | None,
    edits: Mapping[str, Any] | None,
    digest: str | None,
    now: float,
) -> Verdict:
    """Rule on one answer to ``request`` given at ``now`` by ``identity`` (``channel:id``)."""
    if verdict not in VERDICTS:
        return Verdict(False, None, f"refused: verdict must be approve or deny, not {verdict!r}")
    if digest is not None and digest != request.digest:
        return Verdict(False, None, "refused: the answer is for another action (digest mismatch)")
    if request.state != "pending":
        return Verdict(False, None, f"refused: the request is already {request.state}")
    if now > request.expires_at:
        return Verdict(False, "expired", "refused: late, the request had expired")
    rule = request.matched_rule or "(defaults)"
    if not request.requirements.allows(identity, escalated=request.escalated):
        return Verdict(False, None, f"refused: {identity} may not answer for rule {rule}")
    if identity in {a.responder for a in request.answers if a.accepted}:
        return Verdict(False, None, f"refused: {identity} has already answered")
    because = f": {reason}" if reason else ""
    if verdict == "deny":
        if edits:
            return Verdict(False, None, "refused: a denial cannot carry edits")
        return Verdict(True, "denied", f"denied by {identity}{because}")
    quorum = request.requirements.quorum
    if edits is not None:
        if quorum > 1:
            return Verdict(
                False, None, f"refused: edits need a single approver (rule {rule} needs {quorum})"
            )
        problem = _check_edits(edits)
        if problem:
            return Verdict(False, None, f"refused: {problem}")
    approvers = [*request.approvers, identity]
    if len(approvers) < quorum:
        return Verdict(True, "pending", f"approval {len(approvers)} of {quorum} by {identity}")
    edited = " with edits" if edits else ""
    return Verdict(True, "approved", f"approved{edited} by {', '.join(approvers)}{because}")


def _check_edits(edits: Mapping[str, Any]) -> str | None:
    if not isinstance(edits, Mapping) or not edits:
        return "edits must be a non-empty mapping of param names to values"
    try:
        frozen = freeze_params(edits, "edits")
    except ActionError as exc:
        return str(exc)
    found = _marked(frozen, "edits")
    if found is not None:  # the shown stand-in sent back would replace the real secret
        return f"{found} is {REDACTED}, what the approver was shown instead of a secret"
    return None


def _marked(value: Any, path: str) -> str | None:
    """The path of the first ``REDACTED`` marker in frozen ``value``, or None."""
    if value == REDACTED:
        return path
    if isinstance(value, Mapping):
        inner = [(f"{path}.{k}", v) for k, v in value.items()]
    elif isinstance(value, tuple):
        inner = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        return None
    for where, item in inner:
        found = _marked(item, where)
        if found is not None:
            return found
    return None


def diff_edits(shown: Mapping[str, Any], submitted: Any) -> dict[str, Any]:
    """The edits an approver made, from the params they were shown and the ones they sent back.

    Only what changed, by (dotted) path, so a value they left as shown (a ``[REDACTED]``
    secret beside the amount they changed, at any depth) keeps its real value: sending the
    whole changed mapping back would put the marker in place of the secret. A channel with a
    form of params uses this, and ``apply_edits`` applies the result. Params cannot be
    removed; a submission that is not a JSON object, or drops one, raises ``ValueError``.
    """
    return dict(_changed(shown, submitted, ""))


def _changed(shown: Mapping[str, Any], submitted: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if not isinstance(submitted, Mapping):
        raise ValueError("params must be a JSON object")
    if missing := sorted(set(shown) - set(submitted)):
        raise ValueError(f"params cannot be removed ({', '.join(prefix + m for m in missing)})")
    for key, value in submitted.items():
        old = shown.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping) and _addressable(old, value):
            yield from _changed(old, value, f"{prefix}{key}.")
        elif key not in shown or old != value:
            yield prefix + key, value


def _addressable(*mappings: Mapping[str, Any]) -> bool:
    """A dotted path can name each key inside (none has a dot of its own)."""
    return all("." not in str(k) for m in mappings for k in m)


def apply_edits(params: Mapping[str, Any], edits: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with each edit applied: ``name`` sets a top-level param, ``a.b`` a nested one.

    A dotted edit must land in an existing mapping; anything else raises ``ValueError`` (the
    action is then denied, never run with a half-applied edit).
    """
    out: dict[str, Any] = dict(params)
    for path, value in edits.items():
        parts = path.split(".")
        if len(parts) == 1 or path in out:
            out[path] = value
            continue
        out[parts[0]] = _set_nested(out.get(parts[0]), parts[1:], value, path)
    return out


def _set_nested(node: Any, parts: list[str], value: Any, path: str) -> Any:
    if not isinstance(node, Mapping):
        raise ValueError(f"edit {path!r}: no mapping to set {parts[0]!r} in")
    copy = dict(node)
    copy[parts[0]] = (
        value if len(parts) == 1 else _set_nested(node.get(parts[0]), parts[1:], value, path)
    )
    return copy

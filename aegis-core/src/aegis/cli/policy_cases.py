"""Policy test cases: the ``*.cases.yaml`` format that ``aegis test`` runs.

A cases file names the policy it tests and lists actions with the decision expected for each::

    policy: crm.yaml                 # a file, relative to this one; or
    template: crm                    # a registered template (aegis init --list); or neither:
                                     # <name>.yaml next to <name>.cases.yaml
    cases:
      - name: big exports are blocked                 # optional label
        action: export_contacts:contacts              # type:target, as for `aegis simulate`
        params: { count: 5000 }
        agent: sales-bot
        session: s-1
        at: "2026-03-18T10:00:00"    # frozen clock; without a zone: the policy's timezone
        expect: { approval: block, rule: no_mass_export, risk: CRITICAL, unknown: [] }
      - name: the eleventh delete in a minute is blocked
        action: delete_contact:crm
        agent: sales-bot
        history:                     # actions that ran before this one (stateful conditions)
          - { action: delete_contact:crm, times: 10, ago: 30s }   # agent/session: the case's
        expect: { approval: block, rule: delete_rate_limit }

``history`` lists actions that ran before the case's action (``action``, ``params``,
``agent``, ``session`` as for a case; ``ago``: how long before the case's time, default 1s;
``times``: how often, default 1). Each is evaluated in order with an in-memory history and
counted as run; then the case's action is decided. A stateful policy without ``history`` is
decided on an empty history (every limit unused), never on none.

``expect`` checks only the keys it has: ``approval``, ``rule`` (alias ``matched_rule``; ``null``
means "the defaults decided"), ``risk`` (alias ``risk_level``) and ``unknown`` (the conditions
that could not be evaluated). Unknown keys are errors, not ignored: a misspelt ``expect`` key
would otherwise make a case that cannot fail.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from aegis.cli.errors import CliError

SUFFIX = ".cases.yaml"
_CASE_KEYS = frozenset({"name", "action", "params", "agent", "session", "at", "expect", "history"})
_HISTORY_KEYS = frozenset({"action", "params", "agent", "session", "ago", "times"})
_FILE_KEYS = frozenset({"policy", "template", "cases"})
_EXPECT_ALIASES = {
    "approval": "approval",
    "rule": "rule",
    "matched_rule": "rule",
    "risk": "risk",
    "risk_level": "risk",
    "unknown": "unknown",
}


@attrs.frozen
class Past:
    """An action that ran before a case's action (``history``)."""

    action_type: str
    target: str
    params: Mapping[str, Any]
    agent: str | None
    session: str | None
    ago: float
    times: int


@attrs.frozen
class Case:
    """One action and what the policy must decide for it."""

    file: Path
    line: int
    number: int
    name: str
    action_type: str
    target: str
    params: Mapping[str, Any]
    agent: str | None
    session: str | None
    at: str | None
    expect: Mapping[str, Any]
    history: tuple[Past, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@attrs.frozen
class CaseFile:
    path: Path
    policy_source: str  # a file path, or "template NAME"
    policy_text: str
    cases: tuple[Case, ...]


def find_case_files(path: Path) -> list[Path]:
    """``path`` itself (a cases file), a policy's sibling cases file, or every one under a
    directory."""
    if path.is_dir():  # hidden directories (.git, .venv, .nox) are not searched
        found = path.rglob(f"*{SUFFIX}")
        return sorted(
            p
            for p in found
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    if not path.exists():
        raise CliError(f"{path}: no such file or directory")
    if path.name.endswith(SUFFIX):
        return [path]
    sibling = path.with_name(_stem(path) + SUFFIX)
    if sibling.is_file():
        return [sibling]
    raise CliError(f"{path}: no test cases found (expected {sibling.name} next to it)")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (SUFFIX, ".yaml", ".yml"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def load_case_file(path: Path) -> CaseFile:
    """Parse and check a cases file; every problem is a ``CliError`` naming file and line."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        document = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise CliError(f"{path}{line}: not valid YAML: {problem}") from None
    if not isinstance(document, Mapping):
        raise CliError(f"{path}:1: expected a mapping with 'cases' (and 'policy' or 'template')")
    extra = sorted(str(k) for k in document if k not in _FILE_KEYS)
    if extra:
        raise CliError(f"{path}:{_line(document, extra[0])}: unknown key {extra[0]!r}")
    source, policy_text = _policy_of(path, document)
    raw_cases = document.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise CliError(f"{path}:{_line(document, 'cases')}: 'cases' must be a non-empty list")
    cases = tuple(
        _case(path, number, raw, _item_line(raw_cases, number - 1))
        for number, raw in enumerate(raw_cases, start=1)
    )
    return CaseFile(path, source, policy_text, cases)


def _policy_of(path: Path, document: Mapping[str, Any]) -> tuple[str, str]:
    from aegis import plugins

    policy, template = document.get("policy"), document.get("template")
    if policy is not None and template is not None:
        raise CliError(f"{path}:{_line(document, 'policy')}: give 'policy' or 'template', not both")
    if template is not None:
        templates = plugins.get_registry().of_kind("policy_templates")
        registration = templates.get(str(template))
        if registration is None:
            known = ", ".join(sorted(templates)) or "none"
            raise CliError(
                f"{path}:{_line(document, 'template')}: template: no such template "
                f"{template!r} (available: {known})"
            )
        return f"template {template!r}", _read(Path(str(registration.obj)), path)
    if policy is not None:
        if not isinstance(policy, str) or not policy:
            raise CliError(f"{path}:{_line(document, 'policy')}: policy: expected a file path")
        target = path.parent / policy
    else:
        target = path.with_name(_stem(path) + ".yaml")
        if not target.is_file():
            raise CliError(
                f"{path}:1: no policy: add 'policy: FILE' or 'template: NAME', or put "
                f"{target.name} next to it"
            )
    return str(target), _read(target, path)


def _read(target: Path, cases_file: Path) -> str:
    try:
        return target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise CliError(f"{cases_file}: policy {target}: cannot read: {reason}") from None


def _case(path: Path, number: int, raw: Any, line: int) -> Case:
    where = f"{path}:{line}"
    if not isinstance(raw, Mapping):
        raise CliError(f"{where}: case {number}: expected a mapping with 'action' and 'expect'")
    extra = sorted(str(k) for k in raw if k not in _CASE_KEYS)
    if extra:
        raise CliError(
            f"{path}:{_line(raw, extra[0], line)}: case {number}: unknown key {extra[0]!r}"
        )
    spec, action_type, target, params = _action(path, raw, line, f"case {number}")
    for key in ("at", "name"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise CliError(f"{path}:{_line(raw, key, line)}: case {number}: {key}: expected text")
    return Case(
        file=path,
        line=line,
        number=number,
        name=str(raw.get("name") or spec),
        action_type=action_type.strip(),
        target=target.strip(),
        params=_plain(params),
        agent=raw.get("agent"),
        session=raw.get("session"),
        at=raw.get("at"),
        expect=_expect(raw.get("expect"), f"{path}:{_line(raw, 'expect', line)}", number),
        history=_history(path, raw, line, number),
    )


def _action(path: Path, raw: Mapping[str, Any], line: int, what: str) -> tuple[str, str, str, Any]:
    """(spec, type, target, params) of a case or a history entry; agent/session checked."""
    spec = raw.get("action")
    if not isinstance(spec, str):
        raise CliError(f"{path}:{line}: {what}: 'action' must be type:target, e.g. read:crm")
    action_type, sep, target = spec.partition(":")
    if not sep or not action_type.strip() or not target.strip():
        raise CliError(f"{path}:{line}: {what}: action {spec!r}: expected type:target")
    params = raw.get("params") or {}
    if not isinstance(params, Mapping):
        raise CliError(f"{path}:{_line(raw, 'params', line)}: {what}: params: expected a mapping")
    for key in ("agent", "session"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise CliError(f"{path}:{_line(raw, key, line)}: {what}: {key}: expected text")
    return spec, action_type.strip(), target.strip(), params


def _history(path: Path, raw: Mapping[str, Any], line: int, number: int) -> tuple[Past, ...]:
    from aegis.core.approvers import parse_duration

    items = raw.get("history")
    if items is None:
        return ()
    here = _line(raw, "history", line)
    if not isinstance(items, list):
        raise CliError(f"{path}:{here}: case {number}: history: expected a list of actions")
    out: list[Past] = []
    for i, item in enumerate(items):
        at = _item_line(items, i) if len(items) > i else here
        what = f"case {number}: history[{i}]"
        if not isinstance(item, Mapping):
            raise CliError(f"{path}:{at}: {what}: expected a mapping with 'action'")
        extra = sorted(str(k) for k in item if k not in _HISTORY_KEYS)
        if extra:
            raise CliError(f"{path}:{at}: {what}: unknown key {extra[0]!r}")
        _, action_type, target, params = _action(path, item, at, what)
        times = item.get("times", 1)
        if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= 100_000:
            raise CliError(f"{path}:{at}: {what}: times: expected a whole number 1..100000")
        try:
            ago = parse_duration(item.get("ago", 1))
        except ValueError as exc:
            raise CliError(f"{path}:{at}: {what}: ago: {exc}") from None
        out.append(
            Past(
                action_type,
                target,
                _plain(params),
                item.get("agent", raw.get("agent")),
                item.get("session", raw.get("session")),
                ago,
                times,
            )
        )
    return tuple(out)


def _expect(raw: Any, where: str, number: int) -> dict[str, Any]:
    from aegis.core.risk import Approval, RiskLevel

    if not isinstance(raw, Mapping) or not raw:
        raise CliError(f"{where}: case {number}: 'expect' must map approval/rule/risk/unknown")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        canonical = _EXPECT_ALIASES.get(str(key))
        if canonical is None:
            known = "approval, rule (matched_rule), risk (risk_level), unknown"
            raise CliError(f"{where}: case {number}: expect: unknown key {key!r} (known: {known})")
        try:
            if canonical == "approval":
                out[canonical] = Approval.parse(value).value
            elif canonical == "risk":
                out[canonical] = RiskLevel.parse(value).name
            elif canonical == "rule":
                if value is not None and not isinstance(value, str):
                    raise ValueError(f"expected a rule name or null, got {value!r}")
                out[canonical] = value
            else:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError("expected a list of condition names")
                out[canonical] = sorted(value)
        except ValueError as exc:
            raise CliError(f"{where}: case {number}: expect.{key}: {exc}") from None
    return out


def frozen_time(case: Case, tz: dt.tzinfo) -> dt.datetime | None:
    """The case's ``at`` as an aware datetime (no zone given: the policy's timezone)."""
    if case.at is None:
        return None
    try:
        value = dt.datetime.fromisoformat(case.at.strip())
    except ValueError:
        raise CliError(
            f"{case.where}: case {case.number}: at {case.at!r}: expected an ISO date/time, "
            "e.g. 2026-03-18T10:00:00+00:00"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def _plain(value: Any) -> Any:
    """ruamel's round-trip containers → plain dicts/lists (what an agent would send)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool):
        return bool(value)
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _line(node: Any, key: Any, fallback: int = 1) -> int:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return fallback


def _item_line(seq: Any, index: int) -> int:
    try:
        return int(seq.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return 1

"""Plain data -> validated, structured and compiled policy, or every problem found.

Validation is JSON Schema (``aegis.core.schema``): the document is checked with its rules left
open, then each rule on its own against the rule schema — same schema, but a rule's errors come
with the rule's index, and valid rules go on to compilation so that a bad regex in rule 7 is
reported together with an unknown key in rule 3. Problems are collected as ``(path, message)``
and only located (``file:line:col``) when there are any, see ``locate``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from aegis import plugins
from aegis.core import policy_model as pm
from aegis.core.approvers import ApprovalRequirements, parse_requirements
from aegis.core.condition import CompileContext, ConditionDef
from aegis.core.conditions_time import TIME_PATTERN, explain_time
from aegis.core.matcher import CompiledRule, Glob
from aegis.core.policy_compile import Node, Path, compile_conditions, with_limits
from aegis.core.policy_yaml import Locations, render_path
from aegis.core.risk import Approval
from aegis.core.schema import CONDITIONS_TITLE, SchemaBundle, bundle
from aegis.errors import PolicyIssue

#: (path, message, located at the key rather than the value)
Problem = tuple[Path, str, bool]

_JSON_TYPES = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
    (type(None), "null"),
)


def _json_type(value: Any) -> str:
    for cls, name in _JSON_TYPES:
        if isinstance(value, cls):
            return name
    return type(value).__name__


def _failed_plugins_note() -> str:
    failures = plugins.get_registry().failures
    if not failures:
        return ""
    names = ", ".join(sorted({f.plugin for f in failures}))
    return f"; plugins that failed to load: {names} (see `aegis plugins`)"


def _problems(error: Any, prefix: Path) -> Iterable[Problem]:
    """Problems from one ``jsonschema.ValidationError``."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        from jsonschema.exceptions import best_match  # type: ignore[import-untyped,unused-ignore]

        error = best_match(error.context)
    path: Path = (*prefix, *error.absolute_path)
    kind, instance, schema = error.validator, error.instance, error.schema
    schema = schema if isinstance(schema, Mapping) else {}
    if kind == "additionalProperties" and isinstance(instance, Mapping):
        allowed = list(schema.get("properties", {}))
        for key in instance:
            if key in allowed:
                continue
            if schema.get("title") == CONDITIONS_TITLE:
                known = ", ".join(sorted(k for k in allowed if k not in ("all", "any", "not")))
                message = (
                    f"unknown condition {key!r} (known: {known}; combinators: all, any,"
                    f" not{_failed_plugins_note()})"
                )
            else:
                message = f"unknown key {key!r} (expected one of: {', '.join(allowed)})"
            yield (*path, key), message, True
        return
    if kind == "required" and isinstance(instance, Mapping):
        for key in error.validator_value:
            if key not in instance:
                yield path, f"missing required key {key!r}", False
        return
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        message = f"expected {expected}, got {_json_type(instance)} {instance!r}"
    elif kind == "enum" and path == ("version",):
        message = (
            f"unsupported policy version {instance!r}: this Aegis reads policy language"
            ' version 1 (write version: "1")'
        )
    elif kind == "enum":
        choices = ", ".join(dict.fromkeys(str(v) for v in error.validator_value))
        message = f"must be one of: {choices} (got {instance!r})"
    elif kind == "pattern" and error.validator_value == TIME_PATTERN:
        message = explain_time(instance)
    elif kind == "pattern":  # the description says what the value should look like
        what = schema.get("description") or f"must match the pattern {error.validator_value}"
        message = f"invalid value {instance!r}: {what}"
    elif kind == "minItems" and error.validator_value > 1:
        message = f"needs at least {error.validator_value} items, got {len(instance)}"
    elif kind in ("minItems", "minProperties", "minLength"):
        message = "must not be empty"
    else:
        message = error.message
    yield path, message, False


def _validate(
    validator: Callable[[], Any],
    certainly_valid: Any,
    instance: Any,
    prefix: Path,
    out: list[Problem],
) -> bool:
    if certainly_valid(instance):
        return True
    before = len(out)
    try:
        for error in validator().iter_errors(instance):
            out.extend(_problems(error, prefix))
    except RecursionError:
        raise
    except Exception as exc:  # a schema fragment that cannot be applied: reject, never crash
        out.append(
            (prefix, f"cannot validate: {type(exc).__name__}: {exc}{_failed_plugins_note()}", False)
        )
    return len(out) == before


@attrs.frozen
class Loaded:
    model: pm.PolicyModel
    rules: tuple[CompiledRule, ...]


def _globs(values: tuple[str, ...] | None, cs: bool) -> tuple[Glob, ...] | None:
    return None if values is None else tuple(Glob(v, cs) for v in values)


def compile_rules(
    model: pm.PolicyModel,
    defs: Mapping[str, ConditionDef],
    cc: CompileContext,
    problems: list[Problem],
    skip: frozenset[int] = frozenset(),
) -> tuple[CompiledRule, ...]:
    defaults = model.effective_defaults
    cs = cc.case_sensitive
    compiled: list[CompiledRule] = []
    for i, rule in enumerate(model.rules):
        if i in skip:
            continue
        node: Node | None = None
        if rule.conditions:
            plist: list[tuple[Path, str]] = []
            node = with_limits(
                compile_conditions(
                    rule.conditions,
                    defs,
                    attrs.evolve(cc, rule=rule.name),
                    ("rules", i, "conditions"),
                    plist,
                )
            )
            problems.extend((path, message, False) for path, message in plist)
        globs = (
            _globs(rule.match.type, cs),
            _globs(rule.match.target, cs),
            _globs(rule.match.agent, cs),
        )
        approval = rule.approval or defaults.approval
        compiled.append(
            CompiledRule(
                i,
                rule.name,
                globs,
                node,
                rule.risk_level or defaults.risk_level,
                approval,
                _requirements(rule, approval, ("rules", i, "approvers"), problems),
            )
        )
    return tuple(compiled)


def _requirements(
    rule: pm.Rule, approval: Approval, path: Path, problems: list[Problem]
) -> ApprovalRequirements | None:
    if rule.approvers is None:
        return None
    if approval is not Approval.APPROVE:
        problems.append(
            (path, f"approvers only apply to approval: approve (this rule is {approval})", True)
        )
        return None
    requirements, found = parse_requirements(rule.approvers)
    problems.extend(((*path, key), message, False) for key, message in found)
    return requirements


def compile_context(model: pm.PolicyModel, problems: list[Problem]) -> CompileContext:
    try:
        tz = ZoneInfo(model.effective_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            (
                ("timezone",),
                f"unknown time zone {model.effective_timezone!r}"
                " (expected an IANA name such as Europe/Berlin)",
                False,
            )
        )
        tz = ZoneInfo("UTC")
    return CompileContext(timezone=tz, case_sensitive=bool(model.case_sensitive))


def duplicate_names(names: Iterable[tuple[int, Any]], problems: list[Problem]) -> None:
    first: dict[str, int] = {}
    for i, name in names:
        if not isinstance(name, str):
            continue
        if name in first:
            problems.append(
                (
                    ("rules", i, "name"),
                    f"duplicate rule name {name!r} (also rules[{first[name]}])",
                    False,
                )
            )
        else:
            first[name] = i


def load(data: Any, schemas: SchemaBundle | None = None) -> tuple[Loaded | None, list[Problem]]:
    """Validate, structure and compile ``data``; on any problem the policy is None."""
    try:
        return _load(data, schemas)
    except RecursionError:  # validation, structuring and compiling all recurse into the data
        return None, [((), "the policy is nested too deeply to check", False)]


def _load(data: Any, schemas: SchemaBundle | None) -> tuple[Loaded | None, list[Problem]]:
    schemas = schemas or bundle()
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        kind = _json_type(data)
        what = "empty" if data is None else ("an " if kind[0] in "aeiou" else "a ") + kind
        return None, [((), f"a policy must be a mapping with rules, got {what}", False)]
    _validate(schemas.document, schemas.document_ok, data, (), problems)
    raw_rules = data.get("rules")
    rules = raw_rules if isinstance(raw_rules, list) else []
    invalid: set[int] = set()
    for i, rule in enumerate(rules):
        if not _validate(schemas.rule, schemas.rule_ok, rule, ("rules", i), problems):
            invalid.add(i)
    duplicate_names(
        ((i, r.get("name")) for i, r in enumerate(rules) if isinstance(r, Mapping)), problems
    )
    if not problems:
        try:
            model = pm.structure(data)
        except Exception as exc:  # schema and model disagree: report, never a traceback
            return None, [((), f"invalid policy: {exc}", False)]
        cc = compile_context(model, problems)
        compiled = compile_rules(model, schemas.defs, cc, problems)
        if problems:
            return None, problems
        return Loaded(model, compiled), problems
    _check_what_is_valid(data, rules, invalid, schemas, problems)
    return None, problems


def _check_what_is_valid(
    data: Mapping[str, Any],
    rules: list[Any],
    invalid: set[int],
    schemas: SchemaBundle,
    problems: list[Problem],
) -> None:
    """Compile everything that passed validation, so that one run reports every problem.

    Top-level keys with a problem are left out (their defaults stand in), rules that failed
    validation are left out, and of those rules the conditions that did validate are still
    compiled: a bad regex is reported together with a bad time in the same rule.
    """
    bad_top = {path[0] for path, _, _ in problems if path and path[0] != "rules"}
    valid = {k: v for k, v in data.items() if k not in bad_top and k != "rules"}
    kept = [i for i in range(len(rules)) if i not in invalid]
    valid["rules"] = [rules[i] for i in kept]
    try:
        model = pm.structure(valid)
    except Exception as exc:  # schema and model disagree: report, never a traceback
        problems.append(((), f"invalid policy: {exc}", False))
        return
    cc = compile_context(model, problems) if "timezone" not in bad_top else CompileContext()
    sub: list[Problem] = []
    compile_rules(model, schemas.defs, cc, sub)
    for path, message, at_key in sub:  # indexes in the reduced model differ; map them back
        if len(path) > 1 and path[0] == "rules" and isinstance(path[1], int):
            path = ("rules", kept[path[1]], *path[2:])
        problems.append((path, message, at_key))
    for i in sorted(invalid):
        conditions = rules[i].get("conditions") if isinstance(rules[i], Mapping) else None
        if not isinstance(conditions, Mapping):
            continue
        where: Path = ("rules", i, "conditions")
        bad = {p[3] for p, _, _ in problems if p[:3] == where and len(p) > 3}
        if any(p == where for p, _, _ in problems):
            continue
        # Registered conditions only: a combinator (all/any/not) is skipped whole.
        good = {k: v for k, v in conditions.items() if k not in bad and k in schemas.defs}
        if good:
            plist: list[tuple[Path, str]] = []
            compile_conditions(good, schemas.defs, cc, where, plist)
            problems.extend((path, message, False) for path, message in plist)


def locate(problems: Iterable[Problem], locs: Locations, file: str) -> list[PolicyIssue]:
    """Turn problems into issues at the nearest known position, ordered by position."""
    issues: list[tuple[tuple[int, int], PolicyIssue]] = []
    for path, message, at_key in problems:
        position = locs.get(("k" if at_key else "v", path))
        probe = path
        while position is None and probe:
            position = locs.get(("k", probe)) or locs.get(("v", probe))
            probe = probe[:-1]
        if position is None:
            position = locs.get(("v", ()))
        line, col = position if position else (None, None)
        issue = PolicyIssue(message, file, line, col, render_path(path) or None)
        issues.append(((line or 0, col or 0), issue))
    issues.sort(key=lambda item: item[0])
    return [issue for _, issue in issues]

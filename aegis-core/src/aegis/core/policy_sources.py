"""Building a ``Policy`` from its sources: reading them, reporting problems at their place in
the text (also after a merge), and the content fingerprint.

Apart from ``policy`` because it is all construction, run once per load or merge, while
``policy`` is what each action goes through (``Policy.evaluate``). A policy keeps the parts it
was built from (``Part``): positions are worked out from a part's text only when there is an
error to place, never on a load that succeeds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from aegis.core import policy_model as pm
from aegis.core.policy_loader import Loaded, load, locate
from aegis.core.policy_yaml import parse
from aegis.errors import PolicyError, PolicyIssue


@attrs.frozen
class Part:
    """One source a policy was built from (for error positions after a merge)."""

    source: str
    text: str | None
    rule_count: int


def read_source(path: str | os.PathLike[str]) -> tuple[str, str]:
    """A policy file's text and its name as the source, or a ``PolicyError`` saying why not."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(PolicyIssue(f"not UTF-8 text: {exc.reason}", source)) from None
    except OSError as exc:
        raise PolicyError(
            PolicyIssue(f"cannot read policy: {exc.strerror or exc}", source)
        ) from None
    return text, source


def compiled(data: Any, part: Part, issues: list[PolicyIssue]) -> tuple[Loaded, Part]:
    """``data`` validated and compiled, with ``part`` counting its rules; a ``PolicyError``
    with every problem (the parser's ``issues`` among them) at its place in ``part``."""
    loaded, problems = load(data)
    if loaded is None or problems or issues:
        located = locate(problems, _positions(part), part.source)
        raise PolicyError(sorted(issues + located, key=_issue_order))
    return loaded, attrs.evolve(part, rule_count=len(loaded.model.rules))


def recompiled(model: pm.PolicyModel, parts: tuple[Part, ...]) -> Loaded:
    """A merged model compiled again (its problems named after all of ``parts``)."""
    loaded, problems = load(pm.to_dict(model))
    if loaded is None or problems:
        raise PolicyError(locate(problems, {}, " + ".join(p.source for p in parts)))
    return loaded


def duplicate_rules(
    mine: Sequence[pm.Rule],
    my_parts: tuple[Part, ...],
    theirs: Sequence[pm.Rule],
    their_parts: tuple[Part, ...],
) -> list[PolicyIssue]:
    """A rule name defined on both sides of a merge, as an error naming both places."""
    problems: list[PolicyIssue] = []
    first_index = {rule.name: i for i, rule in enumerate(mine)}
    for j, rule in enumerate(theirs):
        if rule.name in first_index:
            first = _rule_position(my_parts, first_index[rule.name])
            here = _rule_position(their_parts, j)
            problems.append(
                attrs.evolve(
                    here,
                    message=f"duplicate rule name {rule.name!r} (first defined at"
                    f" {first.file}{_at(first)})",
                )
            )
    return problems


def _rule_position(parts: tuple[Part, ...], index: int) -> PolicyIssue:
    offset = 0
    for part in parts:
        if index < offset + part.rule_count:
            path = ("rules", index - offset, "name")
            return locate([(path, "", False)], _positions(part), part.source)[0]
        offset += part.rule_count
    return PolicyIssue("", " + ".join(part.source for part in parts))


def _at(issue: PolicyIssue) -> str:
    if issue.line is None:
        return f" ({issue.key})" if issue.key else ""
    return f":{issue.line}:{issue.column}"


def _issue_order(issue: PolicyIssue) -> tuple[int, int]:
    return (issue.line or 0, issue.column or 0)


def _positions(part: Part) -> dict[Any, tuple[int, int]]:
    if part.text is None:
        return {}
    try:
        return parse(part.text, part.source, track=True)[2]
    except PolicyError:
        return {}


def tz_of(model: pm.PolicyModel) -> dt.tzinfo:
    """The zone ``now`` is taken in when an evaluation is given none."""
    return ZoneInfo(model.effective_timezone)


def fingerprint(data: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a policy's content (``Policy.fingerprint``)."""
    try:
        canonical = _canonical(data)
    except ValueError:  # an int too long for str() (Python's 4,300-digit guard): hash its hex
        canonical = _canonical(_hex_big_ints(data))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr)


def _hex_big_ints(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"$int": hex(value)}
    if isinstance(value, Mapping):
        return {k: _hex_big_ints(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hex_big_ints(v) for v in value]
    return value

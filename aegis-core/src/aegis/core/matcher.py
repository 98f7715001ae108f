"""Compiled matching: which rules' globs fit an action, without scanning every rule.

Each rule is filed under the literal prefix of its most selective field (``op_12*`` is filed
under ``op_12`` in the ``type`` index); rules whose globs start with a wildcard everywhere go to
an ``always`` list. For an action, only the prefixes of its own type and target that occur in
the index are looked up (one dict probe per distinct prefix length), the candidates are merged
back into rule order, and their globs are checked in full. The resulting list is cached per
``(type, target, agent)`` in a bounded LRU, so a steady workload costs one cache probe.

Case-insensitive globs (the default) follow ``re.IGNORECASE``. Where a cheap comparison could
disagree with it — non-ASCII text, whose case folding is not ``str.lower`` — the matcher falls
back to the regex and, for the index, to every rule: the index may only ever widen the
candidate set, never narrow it below what the globs match.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Sequence

from aegis.core.approvers import ApprovalRequirements
from aegis.core.policy_compile import Node
from aegis.core.risk import Approval, RiskLevel

CACHE_SIZE = 4096
_WILDCARD = re.compile(r"[*?\[]")


@functools.lru_cache(maxsize=CACHE_SIZE)
def _glob_regex(pattern: str, case_sensitive: bool) -> Callable[[str], object]:
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.compile(fnmatch.translate(pattern), flags).match


class Glob:
    """One glob, matched by string comparison where that is exact, else by regex (lazily)."""

    __slots__ = ("cs", "index_key", "kind", "literal", "pattern")

    def __init__(self, pattern: str, case_sensitive: bool) -> None:
        self.pattern = pattern
        self.cs = case_sensitive
        wildcard = _WILDCARD.search(pattern)
        literal = pattern if wildcard is None else pattern[: wildcard.start()]
        if wildcard is None:
            self.kind = "exact"
        elif pattern[wildcard.start() :] == "*":
            self.kind = "prefix"
        else:
            self.kind = "regex"
        if not case_sensitive:
            if not pattern.isascii():
                self.kind = "regex"
            ascii_len = next((i for i, ch in enumerate(literal) if not ch.isascii()), len(literal))
            literal = literal[:ascii_len].lower()
        self.literal = literal
        #: What the index files this glob under: a prefix every matching value starts with.
        self.index_key = literal

    def match(self, value: str) -> bool:
        kind = self.kind
        if kind != "regex" and (self.cs or value.isascii()):
            folded = value if self.cs else value.lower()
            if kind == "exact":
                return folded == self.literal
            return folded.startswith(self.literal)
        return _glob_regex(self.pattern, self.cs)(value) is not None


def _field_matches(globs: tuple[Glob, ...] | None, value: str) -> bool:
    return globs is None or any(g.match(value) for g in globs)


class CompiledRule:
    """A rule ready to evaluate: globs, condition tree, and its decision fields."""

    __slots__ = (
        "agent",
        "approval",
        "cond",
        "index",
        "name",
        "reason",
        "requirements",
        "risk",
        "target",
        "type",
    )

    def __init__(
        self,
        index: int,
        name: str,
        globs: tuple[tuple[Glob, ...] | None, tuple[Glob, ...] | None, tuple[Glob, ...] | None],
        cond: Node | None,
        risk: RiskLevel,
        approval: Approval,
        requirements: ApprovalRequirements | None = None,
    ) -> None:
        self.index = index
        self.name = name
        self.type, self.target, self.agent = globs
        self.cond = cond
        self.risk = risk
        self.approval = approval
        self.requirements = requirements
        self.reason = f"matched rule {name!r}"

    def glob_match(self, type_: str, target: str, agent: str | None) -> bool | None:
        """True/False, or None when the rule names agents and the action has no agent id."""
        if not _field_matches(self.type, type_) or not _field_matches(self.target, target):
            return False
        if self.agent is None:
            return True
        if agent is None:
            return True if any(g.pattern == "*" for g in self.agent) else None
        return _field_matches(self.agent, agent)


Candidates = tuple[tuple[CompiledRule, bool], ...]


class _FieldIndex:
    __slots__ = ("buckets", "lengths")

    def __init__(self) -> None:
        self.buckets: dict[str, list[int]] = {}
        self.lengths: list[int] = []

    def add(self, key: str, rule_index: int) -> None:
        bucket = self.buckets.setdefault(key, [])
        if not bucket or bucket[-1] != rule_index:
            bucket.append(rule_index)

    def freeze(self) -> None:
        self.lengths = sorted({len(k) for k in self.buckets})

    def lookup(self, value: str, out: set[int]) -> None:
        buckets = self.buckets
        size = len(value)
        for length in self.lengths:
            if length > size:
                break
            bucket = buckets.get(value[:length])
            if bucket is not None:
                out.update(bucket)


class RuleMatcher:
    """Rules whose globs fit an action, in rule order, each with "agent unknown" flag."""

    def __init__(self, rules: Sequence[CompiledRule], case_sensitive: bool) -> None:
        self.rules = tuple(rules)
        self.case_sensitive = case_sensitive
        self._always: list[int] = []
        self._type = _FieldIndex()
        self._target = _FieldIndex()
        for rule in self.rules:
            self._file(rule)
        self._type.freeze()
        self._target.freeze()
        self.candidates: Callable[[str, str, str | None], Candidates] = functools.lru_cache(
            maxsize=CACHE_SIZE
        )(self._compute)

    def _file(self, rule: CompiledRule) -> None:
        best: tuple[int, _FieldIndex, tuple[Glob, ...]] | None = None
        for globs, index in ((rule.type, self._type), (rule.target, self._target)):
            if globs is None:
                continue
            selectivity = min(len(g.index_key) for g in globs)
            if selectivity > 0 and (best is None or selectivity > best[0]):
                best = (selectivity, index, globs)
        if best is None:
            self._always.append(rule.index)
            return
        for glob in best[2]:
            best[1].add(glob.index_key, rule.index)

    def _fold(self, value: str) -> str | None:
        """The value as the index stores keys; None when only a full scan is safe."""
        if self.case_sensitive:
            return value
        return value.lower() if value.isascii() else None

    def candidate_indexes(self, type_: str, target: str) -> list[int]:
        folded_type, folded_target = self._fold(type_), self._fold(target)
        if folded_type is None or folded_target is None:
            return list(range(len(self.rules)))
        found: set[int] = set(self._always)
        self._type.lookup(folded_type, found)
        self._target.lookup(folded_target, found)
        return sorted(found)

    def _compute(self, type_: str, target: str, agent: str | None) -> Candidates:
        out: list[tuple[CompiledRule, bool]] = []
        rules = self.rules
        for i in self.candidate_indexes(type_, target):
            rule = rules[i]
            matched = rule.glob_match(type_, target, agent)
            if matched is not False:
                out.append((rule, matched is None))
        return tuple(out)

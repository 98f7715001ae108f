"""Compiled matching: which rules' globs fit an action, without scanning every rule.

Each rule is filed under the literal prefix of its most selective field (``op_12*`` is filed
under ``op_12`` in the ``type`` index); rules whose globs start with a wildcard everywhere go to
an ``always`` list. For an action, only the prefixes of its own type and target that occur in
the index are looked up (one dict probe per distinct prefix length), the candidates are merged
back into rule order, and their globs are checked in full. The resulting list is cached per
``(type, target, agent)`` in a bounded LRU, so a steady workload costs one cache probe.

Globs and names meet as *match keys* (``aegis.core.names``: NFKC, case-folded unless the policy
is case-sensitive), so a fullwidth or differently-cased spelling lands on the same key, and
every comparison here — index probe, prefix test, regex — is a plain case-sensitive one on keys:
the index can never disagree with the globs. Very long names bypass the cache (see
``MAX_CACHED_KEY``), so its memory is bounded by size, not only by entry count.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Sequence

from aegis.core import names
from aegis.core.approvers import ApprovalRequirements
from aegis.core.names import match_key
from aegis.core.policy_compile import Node
from aegis.core.risk import Approval, RiskLevel

CACHE_SIZE = 4096
#: Actions whose type + target + agent are longer than this are matched without the cache, so
#: the cache holds at most CACHE_SIZE * MAX_CACHED_KEY characters of keys (a few MiB), however
#: large the names agents send.
MAX_CACHED_KEY = 512
_WILDCARD = re.compile(r"[*?\[]")


@functools.lru_cache(maxsize=CACHE_SIZE)
def _glob_regex(pattern: str) -> Callable[[str], object]:
    return re.compile(fnmatch.translate(pattern)).match


class Glob:
    """One glob over match keys (``aegis.core.names.match_key``): string comparison where
    that is exact, else a regex.

    The pattern is folded like the values it is matched against (NFKC, and case folding
    unless the policy is case-sensitive), so every comparison here is a plain case-sensitive
    one and the index below can never disagree with it.
    """

    __slots__ = ("index_key", "kind", "literal", "pattern")

    def __init__(self, pattern: str, case_sensitive: bool) -> None:
        self.pattern = pattern
        folded = match_key(pattern, case_sensitive)
        wildcard = _WILDCARD.search(folded)
        literal = folded if wildcard is None else folded[: wildcard.start()]
        if wildcard is None:
            self.kind = "exact"
        elif folded[wildcard.start() :] == "*":
            self.kind = "prefix"
        else:
            self.kind = "regex"
        #: What ``match`` compares with: the literal, or for a regex the whole folded pattern.
        self.literal = folded if self.kind == "regex" else literal
        #: What the index files this glob under: a prefix every matching key starts with.
        self.index_key = literal

    def match(self, key: str) -> bool:
        """Does the glob match ``key`` (a value already passed through ``match_key``)?"""
        kind = self.kind
        if kind == "exact":
            return key == self.literal
        if kind == "prefix":
            return key.startswith(self.literal)
        return _glob_regex(self.literal)(key) is not None


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
        """True/False, or None when the rule names agents and the action has no agent id.

        The arguments are match keys (``aegis.core.names.match_key``), not raw names.
        """
        if not _field_matches(self.type, type_) or not _field_matches(self.target, target):
            return False
        if self.agent is None:
            return True
        if agent is None:
            return True if any(g.pattern == "*" for g in self.agent) else None
        return _field_matches(self.agent, agent)


Candidates = tuple[tuple[CompiledRule, bool], ...]
#: The candidates, and why the action's names must not get ``auto`` (see aegis.core.names).
Matched = tuple[Candidates, tuple[str, ...]]


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
        self.cached: Callable[[str, str, str | None], Matched] = functools.lru_cache(
            maxsize=CACHE_SIZE
        )(self.compute)

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

    def candidate_indexes(self, type_key: str, target_key: str) -> list[int]:
        found: set[int] = set(self._always)
        self._type.lookup(type_key, found)
        self._target.lookup(target_key, found)
        return sorted(found)

    def _matching(
        self, type_key: str, target_key: str, agent_key: str | None
    ) -> dict[int, tuple[CompiledRule, bool]]:
        out: dict[int, tuple[CompiledRule, bool]] = {}
        rules = self.rules
        for i in self.candidate_indexes(type_key, target_key):
            rule = rules[i]
            matched = rule.glob_match(type_key, target_key, agent_key)
            if matched is not False:
                out[i] = (rule, matched is None)
        return out

    def compute(self, type_: str, target: str, agent: str | None) -> Matched:
        cs = self.case_sensitive
        keys = (match_key(type_, cs), match_key(target, cs))
        agent_key = None if agent is None else match_key(agent, cs)
        found = self._matching(*keys, agent_key)
        if (type_ + target + (agent or "")).isascii():
            return tuple(found.values()), ()
        # Skeletons (accents dropped, look-alike letters mapped to Latin) may add rules that
        # are stricter than auto, never an auto rule: a look-alike is caught, never waved on.
        shadow = (names.skeleton(keys[0], cs), names.skeleton(keys[1], cs))
        shadow_agent = None if agent_key is None else names.skeleton(agent_key, cs)
        if shadow != keys or shadow_agent != agent_key:
            for i, hit in self._matching(*shadow, shadow_agent).items():
                if i not in found and hit[0].approval is not Approval.AUTO:
                    found[i] = hit
            found = dict(sorted(found.items()))
        flagged = names.flags("type", type_) + names.flags("target", target)
        if agent is not None:
            flagged += names.flags("agent_id", agent)
        return tuple(found.values()), flagged

    def candidates(self, type_: str, target: str, agent: str | None) -> Matched:
        """The matching rules and the names' flags; cached unless the names are huge."""
        if len(type_) + len(target) + (len(agent) if agent else 0) > MAX_CACHED_KEY:
            return self.compute(type_, target, agent)
        return self.cached(type_, target, agent)

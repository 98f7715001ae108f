"""The policy as frozen values: what was written, after validation, before compilation.

Fields a policy may leave out are ``None`` here (``DefaultsSpec``, ``PolicyModel.timezone`` …)
so that merging can tell "not set" from "set to the default": a later file overrides only what
it sets. The effective values are resolved in one place, ``PolicyModel.effective_defaults``.

Inheritance: a rule without ``risk_level`` or ``approval`` takes the policy's effective default
for that field; a policy without ``defaults`` (or without one of its keys) gets ``medium`` risk
and ``approve`` — a human decides, never ``auto``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import cattrs

from aegis.core.risk import Approval, RiskLevel

DEFAULT_RISK = RiskLevel.MEDIUM
DEFAULT_APPROVAL = Approval.APPROVE
DEFAULT_TIMEZONE = "UTC"

Globs = tuple[str, ...] | None


@attrs.frozen
class Match:
    """Globs per action field; ``None`` means the field is not constrained."""

    type: Globs = None
    target: Globs = None
    agent: Globs = None


@attrs.frozen
class Rule:
    name: str
    match: Match = Match()
    conditions: Mapping[str, Any] | None = None
    risk_level: RiskLevel | None = None
    approval: Approval | None = None
    description: str = ""
    #: Raw ``approvers`` value (a list or mapping); ``aegis.core.approvers`` parses it.
    approvers: Any = None


@attrs.frozen
class DefaultsSpec:
    risk_level: RiskLevel | None = None
    approval: Approval | None = None


@attrs.frozen
class Defaults:
    """The effective defaults: what applies when no rule matches."""

    risk_level: RiskLevel
    approval: Approval


@attrs.frozen
class PolicyModel:
    version: str = "1"
    defaults: DefaultsSpec = DefaultsSpec()
    rules: tuple[Rule, ...] = ()
    timezone: str | None = None
    case_sensitive: bool | None = None

    @property
    def effective_defaults(self) -> Defaults:
        return Defaults(
            self.defaults.risk_level or DEFAULT_RISK,
            self.defaults.approval or DEFAULT_APPROVAL,
        )

    @property
    def effective_timezone(self) -> str:
        return self.timezone or DEFAULT_TIMEZONE

    def merged_with(self, later: PolicyModel) -> PolicyModel:
        """Rules in order (self's first); ``later`` overrides only the settings it sets."""
        return PolicyModel(
            version=later.version,
            defaults=DefaultsSpec(
                later.defaults.risk_level or self.defaults.risk_level,
                later.defaults.approval or self.defaults.approval,
            ),
            rules=self.rules + later.rules,
            timezone=later.timezone if later.timezone is not None else self.timezone,
            case_sensitive=(
                later.case_sensitive if later.case_sensitive is not None else self.case_sensitive
            ),
        )


def _globs(value: Any, _: Any) -> Globs:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


converter = cattrs.Converter(forbid_extra_keys=True)
converter.register_structure_hook(Globs, _globs)
converter.register_structure_hook(RiskLevel, lambda v, _: RiskLevel.parse(v))
converter.register_structure_hook(Approval, lambda v, _: Approval.parse(v))
converter.register_structure_hook(str, lambda v, _: str(v))
converter.register_structure_hook(
    Mapping[str, Any] | None, lambda v, _: None if v is None else dict(v)
)


def structure(data: Mapping[str, Any]) -> PolicyModel:
    """Validated data -> model (validation has already ruled out every structural problem)."""
    return converter.structure(data, PolicyModel)


def _rule_dict(rule: Rule) -> dict[str, Any]:
    out: dict[str, Any] = {"name": rule.name}
    if rule.description:
        out["description"] = rule.description
    match = {
        field: list(globs)
        for field in ("type", "target", "agent")
        if (globs := getattr(rule.match, field)) is not None
    }
    if match:
        out["match"] = match
    if rule.conditions is not None:
        out["conditions"] = rule.conditions
    if rule.risk_level is not None:
        out["risk_level"] = rule.risk_level.name.lower()
    if rule.approval is not None:
        out["approval"] = rule.approval.value
    if rule.approvers is not None:
        out["approvers"] = rule.approvers
    return out


def to_dict(model: PolicyModel) -> dict[str, Any]:
    """Plain data that ``Policy.from_dict`` accepts and that round-trips to an equal model."""
    out: dict[str, Any] = {"version": model.version}
    if model.timezone is not None:
        out["timezone"] = model.timezone
    if model.case_sensitive is not None:
        out["case_sensitive"] = model.case_sensitive
    defaults: dict[str, Any] = {}
    if model.defaults.risk_level is not None:
        defaults["risk_level"] = model.defaults.risk_level.name.lower()
    if model.defaults.approval is not None:
        defaults["approval"] = model.defaults.approval.value
    if defaults:
        out["defaults"] = defaults
    out["rules"] = [_rule_dict(rule) for rule in model.rules]
    return out

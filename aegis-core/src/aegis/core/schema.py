"""The policy language as JSON Schema (draft 2020-12), built from the registered conditions.

``policy_schema()`` is what ``aegis schema`` prints for editor autocomplete, and the loader
validates with the very same pieces, so a plugin's condition is checked exactly like a
built-in. Every object is closed (``additionalProperties: false``): a misspelt key is an
error, never silently ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import attrs

from aegis import plugins
from aegis.core.approvers import APPROVERS_SCHEMA
from aegis.core.condition import ConditionDef
from aegis.core.policy_fastcheck import Recogniser, compile_recogniser

DIALECT = "https://json-schema.org/draft/2020-12/schema"
COMBINATORS = ("all", "any", "not")
RISK_LEVELS = ["low", "medium", "high", "critical"]
APPROVALS = ["auto", "approve", "block"]
#: Marks the conditions object, so error messages can say "unknown condition" there.
CONDITIONS_TITLE = "conditions"

_GLOB: dict[str, Any] = {
    "description": "Glob (* ? [seq]) or list of globs; absent means any. Case-insensitive"
    " unless the policy sets case_sensitive: true.",
    "type": ["string", "array"],
    "minLength": 1,
    "items": {"type": "string", "minLength": 1},
    "minItems": 1,
}


def condition_defs() -> dict[str, ConditionDef]:
    """Every usable registered condition (a registration without a schema is not usable)."""
    out: dict[str, ConditionDef] = {}
    for name, reg in plugins.get_registry().of_kind("conditions").items():
        schema = reg.options.get("schema")
        if not isinstance(schema, Mapping) or name in COMBINATORS:
            continue
        out[name] = ConditionDef(
            name=name,
            factory=reg.obj,
            schema=schema,
            description=str(reg.options.get("description", "")),
            plugin=reg.plugin,
        )
    return out


def conditions_schema(defs: Mapping[str, ConditionDef], ref: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name, cdef in defs.items():
        fragment = dict(cdef.schema)
        if cdef.description and "description" not in fragment:
            fragment["description"] = cdef.description
        props[name] = fragment
    props["all"] = {
        "description": "Every listed condition mapping holds.",
        "type": "array",
        "minItems": 1,
        "items": {"$ref": ref},
    }
    props["any"] = {
        "description": "At least one listed condition mapping holds.",
        "type": "array",
        "minItems": 1,
        "items": {"$ref": ref},
    }
    props["not"] = {"description": "The condition mapping does not hold.", "$ref": ref}
    return {
        "title": CONDITIONS_TITLE,
        "description": "Conditions; several keys in one mapping must all hold. Unknown"
        " (unevaluable) conditions count as a match on approve/block rules, not on auto rules.",
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": props,
    }


def rule_schema(conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A rule; the first rule that matches an action decides.",
        "additionalProperties": False,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "description": "Unique rule name."},
            "description": {"type": "string"},
            "match": {
                "type": "object",
                "description": "Globs on the action; an absent field matches anything.",
                "additionalProperties": False,
                "properties": {"type": _GLOB, "target": _GLOB, "agent": _GLOB},
            },
            "conditions": conditions,
            "risk_level": {
                "enum": RISK_LEVELS,
                "description": "Defaults to the policy's defaults.risk_level.",
            },
            "approval": {
                "enum": APPROVALS,
                "description": "Defaults to the policy's defaults.approval.",
            },
            "approvers": APPROVERS_SCHEMA,
        },
    }


def document_schema(rules_items: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "version": {"enum": ["1", 1], "description": "Policy language version."},
            "timezone": {
                "type": "string",
                "minLength": 1,
                "description": "IANA zone for time conditions (default UTC).",
            },
            "case_sensitive": {
                "type": "boolean",
                "description": "Match globs case-sensitively (default false).",
            },
            "defaults": {
                "type": "object",
                "description": "Applies when no rule matches, and to rules that omit a field."
                " Without defaults: medium / approve.",
                "additionalProperties": False,
                "properties": {
                    "risk_level": {"enum": RISK_LEVELS},
                    "approval": {"enum": APPROVALS},
                },
            },
            "rules": {"type": "array", "items": rules_items},
        },
    }


def policy_schema() -> dict[str, Any]:
    """The full schema of a policy file, including every registered condition's fragment."""
    defs = condition_defs()
    schema = document_schema({"$ref": "#/$defs/rule"})
    return {
        "$schema": DIALECT,
        "$id": "https://aegis.invalid/policy.schema.json",
        "title": "Aegis policy",
        **schema,
        "$defs": {
            "rule": rule_schema({"$ref": "#/$defs/conditions"}),
            "conditions": conditions_schema(defs, "#/$defs/conditions"),
        },
    }


@attrs.frozen
class SchemaBundle:
    """What the loader needs, built once per plugin registry."""

    defs: dict[str, ConditionDef]
    document_schema: dict[str, Any]
    rule_schema: dict[str, Any]
    #: "Certainly valid" shortcuts in front of the validators (see policy_fastcheck).
    document_ok: Recogniser
    rule_ok: Recogniser
    _validators: dict[str, Any] = attrs.field(factory=dict, eq=False, repr=False)

    def document(self) -> Any:
        return self._validator("document", self.document_schema)

    def rule(self) -> Any:
        return self._validator("rule", self.rule_schema)

    def _validator(self, key: str, schema: dict[str, Any]) -> Any:
        # jsonschema (with referencing and rpds, ~10 MiB resident) is imported only when the
        # fast "certainly valid" check cannot vouch for a policy, i.e. mostly for bad input.
        validator = self._validators.get(key)
        if validator is None:
            import jsonschema  # type: ignore[import-untyped,unused-ignore]

            validator = jsonschema.Draft202012Validator(schema)
            self._validators[key] = validator
        return validator


_lock = threading.Lock()
_cached: tuple[object, SchemaBundle] | None = None


def bundle() -> SchemaBundle:
    """Validators for a document (rules unchecked) and for one rule, cached per registry."""
    global _cached
    registry = plugins.get_registry()
    with _lock:
        if _cached is not None and _cached[0] is registry:
            return _cached[1]
        defs = condition_defs()
        conds = conditions_schema(defs, "#/$defs/conditions")
        rule = {**rule_schema(conds), "$defs": {"conditions": conds}}
        document = document_schema({})
        built = SchemaBundle(
            defs=defs,
            document_schema=document,
            rule_schema=rule,
            document_ok=compile_recogniser(document),
            rule_ok=compile_recogniser(rule),
        )
        _cached = (registry, built)
        return built

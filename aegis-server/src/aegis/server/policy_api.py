"""The policy over HTTP: read it, replace it, simulate against it (or against pasted YAML),
and its numbered versions (history, one version, a diff, rollback).

Every accepted policy is a version in the audit database (``aegis.runtime.policy_versions``);
each replica follows the newest one, so a change made through any replica, or with ``aegis
policy rollback`` in a terminal, is in force on all of them within the check interval (and on
the replica that took it at once). Replacing or rolling back needs ``admin`` — which the
anonymous caller of a key-less server never has. A text that does not load is ``422`` with
every problem as ``line:col: key: message``; nothing is stored and the old policy stays.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from litestar.params import JSONBody, PathParameter, QueryParameter

from aegis.core.policy import Policy
from aegis.core.policy_diff import sampled_diff, text_diff, to_json
from aegis.errors import PolicyError
from aegis.runtime.policy_versions import PolicyVersion, VersionedPolicy
from aegis.server.api import ActionBody, to_action
from aegis.server.context import Context, context
from aegis.server.errors import ApiError
from aegis.server.openapi import InForce, PolicyDiff, Simulated, StoredVersion, Versions
from aegis.server.routes import Req, endpoint, key_of
from aegis.server.views import decision_dict

MAX_VERSION = 2**31 - 1
MAX_YAML = 500_000
MAX_SIMULATE = 200

Version = Annotated[int, PathParameter(ge=1, le=MAX_VERSION)]


class PolicyText(msgspec.Struct, forbid_unknown_fields=True):
    yaml: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_YAML)]
    note: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class RollbackBody(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class SimulateBody(msgspec.Struct, forbid_unknown_fields=True):
    actions: Annotated[list[ActionBody], msgspec.Meta(min_length=1, max_length=MAX_SIMULATE)]
    #: Pasted YAML to decide with instead of the policy in force (never stored).
    yaml: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_YAML)] | None = None


def versioned(ctx: Context) -> VersionedPolicy:
    source = ctx.runtime.policy
    if not isinstance(source, VersionedPolicy):
        raise ApiError(
            409,
            "policy not versioned",
            "this server was given a policy object, not a file: it keeps no versions",
        )
    return source


def load_text(text: str) -> Policy:
    """The policy in ``text``, or 422 listing every problem as ``line:col: key: message``."""
    try:
        return Policy.from_yaml_string(text, source="yaml")
    except PolicyError as exc:
        raise ApiError(422, "invalid policy", [str(i) for i in exc.issues]) from exc


def _in_force(ctx: Context) -> dict[str, Any]:
    source = ctx.runtime.policy
    out: dict[str, Any] = {"fingerprint": getattr(source, "fingerprint", None)}
    if isinstance(source, VersionedPolicy):
        out.update(source.current.to_dict(with_yaml=True))
    to_dict = getattr(source, "to_dict", None)
    out["policy"] = to_dict() if callable(to_dict) else None
    return out


async def _version(ctx: Context, number: int) -> PolicyVersion:
    found = await asyncio.to_thread(versioned(ctx).history.get, number)
    if found is None:
        raise ApiError(404, "no such policy version", f"version {number} does not exist")
    return found


async def _switch(ctx: Context, made: PolicyVersion) -> dict[str, Any]:
    """After storing a version: put it in force here now (the others follow by polling)."""
    source = versioned(ctx)
    await asyncio.to_thread(source.refresh)
    await ctx.service.tell("policy")
    return {**made.to_dict(), "in_force": source.version}


@endpoint(
    "GET", "/api/v1/policy", "audit:read", ok=InForce, summary="The policy in force: version, YAML"
)
async def policy(request: Req) -> dict[str, Any]:
    ctx = context(request)
    return _in_force(ctx)


@endpoint(
    "PUT",
    "/api/v1/policy",
    "admin",
    ok=StoredVersion,
    errors=(400, 409, 413, 422),
    summary="Replace the policy (admin): a new version, in force on every replica",
)
async def replace_policy(request: Req, data: JSONBody[PolicyText]) -> dict[str, Any]:
    ctx = context(request)
    key = key_of(request)
    source = versioned(ctx)
    loaded = load_text(data.yaml)
    if loaded.fingerprint == source.fingerprint and source.current.yaml == data.yaml:
        return {**source.current.to_dict(), "in_force": source.version, "changed": False}
    made = await asyncio.to_thread(
        source.history.add,
        data.yaml,
        author=f"key:{key.name}",
        source="api",
        note=data.note,
        policy=loaded,
    )
    return {**await _switch(ctx, made), "changed": True}


@endpoint(
    "POST",
    "/api/v1/policy/simulate",
    "evaluate",
    ok=Simulated,
    errors=(400, 413, 422),
    summary="Decide actions with the policy in force, or with pasted YAML (nothing stored)",
)
async def simulate(request: Req, data: JSONBody[SimulateBody]) -> dict[str, Any]:
    ctx = context(request)
    key = key_of(request)
    actions = [to_action(b, key.agent) for b in data.actions]
    if data.yaml is None:
        decisions = [ctx.runtime.evaluate(a) for a in actions]
        version = getattr(ctx.runtime.policy, "version", None)
        fingerprint = getattr(ctx.runtime.policy, "fingerprint", None)
    else:
        pasted = load_text(data.yaml)
        decisions = [pasted.evaluate(a) for a in actions]
        version, fingerprint = None, pasted.fingerprint
    return {
        "version": version if isinstance(version, int) else None,
        "fingerprint": fingerprint,
        "stored": False,
        "decisions": [decision_dict(d) for d in decisions],
    }


@endpoint(
    "GET",
    "/api/v1/policy/versions",
    "audit:read",
    ok=Versions,
    errors=(400, 409),
    summary="Stored policy versions, newest first (?before= pages back)",
)
async def versions(
    request: Req,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    before: Annotated[int | None, QueryParameter(ge=1, le=MAX_VERSION)] = None,
) -> dict[str, Any]:
    ctx = context(request)
    source = versioned(ctx)
    found = await asyncio.to_thread(source.history.list, limit=limit, before=before)
    return {"in_force": source.version, "versions": [v.to_dict() for v in found]}


@endpoint(
    "GET",
    "/api/v1/policy/versions/{version:int}",
    "audit:read",
    ok=StoredVersion,
    errors=(400, 404, 409),
    summary="One stored version, with its YAML",
)
async def version(request: Req, version: Version) -> dict[str, Any]:
    ctx = context(request)
    return (await _version(ctx, version)).to_dict(with_yaml=True)


@endpoint(
    "GET",
    "/api/v1/policy/diff",
    "audit:read",
    ok=PolicyDiff,
    errors=(400, 404, 409),
    summary="Text diff of two versions and the sampled actions whose decision changes",
)
async def diff(
    request: Req,
    old: Annotated[int, QueryParameter(name="from", ge=1, le=MAX_VERSION)],
    new: Annotated[int | None, QueryParameter(name="to", ge=1, le=MAX_VERSION)] = None,
    examples: Annotated[int, QueryParameter(ge=0, le=50)] = 5,
) -> dict[str, Any]:
    ctx = context(request)
    target = new if new is not None else versioned(ctx).version
    before, after = await _version(ctx, old), await _version(ctx, target)

    def compute() -> dict[str, Any]:
        changed = sampled_diff(before.load(), after.load())
        return {
            "from": old,
            "to": target,
            "text": text_diff(before.yaml, after.yaml, old_name=f"v{old}", new_name=f"v{target}"),
            "sampled": to_json(changed, examples),
        }

    try:
        return await asyncio.to_thread(compute)
    except PolicyError as exc:  # a row edited by hand so it no longer loads
        raise ApiError(409, "version does not load", str(exc.issues[0])) from exc


@endpoint(
    "POST",
    "/api/v1/policy/rollback/{version:int}",
    "admin",
    ok=StoredVersion,
    errors=(400, 404, 409, 413),
    summary="Make an old version's text the newest version (admin)",
)
async def rollback(
    request: Req, version: Version, data: JSONBody[RollbackBody | None] = None
) -> dict[str, Any]:
    ctx = context(request)
    key = key_of(request)
    source = versioned(ctx)
    await _version(ctx, version)
    note = data.note if data is not None else None
    try:
        made = await asyncio.to_thread(
            source.history.rollback, version, author=f"key:{key.name}", note=note
        )
    except PolicyError as exc:
        raise ApiError(409, "version does not load", str(exc.issues[0])) from exc
    return await _switch(ctx, made)


HANDLERS = [policy, replace_policy, simulate, versions, version, diff, rollback]

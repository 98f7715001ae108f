"""One multi-agent task as a tree (``aegis audit --chain ID``).

Actions carry ``chain_id`` (the task), ``agent_id`` (who acted), ``parent_agent_id`` (who handed
the work down) and ``chain_depth`` (how many hand-offs deep). The tree is of agents: each agent
sits under the agent that delegated to it, with its own actions listed in order. An agent whose
parent never acted in the chain (or a cycle, which a well-behaved system never records) is shown
at the top level with its parent named, so no action of the chain is ever left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, select

from aegis.runtime.audit.migrate import readable
from aegis.runtime.audit.record import AuditRecord
from aegis.runtime.audit.schema import audit_log, record_source, with_side_params


def chain_records(engine: Engine, chain_id: str) -> list[AuditRecord]:
    """Every record of one chain, in chain order (uses the partial index on chain_id)."""
    cols = readable(engine, (c for c in audit_log.c if c.name != "owner"))
    stmt = (
        select(*with_side_params(cols))
        .select_from(record_source())
        .where(audit_log.c.chain_id == chain_id)
        .order_by(audit_log.c.id)
    )
    with engine.connect() as conn:
        return [AuditRecord.from_mapping(row) for row in conn.execute(stmt).mappings()]


def _agent(record: AuditRecord) -> str:
    return record.agent_id or "(no agent)"


def chain_tree(records: Sequence[AuditRecord]) -> list[str]:
    """Text lines of the tree, two spaces per level."""
    by_agent: dict[str, list[AuditRecord]] = {}
    parent_of: dict[str, str | None] = {}
    for rec in records:
        agent = _agent(rec)
        by_agent.setdefault(agent, []).append(rec)
        parent_of.setdefault(agent, rec.parent_agent_id)
    children: dict[str | None, list[str]] = {}
    roots: list[str] = []
    for agent, parent in parent_of.items():
        if parent is not None and parent in by_agent and not _reaches(parent, agent, parent_of):
            children.setdefault(parent, []).append(agent)
        else:
            roots.append(agent)
    lines: list[str] = []

    def show(agent: str, level: int) -> None:
        pad = "  " * level
        parent = parent_of.get(agent)
        note = f" (delegated by {parent})" if parent else ""
        lines.append(f"{pad}{agent}{note}")
        for rec in by_agent[agent]:
            depth = "" if rec.chain_depth is None else f" depth {rec.chain_depth}"
            lines.append(
                f"{pad}  #{rec.id} {rec.action_type} {rec.target}: {rec.result}, "
                f"{rec.decision}{depth}"
            )
        for child in children.get(agent, []):
            show(child, level + 1)

    for root in roots:
        show(root, 0)
    return lines


def _reaches(start: str, goal: str, parent_of: dict[str, str | None]) -> bool:
    """Whether walking up parents from ``start`` arrives at ``goal`` (a cycle)."""
    seen: set[str] = set()
    node: str | None = start
    while node is not None and node not in seen:
        if node == goal:
            return True
        seen.add(node)
        node = parent_of.get(node)
    return False

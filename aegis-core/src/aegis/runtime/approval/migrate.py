"""Bringing an older store's approval tables up to date when its book is first used.

So far one change: the full index on ``aegis_approval_request.state`` became a partial one on
pending requests (``approval.schema``). Both answer every query correctly (the state filter is
in the query either way), so a store that cannot be changed (a read-only copy, a user without
DDL rights) keeps working with the old index; only its writes pay for the extra B-tree.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, inspect, text
from sqlalchemy.schema import CreateIndex

from aegis.runtime.approval.schema import requests

log = logging.getLogger("aegis.approvals")

#: The index on state of stores from before the partial one.
OLD_STATE_INDEX = "ix_aegis_approval_request_state"


def ensure_indexes(engine: Engine) -> None:
    """Create the request table's current indexes and drop the replaced one, if needed.

    Idempotent, and safe when another process does the same at the same moment (``IF NOT
    EXISTS`` / ``IF EXISTS``, retried once). A failure is logged, never raised: see above.
    """
    try:
        have = {ix["name"] for ix in inspect(engine).get_indexes(requests.name)}
        wanted = {ix.name for ix in requests.indexes}
        if wanted <= have and OLD_STATE_INDEX not in have:
            return
        for attempt in (1, 2):
            try:
                with engine.begin() as conn:
                    for index in requests.indexes:
                        conn.execute(CreateIndex(index, if_not_exists=True))
                    conn.execute(text(f"DROP INDEX IF EXISTS {OLD_STATE_INDEX}"))
                return
            except Exception:
                if attempt == 2:
                    raise
    except Exception:
        log.warning(
            "could not update the approval request indexes (the store still works, its writes"
            " pay for one more index)",
            exc_info=True,
        )

"""Bringing an older store's approval tables up to date when its book is first used.

Two changes so far, each optional for a store that cannot be changed (a read-only copy, a user
without DDL rights): it keeps working as it did, a little slower.

* The full index on ``aegis_approval_request.state`` became a partial one on pending requests
  (``approval.schema``). Both answer every query correctly (the state filter is in the query
  either way); with the old one, writes pay for the extra B-tree.
* ``aegis_approval_request.answer`` (the one answer of an ``auto`` approval, kept in its
  request row: ``approval.alongside``). A book whose store lacks it reads NULL in its place
  and writes that answer as an answer row, as before (``ensure_answer_column`` says which).
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError
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


#: The column ``ensure_answer_column`` adds (nullable: no row is rewritten).
ANSWER_COLUMN = "answer"


def _has_answer_column(engine: Engine) -> bool:
    names = {c["name"] for c in inspect(engine).get_columns(requests.name)}
    return ANSWER_COLUMN in names


def ensure_answer_column(engine: Engine) -> bool:
    """Add ``aegis_approval_request.answer`` to an older store; whether the store has it now.

    Idempotent, and safe when another process adds it at the same moment (PostgreSQL: ``ADD
    COLUMN IF NOT EXISTS``; elsewhere the column is looked for first, and an ALTER that fails
    because it is there by then counts as done). Never raises: a store where it cannot be
    added (read-only, no DDL rights) answers False, and its ``auto`` answers are written as
    answer rows, as before this column existed.
    """
    try:
        if _has_answer_column(engine):
            return True
        guard = " IF NOT EXISTS" if engine.dialect.name == "postgresql" else ""
        statement = f"ALTER TABLE {requests.name} ADD COLUMN{guard} {ANSWER_COLUMN} TEXT"
        try:
            with engine.begin() as conn:
                conn.execute(text(statement))
            return True
        except SQLAlchemyError:
            # "duplicate column" (another process added it since we looked) is success; any
            # other failure shows on the re-check.
            if _has_answer_column(engine):
                return True
            raise
    except Exception:
        log.warning(
            "could not add the answer column to the approval request table (the store still"
            " works: an auto approval's answer is written as an answer row)",
            exc_info=True,
        )
        return False

"""Ids typed by a human: a unique prefix stands for the whole id.

Tables show ids shortened (``c15342c3...``), so every option that takes an id accepts what the
table shows: the shown characters, with or without the ellipsis, or any longer prefix, as long as
exactly one known id starts with it. An exact id always wins, even when it is also the prefix of
another (``s1`` next to ``s10``). Ambiguity is a usage error that lists the candidates, never a
silent pick: the id chooses which records a command reads or which request it answers.

``resolve_prefix`` is generic (sessions here, approval requests in ``aegis approvals``); the
caller supplies the candidates, already narrowed by its store when it can.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from aegis.cli.errors import CliError, ExitCode

if TYPE_CHECKING:
    from aegis.runtime.audit import AuditStore

#: What tables append to a shortened id; pasted back, it is ignored.
ELLIPSES = ("...", "\u2026")
#: Candidates named in an "ambiguous" message before "and N more".
SHOWN = 3


def normalise_prefix(given: str) -> str:
    """The prefix a user meant: surrounding blanks and a trailing ellipsis removed."""
    text = given.strip()
    for ellipsis in ELLIPSES:
        if text.endswith(ellipsis):
            return text[: -len(ellipsis)].rstrip()
    return text


def matching_ids(given: str, candidates: Iterable[str]) -> list[str]:
    """The candidates ``given`` can stand for: ``[exact]`` if one equals it, else every id that
    starts with the normalised prefix (sorted, duplicates dropped)."""
    prefix = normalise_prefix(given)
    if not prefix:
        return []
    found: set[str] = set()
    for candidate in candidates:
        if candidate == given.strip() or candidate == prefix:
            return [candidate]
        if candidate.startswith(prefix):
            found.add(candidate)
    return sorted(found)


def resolve_prefix(
    given: str,
    candidates: Iterable[str],
    *,
    what: str,
    option: str,
    missing_code: ExitCode = ExitCode.USAGE,
) -> str:
    """The one id ``given`` stands for, or ``CliError`` (one line) naming the option.

    ``what`` names the kind of id in messages ("session", "approval request"); ``missing_code``
    is the exit code when nothing matches (ambiguity is always a usage error, exit 2).
    """
    if not normalise_prefix(given):
        raise CliError(f"{option} {given!r}: empty id", ExitCode.USAGE)
    matches = matching_ids(given, candidates)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CliError(f"{option} {given!r}: no {what} has this id or starts with it", missing_code)
    shown = ", ".join(matches[:SHOWN])
    more = f" and {len(matches) - SHOWN} more" if len(matches) > SHOWN else ""
    raise CliError(
        f"{option} {given!r}: {len(matches)} {what}s start with it ({shown}{more}); "
        "give more characters",
        ExitCode.USAGE,
    )


def resolve_session(store: AuditStore, given: str, *, option: str = "--session") -> str:
    """A ``--session`` value as the full session id.

    A value that no recorded session matches is returned unchanged: the filter then shows
    nothing, and ``--tail --session ID`` can wait for a session that has not started yet.
    """
    prefix = normalise_prefix(given)
    if not prefix:
        raise CliError(f"{option} {given!r}: empty id")
    if store.query(session=given.strip(), limit=1):
        return given.strip()
    candidates = store.session_ids(prefix)
    if not candidates:
        return given.strip()
    return resolve_prefix(given, candidates, what="session", option=option)

"""``aegis policy history|show|diff|rollback``: the policy versions kept in the audit database.

In the core CLI (not the server's) because they work on the database alone: an operator can
roll back from any terminal while every ``aegis serve`` replica on that database switches to
the new version within a second, and see who changed what without a server running.
Exit codes: 0 done; 2 bad arguments or an unknown version; 3 store unreachable.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import TYPE_CHECKING, Annotated, Literal

from cyclopts import App, Parameter

from aegis.cli.db_option import DbOption, open_store
from aegis.cli.errors import CliError, ExitCode
from aegis.cli.output import print_message, print_table

if TYPE_CHECKING:
    from aegis.runtime.policy_versions import PolicyHistory, PolicyVersion

POLICY_HELP = "Policy versions in the audit database: history, show, diff, rollback."

Format = Annotated[Literal["table", "json"], Parameter(alias="-f", help="Output format.")]


def build() -> App:
    app = App(name="policy", help=POLICY_HELP)
    app.command(history, name="history")
    app.command(show, name="show")
    app.command(diff_versions, name="diff")
    app.command(rollback, name="rollback")
    return app


def _history(db: str | None) -> PolicyHistory:
    from aegis.runtime.policy_versions import PolicyHistory

    return PolicyHistory(open_store(db))


def _version(history: PolicyHistory, number: int) -> PolicyVersion:
    found = history.get(number)
    if found is None:
        head = history.head()
        known = f"versions 1-{head}" if head else "no versions yet"
        raise CliError(f"no policy version {number} ({known})")
    return found


def history(
    *,
    limit: Annotated[int, Parameter(alias="-n", help="At most this many, newest first.")] = 50,
    format: Format = "table",
    db: DbOption = None,
) -> int:
    """Every stored policy version, newest first: number, when, who, how, fingerprint."""
    found = _history(db).list(limit=limit)
    if format == "json":
        sys.stdout.write(json.dumps([v.to_dict() for v in found], indent=2) + "\n")
        return ExitCode.OK
    if not found:
        print_message("no policy versions stored yet (aegis serve stores its policy file as 1)")
        return ExitCode.OK
    rows = [
        (
            str(v.version),
            v.to_dict()["created_at"],
            v.author,
            v.source if v.rolled_back_to is None else f"rollback to {v.rolled_back_to}",
            v.note or "",
            v.fingerprint[:12],
        )
        for v in found
    ]
    print_table(
        ("Version", "At", "Author", "Source", "Note", "Fingerprint"), rows, title="Policy versions"
    )
    return ExitCode.OK


def show(version: int, /, *, db: DbOption = None) -> int:
    """Print one version's YAML exactly as it was stored."""
    sys.stdout.write(_version(_history(db), version).yaml)
    return ExitCode.OK


def diff_versions(
    old: int,
    new: int,
    /,
    *,
    examples: int = 5,
    format: Format = "table",
    db: DbOption = None,
) -> int:
    """The text diff of two versions and the sampled actions whose decision changes (as in
    ``aegis diff``)."""
    from aegis.core.policy_diff import sampled_diff, text_diff, to_json, to_text

    store = _history(db)
    before, after = _version(store, old), _version(store, new)
    changed = sampled_diff(before.load(), after.load())
    text = text_diff(before.yaml, after.yaml, old_name=f"v{old}", new_name=f"v{new}")
    if format == "json":
        payload = {"old": old, "new": new, "text": text, "sampled": to_json(changed, examples)}
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return ExitCode.OK
    sys.stdout.write(text or f"v{old} and v{new} have the same text\n")
    sys.stdout.write("\n" + to_text("sampled from both versions' rules", changed, examples))
    return ExitCode.OK


def rollback(
    version: int,
    /,
    *,
    note: Annotated[str | None, Parameter(help="Why: stored with the new version.")] = None,
    db: DbOption = None,
) -> int:
    """Make ``version``'s text the newest version (a new number; the history only grows).

    Running servers on this database switch to it within their check interval.
    """
    store = _history(db)
    _version(store, version)
    try:
        who = getpass.getuser()
    except Exception:
        who = "local"
    made = store.rollback(version, author=f"cli:{who}", note=note)
    print_message(
        f"policy version {made.version} stored (the text of version {version}), by cli:{who}"
    )
    return ExitCode.OK

"""Evidence commands: ``keys generate``, ``audit checkpoint|prove|verify-proof|recover``.

``aegis audit verify --checkpoint FILE... --public-key KEY`` (in ``audit_cmds``) hands over to
``verify_with_checkpoints`` here. What a third party needs is the public key and the checkpoint
files (or a proof file); none of it comes from the database being checked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from cyclopts import App, Parameter

from aegis.cli.db_option import DbOption, open_store
from aegis.cli.errors import CliError, ExitCode
from aegis.cli.output import write_verdict

KEYS_HELP = "Signing keys for audit checkpoints (Ed25519)."


def register(app: App, audit_app: App) -> None:
    keys_app = App(name="keys", help=KEYS_HELP)
    keys_app.command(generate, name="generate")
    keys_app.command(field_key, name="field-key")
    app.command(keys_app)
    audit_app.command(checkpoint, name="checkpoint")
    audit_app.command(prove, name="prove")
    audit_app.command(verify_proof_cmd, name="verify-proof")
    audit_app.command(recover, name="recover")
    audit_app.command(hash_value, name="hash")


def generate(
    *,
    out: Path = Path("."),
    name: str = "aegis",
    force: Annotated[bool, Parameter(negative="")] = False,
) -> int:
    """Make an Ed25519 key pair: NAME.key (private, mode 0600) and NAME.pub (give it to auditors).

    Parameters
    ----------
    out
        Directory for the two files (default: the current directory).
    name
        File name stem (default: aegis).
    force
        Replace existing files (an auditor holding the old public key can no longer verify).
    """
    from aegis.runtime.audit.keys import generate_keypair

    private, public = out / f"{name}.key", out / f"{name}.pub"
    kid = generate_keypair(private, public, overwrite=force)
    sys.stdout.write(
        f"key id {kid}\nprivate key: {private} (keep it secret)\npublic key:  {public}\n"
    )
    return ExitCode.OK


def checkpoint(
    *,
    key: Path,
    db: DbOption = None,
    out: Annotated[Path | None, Parameter(alias="-o")] = None,
) -> int:
    """Sign a checkpoint of the trail (size, head hash, Merkle root, time, key id).

    Keep checkpoints away from the database (another machine, WORM storage, a ticket): they
    are what shows a later rewrite, truncation or fork.

    Parameters
    ----------
    key
        The private key file (aegis keys generate).
    db
        Audit store URL (default: $AEGIS_AUDIT_URL or sqlite:///aegis_audit.db).
    out
        A file, or a directory to add a new file to (default: print the JSON).
    """
    from aegis.runtime.audit.checkpoint import make_checkpoint, write_checkpoint
    from aegis.runtime.audit.keys import load_private_key

    signer = load_private_key(key)
    store = open_store(db)
    cp = store.read(make_checkpoint, signer)
    if out is None:
        sys.stdout.write(cp.to_json())
    else:
        path = write_checkpoint(cp, out)
        sys.stderr.write(f"checkpoint of {cp.size} records, {cp.finals} outcomes: {path}\n")
    return ExitCode.OK


def verify_with_checkpoints(
    db: str | None, checkpoints: list[Path], public_key: Path | None, fmt: str
) -> int:
    from aegis.runtime.audit.checkpoint import load_checkpoints
    from aegis.runtime.audit.evidence import verify_against
    from aegis.runtime.audit.keys import load_public_key

    if public_key is None:
        raise CliError("--checkpoint needs --public-key (the key that signed the checkpoints)")
    key = load_public_key(public_key)
    cps = load_checkpoints(checkpoints)
    if not cps:
        raise CliError(f"no checkpoint files in {', '.join(map(str, checkpoints))}")
    return write_verdict(open_store(db).read(verify_against, cps, key), fmt)


def prove(
    record_id: int | None = None,
    /,
    *,
    checkpoint: list[Path] | None = None,
    consistency: tuple[Path, Path] | None = None,
    db: DbOption = None,
    out: Annotated[Path | None, Parameter(alias="-o")] = None,
) -> int:
    """Write a proof, checkable offline: that one record is part of a checkpointed trail, or
    (--consistency OLD NEW) that the trail NEW signed extends the one OLD signed.

    Parameters
    ----------
    record_id
        The audit record id (for an inclusion proof).
    checkpoint
        Checkpoint file(s) or directory; the newest that covers the record is used.
    consistency
        Two checkpoint files, the older first: prove the later trail extends the earlier.
    db
        Audit store URL (default: $AEGIS_AUDIT_URL or sqlite:///aegis_audit.db).
    out
        Write the proof here (default: print it).
    """
    if consistency is not None:
        if record_id is not None or checkpoint:
            raise CliError("--consistency OLD NEW takes no record id and no --checkpoint")
        return _prove_consistency(consistency[0], consistency[1], db, out)
    if record_id is None:
        raise CliError("give a record id (with --checkpoint), or --consistency OLD NEW")
    checkpoint = checkpoint or []
    from aegis.runtime.audit.checkpoint import load_checkpoints
    from aegis.runtime.audit.proof import prove as make_proof

    cps = load_checkpoints(checkpoint)
    if not cps:
        raise CliError("--checkpoint: no checkpoint files given")
    store = open_store(db)
    record = store.get(record_id)
    if record is None:
        raise CliError(f"no audit record {record_id}", ExitCode.CHECK_FAILED)
    seq = record.final_seq
    covering = [cp for cp in cps if seq is not None and cp.finals >= seq]
    chosen = max(covering or cps, key=lambda cp: (cp.finals, cp.time))
    proof = store.read(make_proof, record_id, chosen)
    return _emit(proof, out, f"proof of record {record_id} against {chosen.name}")


def _prove_consistency(old_file: Path, new_file: Path, db: str | None, out: Path | None) -> int:
    from aegis.runtime.audit.checkpoint import Checkpoint
    from aegis.runtime.audit.consistency import prove_consistency

    old, new = Checkpoint.load(old_file), Checkpoint.load(new_file)
    store = open_store(db)
    proof = store.read(prove_consistency, old, new)
    return _emit(proof, out, f"consistency proof {old.name} -> {new.name}")


def _emit(proof: dict[str, Any], out: Path | None, what: str) -> int:
    """Print the proof, or write it to ``out`` and say so on stderr (stdout stays clean)."""
    text = json.dumps(proof, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
        sys.stderr.write(f"{what}: {out}\n")
    return ExitCode.OK


def verify_proof_cmd(
    proof: Path,
    /,
    *,
    public_key: Path,
    format: Annotated[Literal["text", "json"], Parameter(alias="-f")] = "text",
) -> int:
    """Check a proof file offline: no database, only the proof and the public key.

    Exit 0 when the record is part of the signed trail (or, for a consistency proof, the later
    trail extends the earlier), 1 when it is not.

    Parameters
    ----------
    proof
        The proof file (aegis audit prove).
    public_key
        The public key of the checkpoint signer.
    format
        text or json.
    """
    from aegis.runtime.audit.keys import load_public_key
    from aegis.runtime.audit.proof import verify_proof

    key = load_public_key(public_key)
    try:
        data: Any = json.loads(proof.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read {proof}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CliError(f"{proof}: not JSON ({exc})", ExitCode.CHECK_FAILED) from None
    if isinstance(data, dict) and data.get("format") == "aegis-consistency/1":
        from aegis.runtime.audit.consistency import verify_consistency

        report = verify_consistency(data, key)
    else:
        report = verify_proof(data, key)
    return write_verdict(report, format)


def recover(*, db: DbOption = None, older_than: str | None = None) -> int:
    """Mark records left 'pending' by processes that died as 'interrupted'.

    Opening a store does this too, for processes on this host. Rows owned by another host, or
    written before owners were recorded, are closed only with --older-than.

    Parameters
    ----------
    db
        Audit store URL (default: $AEGIS_AUDIT_URL or sqlite:///aegis_audit.db).
    older_than
        Also close pending rows whose owner cannot be checked from here, if at least this old
        (30m, 1h, 2d).
    """
    import datetime as dt

    from aegis.cli.parsing import parse_since

    span = None
    if older_than is not None:
        try:
            span = dt.datetime.now(dt.UTC) - parse_since(older_than)
        except CliError:
            raise CliError(
                f"--older-than {older_than!r}: expected a span like 30m, 1h, 2d"
            ) from None
    store = open_store(db)
    store.open_sync()
    try:
        closed = [*store.interrupted, *store.recover(older_than=span)]
        still = store.count(result="pending")
    finally:
        store.close_sync()
    shown = ", ".join(map(str, closed[:20])) + (" ..." if len(closed) > 20 else "")
    sys.stdout.write(
        f"marked {len(closed)} record(s) interrupted{': ' + shown if closed else ''}; "
        f"{still} still pending\n"
    )
    return ExitCode.OK


def show_chain(db: str | None, chain_id: str, fmt: Literal["table", "json", "jsonl", "csv"]) -> int:
    """``aegis audit --chain ID``: the tree (table format) or the chain's records (json/jsonl)."""
    from aegis.runtime.audit.delegation import chain_records, chain_tree

    store = open_store(db)
    records = store.read(chain_records, chain_id)
    if not records:
        sys.stderr.write(f"no audit records in chain {chain_id!r}\n")
        return ExitCode.OK
    if fmt == "table":
        agents = len({r.agent_id for r in records})
        sys.stdout.write(f"chain {chain_id}: {len(records)} action(s), {agents} agent(s)\n")
        sys.stdout.write("\n".join(chain_tree(records)) + "\n")
        return ExitCode.OK
    from aegis.cli.audit_view import record_columns
    from aegis.cli.output import write_records

    write_records((r.to_dict() for r in records), fmt, sys.stdout, columns=record_columns())
    return ExitCode.OK


def field_key(
    *,
    out: Path = Path("aegis.fieldkey"),
    force: Annotated[bool, Parameter(negative="")] = False,
) -> int:
    """Make a secret key for keyed redaction (redacted values stored as HMAC tags).

    Parameters
    ----------
    out
        The key file to write (mode 0600; default: aegis.fieldkey).
    force
        Replace an existing file (tags made with the old key can no longer be matched).
    """
    from aegis.core.redact_keyed import generate_field_key

    try:
        generate_field_key(out, overwrite=force)
    except FileExistsError as exc:
        raise CliError(str(exc)) from None
    sys.stdout.write(f"field key: {out} (keep it secret, and away from the audit database)\n")
    return ExitCode.OK


def hash_value(
    value: str,
    /,
    *,
    field_key: Path,
    db: DbOption = None,
    search: Annotated[bool, Parameter(negative="")] = False,
) -> int:
    """Print the tag a redacted VALUE is stored as; with --search, the records that hold it.

    Exit 0, or 1 when --search finds no record.

    Parameters
    ----------
    value
        The value to look for, exactly as the agent passed it (1234 and "1234" are the same).
    field_key
        The store's field key file (aegis keys field-key).
    db
        Audit store URL for --search (default: $AEGIS_AUDIT_URL or sqlite:///aegis_audit.db).
    search
        Also list the ids of records whose params hold this tag (a full scan).
    """
    from aegis.core.redact_keyed import field_tag, load_field_key

    try:
        key = load_field_key(field_key)
    except (OSError, ValueError) as exc:
        raise CliError(f"--field-key: {exc}") from None
    tag = field_tag(key, value)
    sys.stdout.write(tag + "\n")
    if not search:
        return ExitCode.OK
    from aegis.runtime.audit.search import records_holding

    store = open_store(db)
    ids = store.read(records_holding, tag)
    shown = ", ".join(map(str, ids[:50])) + (" ..." if len(ids) > 50 else "")
    sys.stdout.write(f"{len(ids)} record(s){': ' + shown if ids else ''}\n")
    return ExitCode.OK if ids else ExitCode.CHECK_FAILED

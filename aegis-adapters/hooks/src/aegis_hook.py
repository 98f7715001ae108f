"""``aegis-hook AGENT --policy FILE ...``: the hook command, a client of the hook daemon.

A coding agent starts a new process for every tool call, so this module imports only the
standard library (``import aegis`` alone costs ~80 ms, SQLAlchemy and the policy loader much
more). It sends the payload to a resident ``aegis hook daemon`` over a Unix socket and prints
the daemon's answer. When there is no daemon it starts one (``--daemon auto``, the default) and
decides this one call in-process, as ``--daemon off`` always does.

Even the standard library is chosen by start-up cost (measured, one new process each, against
``python -c pass`` at ~15 ms): ``typing`` +15 ms, ``json`` +12 (it brings ``re`` and ``enum``),
``socket`` +12 (``selectors``, ``enum``), ``hashlib`` +5 (OpenSSL); the C cores ``_socket``
and ``_blake2`` cost ~1-2 ms together. So the fast path uses those, speaks a length-prefixed
frame of strings instead of JSON (``frame``/``unframe``), and imports ``json`` only on the
paths that are slow anyway (starting a daemon, denying, an old daemon's answer).

Trust, checked on every call; anything that fails is never an "allow":

* the socket's directory and the socket belong to this user and nobody else can enter or open
  them (0700 / 0600); the process at the other end runs as this user (``SO_PEERCRED``);
* the daemon serves only callers configured exactly like it (policy path, audit URL, map,
  rules waited on, handler, timeouts; the socket's name is a digest of them) and only with the
  policy file's current content (its digest is sent with each call; it reloads a changed file);
* before the payload is sent, an unreachable, stale, foreign or mismatched daemon means "decide
  in-process"; once sent, no answer, a broken answer or a timeout means "deny": the call may
  have been recorded, so it is not decided twice.
"""

from __future__ import annotations

import _socket
import os
import sys

try:
    from _blake2 import blake2b as _hasher
except ImportError:  # a build without it: OpenSSL's SHA-256 (a few ms more); the daemon agrees
    from hashlib import sha256 as _hasher  # type: ignore[assignment]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

AGENTS = ("claude-code", "cursor", "codex")
USAGE = (
    "usage: aegis-hook {claude-code,cursor,codex} --policy FILE [--db URL] [--map FILE] "
    "[--wait RULE]... [--approval-handler NAME] [--approval-timeout S] [--report-timeout S] "
    "[--socket PATH] [--daemon auto|running|off]"
)
CONNECT_TIMEOUT = 1.0
ANSWER_TIMEOUT = 10.0  # when no rule waits on a human
MAX_ANSWER = 64 * 1024 * 1024
#: First field of a request; a daemon that does not know it refuses before deciding.
PROTOCOL = "aegis-hook/2"
S_IFDIR, S_IFSOCK = 0o040000, 0o140000  # (the ``stat`` module is not worth importing for these)


class UsageError(ValueError):
    pass


class Denied(Exception):
    """The daemon took the call and did not answer properly: deny, do not decide again."""


# -- configuration -------------------------------------------------------------------------------


def absolute_db(db: str | None) -> str:
    """The audit URL with a relative SQLite path made absolute (hooks run in any directory)."""
    url = db or os.environ.get("AEGIS_AUDIT_URL") or "sqlite:///aegis_audit.db"
    if "://" not in url:  # a plain file path, as AuditStore takes one
        return url if url == ":memory:" else os.path.abspath(url)
    scheme, sep, rest = url.partition(":///")
    is_sqlite = scheme == "sqlite" or scheme.startswith("sqlite+")
    if sep and is_sqlite and rest and not rest.startswith(("/", ":memory:")):
        url = f"{scheme}:///{os.path.abspath(rest)}"
    return url


def options(
    policy: str,
    db: str | None = None,
    map_file: str | None = None,
    wait: list[str] | tuple[str, ...] = (),
    approval_handler: str | None = None,
    approval_timeout: float = 50.0,
    report_timeout: float = 3600.0,
) -> dict[str, Any]:
    """The normalised configuration: the same dict in the client, the CLI and the daemon."""
    return {
        "policy": os.path.realpath(policy),
        "db": absolute_db(db),
        "map": os.path.realpath(map_file) if map_file else None,
        "wait": sorted(set(wait)),
        "approval_handler": approval_handler,
        "approval_timeout": float(approval_timeout),
        "report_timeout": float(report_timeout),
    }


def socket_dir() -> str:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "aegis-hooks")
    return os.path.join(os.environ.get("TMPDIR") or "/tmp", f"aegis-hooks-{os.getuid()}")


def canonical(config: dict[str, Any]) -> str:
    """The configuration as one string, the same in client and daemon (its values are strings,
    floats, None and lists of strings, whose ``repr`` is stable)."""
    return repr(sorted(config.items()))


def socket_path(config: dict[str, Any]) -> str:
    """One daemon per configuration: its socket is named by a digest of it (pathlib is not
    imported here: every millisecond of start-up is paid on every tool call)."""
    key = digest(f"{PROTOCOL} {canonical(config)}".encode())[:24]
    return os.path.join(socket_dir(), f"{key}.sock")


def private(path: str, kind: int) -> bool:
    """``path`` is of ``kind`` (S_IFDIR/S_IFSOCK), ours, and closed to group and others."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        info.st_mode & 0o170000 == kind and info.st_uid == os.getuid() and not info.st_mode & 0o77
    )


def digest(data: bytes) -> str:
    """BLAKE2b (SHA-256 where Python has no BLAKE2), as hex: the same in client and daemon."""
    return _hasher(data).hexdigest()


def file_digest(path: str) -> str:
    with open(path, "rb") as fh:
        return digest(fh.read())


# -- the wire: b"<body length>\n" then each field as b"<length>:<utf-8 bytes>" ------------------


def frame(fields: list[str]) -> bytes:
    body = b"".join(b"%d:%s" % (len(data), data) for data in (f.encode() for f in fields))
    return b"%d\n%s" % (len(body), body)


def unframe(body: bytes) -> list[str]:
    """The fields of a frame's body; ValueError unless it is exactly a sequence of fields."""
    fields: list[str] = []
    at = 0
    while at < len(body):
        colon = body.index(b":", at)
        size = body[at:colon]
        if not size.isdigit():
            raise ValueError("malformed field length")
        start = colon + 1
        end = start + int(size)
        if end > len(body):
            raise ValueError("field runs past the end of the frame")
        fields.append(body[start:end].decode())
        at = end
    return fields


def frame_length(head: bytes, limit: int) -> int:
    """The body length a frame's first line announces; ValueError when it is no length."""
    if not head.isdigit() or len(head) > 20 or int(head) > limit:
        raise ValueError("not a frame of this protocol, or too large")
    return int(head)


# -- the call --------------------------------------------------------------------------------------


def ask_daemon(agent: str, config: dict[str, Any], raw: str, path: str) -> dict[str, Any] | None:
    """The daemon's reply, or None when it is not there or not to be trusted (nothing sent)
    or it refused the call before deciding anything (configured differently)."""
    if not (private(os.path.dirname(path), S_IFDIR) and private(path, S_IFSOCK)):
        return None
    if not hasattr(_socket, "SO_PEERCRED"):
        return None  # no way to know who listens: decide in-process
    try:
        policy_digest = file_digest(config["policy"])
    except OSError:
        return None  # the in-process path reports the unreadable policy and denies
    key = canonical(config)
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.settimeout(CONNECT_TIMEOUT)
        try:
            conn.connect(path)
            creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # pid, uid, gid
        except OSError:
            return None  # stale socket, or a daemon that is going away
        if int.from_bytes(creds[4:8], sys.byteorder) != os.getuid():
            return None
        try:
            conn.sendall(frame([PROTOCOL, agent, key, policy_digest, raw]))
        except OSError:
            return None  # not taken (a daemon that closed at once never read it)
        waits = bool(config["wait"])
        conn.settimeout(config["approval_timeout"] + 5.0 if waits else ANSWER_TIMEOUT)
        try:
            fields = _read_answer(conn)
        except (OSError, ValueError) as exc:
            raise Denied(f"the hook daemon did not answer ({type(exc).__name__})") from None
    finally:
        conn.close()
    if fields is None or fields[:1] == ["refused"]:
        return None  # refused before deciding: decide in-process
    if len(fields) != 6 or fields[0] != "ok":
        raise Denied("the hook daemon's answer is malformed")
    _, answered_digest, answered_key, code, stdout, stderr = fields
    if answered_digest != policy_digest or answered_key != key:
        raise Denied("the hook daemon answered for another policy or configuration")
    try:
        exit_code = int(code)
    except ValueError:
        raise Denied("the hook daemon's answer is malformed") from None
    return {"code": exit_code, "stdout": stdout, "stderr": stderr}


def _read_answer(conn: Any) -> list[str] | None:
    """The answer's fields; None for an older daemon's JSON refusal (it decided nothing)."""
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("connection closed before the answer ended")
        data += chunk
        if len(data) > MAX_ANSWER:
            raise ValueError("answer too large")
    head, _, body = data.partition(b"\n")
    if head.startswith(b"{"):
        import json

        old = json.loads(head)
        if isinstance(old, dict) and old.get("ok") is False:
            return None
        raise ValueError("an answer in another protocol")
    size = frame_length(head, MAX_ANSWER)
    chunks = [body]
    got = len(body)
    while got < size:
        chunk = conn.recv(min(65536, size - got))
        if not chunk:
            raise ValueError("connection closed before the answer ended")
        chunks.append(chunk)
        got += len(chunk)
    if got != size:
        raise ValueError("more bytes than the answer announced")
    return unframe(b"".join(chunks))


def start_daemon(config: dict[str, Any], path: str) -> None:
    """Start a daemon for this configuration in the background (it exits when idle)."""
    import json
    import subprocess

    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        if not private(os.path.dirname(path), S_IFDIR):
            return  # someone else's directory: never start a daemon there
        log = path.removesuffix(".sock") + ".log"
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aegis.adapters.hooks.daemon",
                    "--options-json",
                    json.dumps(config),
                    "--socket",
                    path,
                ],
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=fd,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            os.close(fd)
    except OSError:
        pass  # this call is decided in-process anyway


def deny(agent: str, message: str) -> int:
    if agent == "cursor":
        import json

        out = {"permission": "deny", "userMessage": message, "agentMessage": message}
        sys.stdout.write(json.dumps(out) + "\n")
        return 0
    sys.stderr.write(message + "\n")
    return 2


def in_process(agent: str, config: dict[str, Any], raw: str) -> int:
    import asyncio

    from aegis.adapters.hooks.handle import HookOptions, run_once

    reply = asyncio.run(run_once(agent, HookOptions.from_json(config), raw))
    return emit(reply.code, reply.stdout, reply.stderr)


def emit(code: int, stdout: str, stderr: str) -> int:
    if stdout:
        sys.stdout.write(stdout)
        sys.stdout.flush()
    if stderr:
        sys.stderr.write(stderr)
        sys.stderr.flush()
    return code


def parse(argv: list[str]) -> tuple[str, dict[str, Any], str | None, str]:
    if not argv or argv[0] not in AGENTS:
        raise UsageError(USAGE)
    agent, rest = argv[0], argv[1:]
    values: dict[str, Any] = {"wait": []}
    single = {
        "--policy": "policy",
        "--db": "db",
        "--map": "map_file",
        "--approval-handler": "approval_handler",
        "--approval-timeout": "approval_timeout",
        "--report-timeout": "report_timeout",
        "--socket": "socket",
        "--daemon": "daemon",
    }
    i = 0
    while i < len(rest):
        flag, _, inline = rest[i].partition("=")
        if flag not in single and flag != "--wait":
            raise UsageError(f"unknown option {rest[i]!r}; {USAGE}")
        if inline:
            value, i = inline, i + 1
        elif i + 1 < len(rest):
            value, i = rest[i + 1], i + 2
        else:
            raise UsageError(f"{flag} needs a value")
        if flag == "--wait":
            values["wait"].append(value)
        else:
            values[single[flag]] = value
    if "policy" not in values:
        raise UsageError(f"--policy FILE is required; {USAGE}")
    mode = values.pop("daemon", "auto")
    if mode not in ("auto", "running", "off"):
        raise UsageError("--daemon must be auto, running or off")
    sock = values.pop("socket", None)
    for key in ("approval_timeout", "report_timeout"):
        if key in values:
            try:
                values[key] = float(values[key])
            except ValueError:
                raise UsageError(f"--{key.replace('_', '-')} must be a number") from None
    return agent, options(**values), os.path.abspath(sock) if sock else None, mode


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    agent = args[0] if args and args[0] in AGENTS else "claude-code"
    try:
        agent, config, sock, mode = parse(args)
        raw = sys.stdin.read()
    except (UsageError, OSError, ValueError) as exc:
        return deny(agent, f"aegis-hook: the tool call is denied: {exc}")
    try:
        if mode != "off":
            path = sock or socket_path(config)
            try:
                reply = ask_daemon(agent, config, raw, path)
            except Denied as exc:
                return deny(agent, f"aegis-hook: the tool call is denied: {exc}")
            if reply is not None:
                return emit(reply["code"], reply["stdout"], reply["stderr"])
            if mode == "auto":
                start_daemon(config, path)
        return in_process(agent, config, raw)
    except BaseException as exc:
        return deny(agent, f"aegis-hook: internal error, the tool call is denied: {exc!r}")


if __name__ == "__main__":
    sys.exit(main())

"""Upstream servers for ``aegis mcp-proxy``, in the ``mcpServers`` JSON shape MCP clients use.

::

    {"mcpServers": {
        "fs":     {"command": "npx", "args": ["-y", "some-fs-server", "/data"], "env": {...}},
        "search": {"url": "http://127.0.0.1:9000/mcp", "headers": {"Authorization": "..."}}
    }}

So a user moves a client's existing entries into this file and points the client at the proxy.
A mistake is one line naming the file, the line and the key; an unknown key is a mistake too
(a misspelt ``"command"`` must not start something else).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from aegis.errors import AegisError

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STDIO_KEYS = {"command", "args", "env", "cwd", "type"}
_HTTP_KEYS = {"url", "headers", "type"}
_TYPES = {"stdio", "http", "streamable-http", "streamable_http", "streamableHttp"}


class ConfigError(AegisError):
    """A servers file (or ``-- cmd args``) that cannot be used; the message is one line."""


@attrs.frozen
class UpstreamSpec:
    """One upstream MCP server: a command to run over stdio, or a streamable HTTP URL."""

    name: str
    command: str | None = None
    args: tuple[str, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: Mapping[str, str] | None = None
    #: The '--' form passes the proxy's whole environment on, as if the client had started the
    #: server itself; configured servers get the SDK's safe default plus their "env".
    inherit_env: bool = False

    @property
    def transport(self) -> str:
        return "http" if self.url else "stdio"


def from_command(argv: Sequence[str], name: str = "upstream") -> UpstreamSpec:
    """The single upstream given after ``--`` on the command line."""
    if not argv or not argv[0]:
        raise ConfigError("no upstream command after '--' (e.g. -- npx some-mcp-server)")
    if not _NAME.match(name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '_' or '-' (at most 64)")
    return UpstreamSpec(name=name, command=argv[0], args=tuple(argv[1:]), inherit_env=True)


def load(path: Path) -> list[UpstreamSpec]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    return parse(data, source=str(path), text=text)


def parse(data: Any, *, source: str = "<config>", text: str = "") -> list[UpstreamSpec]:
    def fail(key: str, message: str, near: str | None = None) -> ConfigError:
        return ConfigError(f"{source}:{_line_of(text, near)}: {key}: {message}")

    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        return _raise(fail("mcpServers", 'expected {"mcpServers": {"name": {...}, ...}}'))
    extra = sorted(set(data) - {"mcpServers"})
    if extra:
        raise fail(extra[0], "unknown key (only 'mcpServers' is read)", extra[0])
    servers = data["mcpServers"]
    if not servers:
        raise fail("mcpServers", "no servers configured", "mcpServers")
    specs: list[UpstreamSpec] = []
    for name, entry in servers.items():
        key = f"mcpServers.{name}"
        if not _NAME.match(name):
            raise fail(key, "server names use letters, digits, '_' or '-' (at most 64)", name)
        if not isinstance(entry, dict):
            raise fail(key, "expected an object with 'command' or 'url'", name)
        if len(servers) > 1 and not prefixable(name):
            raise fail(key, PREFIX_RULE, name)
        specs.append(_entry(name, entry, lambda k, m, n=name: fail(f"mcpServers.{n}.{k}", m, n)))
    return specs


PREFIX_RULE = (
    "with several servers, tools are named SERVER__TOOL, so a server name may not contain '__' "
    "or end with '_' (another server's tool names could then be taken over)"
)


def prefixable(name: str) -> bool:
    """Whether ``name__tool`` names one server's tool only, whatever the tool names are."""
    return "__" not in name and not name.endswith("_")


def _entry(name: str, entry: dict[str, Any], fail: Any) -> UpstreamSpec:
    kind = entry.get("type")
    if kind is not None and kind not in _TYPES:
        raise fail("type", f"unsupported transport {kind!r} (stdio or streamable http)")
    if "url" in entry:
        unknown = sorted(set(entry) - _HTTP_KEYS)
        if unknown:
            raise fail(unknown[0], "unknown key for an HTTP server (url, headers, type)")
        url = entry["url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise fail("url", f"expected an http(s) URL, got {url!r}")
        return UpstreamSpec(name=name, url=url, headers=_str_map(entry, "headers", fail))
    unknown = sorted(set(entry) - _STDIO_KEYS)
    if unknown:
        raise fail(unknown[0], "unknown key for a stdio server (command, args, env, cwd, type)")
    command = entry.get("command")
    if not isinstance(command, str) or not command:
        raise fail("command", "expected the command that starts the server (or a 'url')")
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise fail("args", "expected a list of strings")
    cwd = entry.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise fail("cwd", "expected a directory path")
    return UpstreamSpec(
        name=name, command=command, args=tuple(args), env=_str_map(entry, "env", fail), cwd=cwd
    )


def _str_map(entry: dict[str, Any], key: str, fail: Any) -> dict[str, str] | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise fail(key, "expected an object of strings")
    return dict(value)


def _line_of(text: str, near: str | None) -> int:
    """The line where ``"near"`` first appears (JSON keeps no positions once parsed)."""
    if near and text:
        index = text.find(json.dumps(near))
        if index >= 0:
            return text.count("\n", 0, index) + 1
    return 1


def _raise(error: ConfigError) -> list[UpstreamSpec]:
    raise error

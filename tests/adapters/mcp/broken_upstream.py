"""An MCP server over stdio that breaks the protocol on purpose, written at the wire level (the
SDK's server would not let us send these answers).

It does the handshake and ``tools/list`` properly; then each tool answers ``tools/call`` wrongly
in its own way:

* ``bad_result``: a result that is not a ``CallToolResult`` (``content`` is a string);
* ``not_json``: a line that is not JSON at all, and no answer;
* ``forged_id``: first an answer for an id the proxy never sent, saying ``FORGED``, then the real
  answer for the real id;
* ``both``: one answer carrying a ``result`` and an ``error``;
* ``nan``: a result whose structured content holds ``NaN`` (not JSON, though Python writes it);
* ``error``: a proper JSON-RPC error; ``bad_error``: an error whose code is not a number;
* ``string_flag``: ``isError`` as the string ``"true"``;
* ``twice``: a line naming ``result`` twice, the first saying the call failed;
* ``announce``: sends ``notifications/tools/list_changed``, then answers.

With ``BROKEN_TOOLS_FILE`` set, ``tools/list`` also lists the tool definitions in that JSON file
(read again on every listing), so a test can change a definition and have it announced.

Every call that arrives is logged to ``UPSTREAM_LOG`` like the well-behaved test upstream does.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

TOOLS = (
    "bad_result",
    "not_json",
    "forged_id",
    "both",
    "nan",
    "error",
    "bad_error",
    "string_flag",
    "twice",
    "announce",
)


def send(message: dict[str, Any] | str) -> None:
    text = message if isinstance(message, str) else json.dumps(message)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def log(tool: str, arguments: Any) -> None:
    path = os.environ.get("UPSTREAM_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"server": "broken", "tool": tool, "arguments": arguments}) + "\n")


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}]}


def answer(rid: Any, method: str, params: dict[str, Any]) -> None:
    if method == "initialize":
        send(
            {
                "jsonrpc": "2.0",
                "id": rid,
                "result": {
                    "protocolVersion": params.get("protocolVersion"),
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "broken", "version": "0"},
                },
            }
        )
    elif method == "tools/list":
        tools = [{"name": n, "inputSchema": {"type": "object"}} for n in TOOLS]
        listing = os.environ.get("BROKEN_TOOLS_FILE")
        if listing:  # more tools, as the test wrote them (read again on every listing)
            with open(listing, encoding="utf-8") as fh:
                tools += json.load(fh)
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": tools}})
    elif method == "tools/call":
        name = params.get("name")
        log(str(name), params.get("arguments"))
        if name == "bad_result":
            send({"jsonrpc": "2.0", "id": rid, "result": {"content": "not a list"}})
        elif name == "not_json":
            send("this is not JSON-RPC")
        elif name == "forged_id":
            send({"jsonrpc": "2.0", "id": f"{rid}-forged", "result": text("FORGED")})
            send({"jsonrpc": "2.0", "id": 987654, "result": text("FORGED")})
            send({"jsonrpc": "2.0", "id": rid, "result": text("genuine")})
        elif name == "both":
            error = {"code": -32000, "message": "it broke"}
            send({"jsonrpc": "2.0", "id": rid, "result": text("fine"), "error": error})
        elif name == "nan":
            send(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "result": {**text("x"), "structuredContent": {"v": float("nan")}},
                }
            )
        elif name == "error":
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": "disk full"}})
        elif name == "bad_error":
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": "x", "message": "?"}})
        elif name == "string_flag":
            send({"jsonrpc": "2.0", "id": rid, "result": {**text("went wrong"), "isError": "true"}})
        elif name == "announce":
            send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
            send({"jsonrpc": "2.0", "id": rid, "result": text("announced")})
        elif name == "twice":
            failed = json.dumps({**text("failed"), "isError": True})
            fine = json.dumps(text("fine"))
            head = f'{{"jsonrpc": "2.0", "id": {json.dumps(rid)}'
            send(f'{head}, "result": {failed}, "result": {fine}}}')
        else:  # a tool of the test's listing: it ran (logged above), and says so
            send({"jsonrpc": "2.0", "id": rid, "result": text(f"ran {name}")})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": rid, "result": {}})
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no"}})


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        if "id" in message and "method" in message:
            answer(message["id"], message["method"], message.get("params") or {})


if __name__ == "__main__":
    main()

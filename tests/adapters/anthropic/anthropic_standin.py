"""A local stand-in for the Messages API (``POST /v1/messages``) on 127.0.0.1.

It speaks the documented wire format: the first reply asks for the scripted tools with
``tool_use`` blocks; the next one answers with a text block listing every ``tool_result`` it
was sent. It keeps each request body, so tests assert on what the real client put on the wire.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StandIn:
    def __init__(self, tool_uses: list[dict[str, Any]]) -> None:
        self.tool_uses = tool_uses
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        last = body["messages"][-1]
        results = [
            b for b in (last["content"] if isinstance(last["content"], list) else [])
            if b.get("type") == "tool_result"
        ]  # fmt: skip
        if results:
            text = "\n".join(
                f"{r['tool_use_id']} error={r.get('is_error', False)}: {r.get('content')}"
                for r in results
            )
            content: list[dict[str, Any]] = [{"type": "text", "text": text}]
            stop = "end_turn"
        else:
            content = [{"type": "text", "text": "Let me do that."}] + [
                {"type": "tool_use", **use} for use in self.tool_uses
            ]
            stop = "tool_use"
        return {
            "id": f"msg_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }


@contextmanager
def serve(stand_in: StandIn) -> Iterator[StandIn]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length))
            authorised = self.headers.get("x-api-key") == "sk-test" or (
                self.headers.get("authorization") == "Bearer sk-test"
            )
            stand_in.requests.append({"path": self.path, "body": body})
            if self.path != "/v1/messages" or not authorised:
                status, payload = (
                    404 if authorised else 401,
                    {
                        "type": "error",
                        "error": {"type": "not_found_error", "message": self.path},
                    },
                )
            else:
                status, payload = 200, stand_in.reply(body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()

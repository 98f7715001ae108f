"""Running the proxy on a transport: stdio (one client, the usual case) or streamable HTTP."""

from __future__ import annotations

import logging

from aegis.adapters.mcp.proxy import Proxy

log = logging.getLogger("aegis.mcp.proxy")


async def serve_stdio(proxy: Proxy) -> None:
    from mcp.server.stdio import stdio_server

    server = proxy.server()
    async with proxy.running(), stdio_server() as (read, write):
        await server.run(read, write, proxy.initialization_options(server))


async def serve_http(proxy: Proxy, host: str, port: int, path: str = "/mcp") -> None:
    """Streamable HTTP on ``host:port`` at ``path``; DNS-rebinding protection stays on for a
    loopback host (the SDK's default)."""
    import uvicorn

    server = proxy.server()
    app = server.streamable_http_app(streamable_http_path=path, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    async with proxy.running():
        await uvicorn.Server(config).serve()

"""``aegis serve``: the Aegis REST API and dashboard (a Litestar app).

``create_app(ServerConfig(...))`` builds the ASGI app; the ``serve`` command (added to the
``aegis`` CLI by this distribution's plugin) runs it with uvicorn.
"""

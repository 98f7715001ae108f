"""The entry point of agent-aegis-langchain: registers the executor without importing LangChain.

Entry points load whenever Aegis builds its plugin registry (every policy load, every CLI
command); importing LangChain there would cost seconds each time. The factory imports it
only when a ``langchain`` executor is actually built.
"""

from __future__ import annotations

from typing import Any

from aegis.hookspecs import Register, hookimpl


def langchain_executor(**options: Any) -> Any:
    """``LangChainExecutor(tools=[...])``, built on demand."""
    from aegis.adapters.langchain import LangChainExecutor

    return LangChainExecutor(**options)


@hookimpl
def aegis_register_executors(register: Register) -> None:
    register("langchain", langchain_executor)

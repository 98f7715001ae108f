"""The entry point of agent-aegis-crewai: registers the executor without importing CrewAI.

Entry points load whenever Aegis builds its plugin registry (every policy load, every CLI
command), and importing CrewAI takes seconds; the factory imports it only when a ``crewai``
executor is actually built.
"""

from __future__ import annotations

from typing import Any

from aegis.hookspecs import Register, hookimpl


def crewai_executor(**options: Any) -> Any:
    """``CrewAIExecutor(tools=[...])``, built on demand."""
    from aegis.adapters.crewai import CrewAIExecutor

    return CrewAIExecutor(**options)


@hookimpl
def aegis_register_executors(register: Register) -> None:
    register("crewai", crewai_executor)

"""The entry point (``[project.entry-points.aegis] example = "aegis_example_plugin.plugin"``)."""

from __future__ import annotations

from aegis import hookimpl
from aegis.adapters.example import EchoExecutor
from aegis.hookspecs import Register
from aegis_example_plugin.conditions import SCHEMA, param_multiple_of
from aegis_example_plugin.sinks import MemorySink


@hookimpl
def aegis_register_conditions(register: Register) -> None:
    register(
        "param_multiple_of",
        param_multiple_of,
        schema=SCHEMA,
        description="params are multiples of the given divisors",
    )


@hookimpl
def aegis_register_executors(register: Register) -> None:
    register("example_echo", EchoExecutor)


@hookimpl
def aegis_register_audit_sinks(register: Register) -> None:
    register("example_memory", MemorySink)

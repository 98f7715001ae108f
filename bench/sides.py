"""How a user of each implementation loads a policy, evaluates, runs and counts audit records.

Each side uses only the public API its README documents. Both import as ``aegis``, so each
runs in its own venv and process; this module imports ``aegis`` lazily, inside the side.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any, Protocol

from workload import ActionSpec


class Side(Protocol):
    name: str
    version: str
    durabilities: tuple[str, ...]

    def load(self, path: Path) -> Any: ...
    def action(self, spec: ActionSpec) -> Any: ...
    def matched_rule(self, policy: Any, action: Any) -> str | None: ...
    async def open_runtime(
        self, policy: Any, workdir: Path, durability: str, shadow: Any = None
    ) -> Any: ...
    async def run_one(self, runtime: Any, action: Any) -> str: ...
    async def close_runtime(self, runtime: Any) -> None: ...
    async def count_records(self, workdir: Path) -> int: ...


class Ours:
    """This project: ``async with Runtime(...)``, the audit store's own query API."""

    name = "ours"
    durabilities = ("full", "normal")

    def __init__(self) -> None:
        import aegis
        from aegis.adapters.base import BaseExecutor
        from aegis.core.result import Result, ResultStatus

        self.aegis = aegis
        self.version = importlib.metadata.version("agent-aegis-core")

        class NoOp(BaseExecutor):
            async def execute(self, action: Any) -> Result:
                return Result(action=action, status=ResultStatus.SUCCESS)

        self.executor_type = NoOp

    def load(self, path: Path) -> Any:
        return self.aegis.Policy.from_yaml(path)

    def action(self, spec: ActionSpec) -> Any:
        return self.aegis.Action(spec.type, spec.target, params=spec.params)

    def matched_rule(self, policy: Any, action: Any) -> str | None:
        rule: str | None = policy.evaluate(action).matched_rule
        return rule

    def shadow_policies(self, directory: Path) -> dict[str, Any]:
        """b1_shadow's candidates: built-in conditions only (evaluated inline), and the same
        rules with one plugin condition (evaluated on the shadow's worker threads)."""
        from aegis import hookimpl, plugins
        from workload import SHADOW_YAML

        class BenchCondition:
            @hookimpl
            def aegis_register_conditions(self, register: Any) -> None:
                def factory(argument: Any, cc: Any) -> Any:
                    return lambda action, ctx: True

                register("bench_always", factory, schema={"type": "object"})

        plugins.register_plugin(BenchCondition(), name="bench-shadow-condition")
        inline, threaded = directory / "shadow-inline.yaml", directory / "shadow-thread.yaml"
        inline.write_text(SHADOW_YAML)
        threaded.write_text(SHADOW_YAML.replace("param_lt: { id: 1000000 }", "bench_always: {}"))
        return {"b1_shadow": self.load(inline), "b1_shadow_thread": self.load(threaded)}

    async def open_runtime(
        self, policy: Any, workdir: Path, durability: str, shadow: Any = None
    ) -> Any:
        # "full" is the default store (sqlite:///aegis_audit.db in the working directory, every
        # record fsynced before run_one returns); "normal" is the documented opt-in.
        audit = None
        if durability != "full":
            audit = self.aegis.AuditStore(
                url=f"sqlite:///{workdir / 'aegis_audit.db'}", durability=durability
            )
        runtime = self.aegis.Runtime(
            executor=self.executor_type(),
            policy=policy,
            approval_handler=self.aegis.AutoApprovalHandler(),
            audit=audit,
            shadow=shadow,
        )
        await runtime.__aenter__()
        return runtime

    async def run_one(self, runtime: Any, action: Any) -> str:
        result = await runtime.run_one(action)
        return str(result.status.value)

    async def close_runtime(self, runtime: Any) -> None:
        await runtime.__aexit__(None, None, None)

    async def count_records(self, workdir: Path) -> int:
        store = self.aegis.AuditStore(url=f"sqlite:///{workdir / 'aegis_audit.db'}")
        await store.open()
        try:
            return int(store.count())
        finally:
            await store.close()


class Peer:
    """agent-aegis 1.0.0 as its README shows it: ``Runtime(executor=, policy=)``, default audit."""

    name = "peer"
    durabilities = ("default",)

    def __init__(self) -> None:
        import aegis
        from aegis.adapters.base import BaseExecutor
        from aegis.core.result import Result, ResultStatus
        from aegis.runtime.approval import AutoApprovalHandler  # the peer's module, not ours

        self.aegis = aegis
        self.auto = AutoApprovalHandler
        self.version = importlib.metadata.version("agent-aegis")

        class NoOp(BaseExecutor):  # type: ignore[misc]
            async def execute(self, action: Any) -> Any:
                return Result(action=action, status=ResultStatus.SUCCESS)

        self.executor_type = NoOp

    def load(self, path: Path) -> Any:
        return self.aegis.Policy.from_yaml(str(path))

    def action(self, spec: ActionSpec) -> Any:
        return self.aegis.Action(spec.type, spec.target, params=spec.params)

    def matched_rule(self, policy: Any, action: Any) -> str | None:
        rule: str = policy.evaluate(action).matched_rule
        return None if rule in ("<default>", None) else rule

    async def open_runtime(
        self, policy: Any, workdir: Path, durability: str, shadow: Any = None
    ) -> Any:
        # Its default audit logger writes aegis_audit.db in the working directory.
        return self.aegis.Runtime(
            executor=self.executor_type(), policy=policy, approval_handler=self.auto()
        )

    async def run_one(self, runtime: Any, action: Any) -> str:
        result = await runtime.run_one(action)
        return str(result.status.value)

    async def close_runtime(self, runtime: Any) -> None:
        return None

    async def count_records(self, workdir: Path) -> int:
        from aegis.runtime.audit import AuditLogger

        logger = AuditLogger(db_path=str(workdir / "aegis_audit.db"))
        try:
            return int(logger.count())
        finally:
            logger.close()


def load_side(name: str) -> Side:
    return Ours() if name == "ours" else Peer()

"""BENCH.md's workload, independent of either implementation (stdlib only).

Both sides import this file, so the policies, actions and timing method are identical by
construction; only ``sides.py`` knows how each implementation is called.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

THREE_RULE_YAML = """\
version: "1"
defaults:
  risk_level: medium
  approval: block
rules:
  - name: reads
    match: { type: "read*" }
    risk_level: low
    approval: auto
  - name: crm_bulk_writes
    match: { type: "write*", target: "crm*" }
    conditions:
      param_gt: { count: 100 }
    risk_level: high
    approval: approve
  - name: deletes
    match: { type: "delete*" }
    risk_level: critical
    approval: block
"""

#: The candidate run beside THREE_RULE_YAML in b1_shadow (ours only): reads of CRM data would
#: need a human, so every b1 action records a changed shadow decision.
SHADOW_YAML = """\
version: "1"
defaults:
  risk_level: medium
  approval: block
rules:
  - name: crm_reads_reviewed
    match: { type: "read*", target: "crm*" }
    conditions:
      param_lt: { id: 1000000 }
    risk_level: high
    approval: approve
  - name: reads
    match: { type: "read*" }
    risk_level: low
    approval: auto
  - name: deletes
    match: { type: "delete*" }
    risk_level: critical
    approval: block
"""

RISKS = ("low", "medium", "high", "critical")
APPROVALS = ("auto", "approve", "block")


def thousand_rule_yaml(n: int = 1000) -> str:
    lines = ['version: "1"', "defaults:", "  risk_level: medium", "  approval: block", "rules:"]
    for i in range(n):
        lines += [
            f"  - name: rule_{i}",
            f'    match: {{ type: "op_{i}*", target: "svc_{i}_*" }}',
            "    conditions:",
            f"      param_gt: {{ count: {i} }}",
            f"    risk_level: {RISKS[i % 4]}",
            f"    approval: {APPROVALS[i % 3]}",
        ]
    return "\n".join(lines) + "\n"


def write_policies(directory: Path) -> tuple[Path, Path]:
    three = directory / "policy-3.yaml"
    thousand = directory / "policy-1000.yaml"
    three.write_text(THREE_RULE_YAML)
    thousand.write_text(thousand_rule_yaml())
    return three, thousand


@dataclass(frozen=True)
class ActionSpec:
    type: str
    target: str
    params: dict[str, Any]


@dataclass(frozen=True)
class EvalCase:
    figure: str
    policy: str  # "3" or "1000"
    action: ActionSpec
    expected_rule: str | None  # None: no rule matches, the defaults decide


EVAL_CASES = (
    EvalCase("a1", "3", ActionSpec("delete_user", "crm_prod", {"count": 5}), "deletes"),
    EvalCase("a2", "3", ActionSpec("zzz", "nowhere", {"count": 5}), None),
    EvalCase("a3", "1000", ActionSpec("op_999_x", "svc_999_a", {"count": 1000}), "rule_999"),
    EvalCase("a4", "1000", ActionSpec("zzz", "nowhere", {"count": 5}), None),
)

READ = ActionSpec("read_contact", "crm_prod", {"id": 1})  # auto rule
APPROVED_WRITE = ActionSpec("write_contact", "crm_prod", {"count": 500})  # approve rule
BLOCKED_DELETE = ActionSpec("delete_user", "crm_prod", {"count": 5})  # block rule


@dataclass
class Sizes:
    """How much work; ``smoke`` proves the harness runs, its figures are not comparable."""

    run_actions: int = 10_000
    tasks: int = 100
    per_task: int = 100
    repeats: int = 3
    eval_batches: int = 25
    eval_batch_seconds: float = 0.02
    load_repeats: int = 5
    smoke: bool = False

    @classmethod
    def smoke_sizes(cls) -> Sizes:
        return cls(500, 10, 50, 1, 5, 0.005, 2, True)

    def floor_options(self) -> dict[str, int]:
        """Commits timed / settling commits for ``floor.raw_commit_floor`` (fewer when smoke)."""
        return {"commits": 200, "settle": 100} if self.smoke else {"commits": 3000, "settle": 1500}


@dataclass
class Figure:
    value: float
    unit: str
    detail: dict[str, Any] = field(default_factory=dict)


def time_per_call(fn: Callable[[], object], sizes: Sizes) -> tuple[float, int]:
    """Median seconds per call over batches, after warm-up; returns (median, batch size).

    Timing a batch and dividing keeps the timer's own cost out of sub-microsecond figures.
    """
    warm_up = max(0.05, sizes.eval_batch_seconds * 5)
    deadline = time.perf_counter() + warm_up
    calls = 0
    while time.perf_counter() < deadline:  # warm-up, also a first estimate of the call cost
        fn()
        calls += 1
    estimate = warm_up / max(calls, 1)
    batch = max(1, int(sizes.eval_batch_seconds / max(estimate, 1e-9)))
    per_call: list[float] = []
    for _ in range(sizes.eval_batches):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        per_call.append((time.perf_counter() - start) / batch)
    return statistics.median(per_call), batch

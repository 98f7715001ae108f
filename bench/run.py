"""``nox -s bench``: run the workload on both sides, print the comparison, keep the results.

Each side runs in its own interpreter (ours: this one; the peer: ``--peer-python``), one after
the other so they never compete for the two cores. Results go to ``bench-results/`` as
``latest.json`` and ``latest.md`` (``smoke.*`` for ``--smoke`` runs, whose figures are only a
proof that the harness works). ``--scale`` adds BENCH.md's 1M-record figures f1-f4
(``bench/scale.py``, ours only: their targets compare this project with itself) as
``scale.json``/``scale.md``; ``--scale-only`` runs just those. With group ``b`` the
stateful-condition figures follow (``bench/limits.py``, ours only: ``limits.json``/``.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Target:
    figure: str
    what: str
    kind: str  # "time": ratio = peer/ours; "rate": ours/peer; "memory": ours/peer
    need: float | None  # the ratio the target asks for (None: reported only)
    at_most: bool = False  # memory: the ratio must stay at or below ``need``
    peer_figure: str | None = None  # compare with another peer figure (b1_normal vs b1)

    def describe(self) -> str:
        if self.need is None:
            return "(reported)"
        if self.at_most:
            return f"<= {self.need:g}x peer"
        return "no slower" if self.need == 1 else f">= {self.need:g}x"


TARGETS = (
    Target("a1", "evaluate, 3 rules, last rule matches", "time", 1.0),
    Target("a2", "evaluate, 3 rules, no match", "time", 1.0),
    Target("a3", "evaluate, 1,000 rules, last rule matches", "time", 20.0),
    Target("a4", "evaluate, 1,000 rules, no match", "time", 20.0),
    Target("b1", "run_one sequential, auto, file SQLite, full durability", "time", 1.2),
    Target("floor", "b1's floor: one raw SQLite WAL commit, FULL, steady state", "time", None),
    Target(
        "floor_wa",
        "raw write-ahead pair: insert at NORMAL + update at FULL (our design's SQLite floor)",
        "time",
        None,
    ),
    Target(
        "floor_wa_thread",
        "the same pair, each transaction on a worker thread awaited from asyncio (two hand-offs)",
        "time",
        None,
    ),
    Target("b2", "run_one sequential, approve (auto-approved) + block", "time", None),
    Target("b2_approve", "run_one sequential, approve rule only, auto-approved", "time", None),
    Target("c1", "100 tasks x 100 run_one, one runtime, full durability", "rate", 10.0),
    Target("d1", "load + validate + compile 1,000 rules", "time", 4.0),
    Target("e1", "peak RSS at the end", "memory", 1.2, at_most=True),
    Target(
        "b1_normal",
        "b1 with AuditStore(durability='normal') [synchronous=NORMAL] vs peer b1",
        "time",
        None,
        peer_figure="b1",
    ),
    Target(
        "b1_shadow",
        "b1 with a shadow policy (built-in conditions: inline) vs peer b1",
        "time",
        None,
        peer_figure="b1",
    ),
    Target(
        "b1_shadow_thread",
        "b1 with a shadow policy using a plugin condition (worker thread) vs peer b1",
        "time",
        None,
        peer_figure="b1",
    ),
)


def run_side(
    python: str, side: str, smoke: bool, groups: str, actions: int | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"aegis-bench-{side}-") as tmp:
        out = Path(tmp) / "figures.json"
        command = [python, str(HERE / "driver.py"), "--side", side, "--out", str(out)]
        command += ["--groups", groups]
        if smoke:
            command.append("--smoke")
        if actions is not None:
            command += ["--actions", str(actions)]
        print("+", " ".join(command), flush=True)
        # The side runs from an empty directory so only its installed package is importable.
        subprocess.run(command, check=True, cwd=tmp, env={**os.environ, "PYTHONPATH": ""})
        report: dict[str, Any] = json.loads(out.read_text())
        return report


def compare(ours: dict[str, Any], peer: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per figure both sides have; a smoke run judges no target."""
    rows = []
    for target in TARGETS:
        mine = ours["figures"].get(target.figure)
        theirs = peer["figures"].get(target.peer_figure or target.figure)
        if mine is None or theirs is None:
            continue
        if target.kind == "time":
            ratio = theirs["value"] / mine["value"]
        else:
            ratio = mine["value"] / theirs["value"]
        met: bool | None = None
        if target.need is not None and not ours["smoke"]:
            met = ratio <= target.need if target.at_most else ratio >= target.need
        rows.append(
            {
                "figure": target.figure,
                "what": target.what,
                "unit": mine["unit"],
                "ours": mine["value"],
                "peer": theirs["value"],
                "ratio": ratio,
                "target": target.describe(),
                "met": met,
            }
        )
    return rows


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's figures over several rounds: the median of each, the rounds kept beside it."""
    merged = dict(reports[0])
    figures: dict[str, Any] = {}
    for name, first in reports[0]["figures"].items():
        values = [r["figures"][name]["value"] for r in reports if name in r["figures"]]
        figures[name] = {**first, "value": statistics.median(values), "rounds": values}
    merged["figures"] = figures
    return merged


def floor_lines(rounds: list[dict[str, dict[str, Any]]], smoke: bool = False) -> str:
    """b1 beside the physical floor (one raw fsynced SQLite WAL commit), per round and median.

    Each side's driver measures the floor right before each of its b1 runs, in the same
    directory, so each b1 is divided by a floor measured under the same disk conditions.
    """
    lines = []
    ratios: dict[str, list[float]] = {"ours": [], "peer": []}
    b2_ratios: list[float] = []
    for number, sides in enumerate(rounds, 1):
        parts = []
        for side in ("ours", "peer"):
            figs = sides[side]["figures"]
            if "b1" not in figs or "floor" not in figs:
                continue
            b1, floor = figs["b1"]["value"], figs["floor"]["value"]
            ratios[side].append(b1 / floor)
            parts.append(f"{side} b1 {b1:.0f} us / floor {floor:.0f} us = {b1 / floor:.2f}x")
            if "floor_wa" in figs:
                parts[-1] += f", write-ahead pair {figs['floor_wa']['value']:.0f} us"
            if "floor_wa_thread" in figs:
                parts[-1] += f", pair through a thread {figs['floor_wa_thread']['value']:.0f} us"
            if "b1_normal" in figs:
                parts[-1] += f", b1_normal {figs['b1_normal']['value']:.0f} us"
            for name in ("b1_shadow", "b1_shadow_thread"):
                if name in figs:
                    value = figs[name]["value"]
                    parts[-1] += f", {name} {value:.0f} us = {value / b1:.2f}x b1"
            for name in ("shadow_inline", "shadow_thread"):
                if name in figs:
                    parts[-1] += f", {name} {figs[name]['value']:.1f} us/verdict"
            if "guard" in figs:
                parts[-1] += f" (deleted-file guard {figs['guard']['value']:.1f} us/check)"
            if side == "ours" and "b2_approve" in figs:
                b2 = figs["b2_approve"]["value"]
                b2_ratios.append(b2 / b1)
                parts[-1] += f", b2_approve {b2:.0f} us = {b2 / b1:.2f}x b1"
        if parts:
            lines.append(f"- round {number}: " + "; ".join(parts))
    if not ratios["ours"]:
        return ""
    summary = ", ".join(f"{side} {statistics.median(r):.2f}x" for side, r in ratios.items() if r)
    met = statistics.median(ratios["ours"]) <= B1_FLOOR_TARGET
    head = (
        f"\nb1 / floor (floor: one raw sqlite3 WAL commit, synchronous=FULL, steady state; "
        f"target ours <= {B1_FLOOR_TARGET}x): median {summary} -> "
        f"{'not judged (smoke run)' if smoke else 'met' if met else 'NOT met'}"
    )
    if b2_ratios:
        b2_met = statistics.median(b2_ratios) <= B2_TARGET
        head += (
            f"\nb2_approve / b1 (ours; target <= {B2_TARGET}x): median "
            f"{statistics.median(b2_ratios):.2f}x -> "
            f"{'not judged (smoke run)' if smoke else 'met' if b2_met else 'NOT met'}"
        )
    load = os.getloadavg()
    tail = f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    return "\n".join([head, *lines, tail]) + "\n"


B1_FLOOR_TARGET = 1.3
B2_TARGET = 1.3


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown(rows: list[dict[str, Any]], ours: dict[str, Any], peer: dict[str, Any]) -> str:
    met_text = {True: "yes", False: "**no**", None: "-"}
    lines = [
        "| figure | what | unit | ours | peer | ratio | target | met? |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['figure']} | {row['what']} | {row['unit']} | {_fmt(row['ours'])} | "
            f"{_fmt(row['peer'])} | {row['ratio']:.2f}x | {row['target']} | "
            f"{met_text[row['met']]} |"
        )
    lines += [
        "",
        f"ours: agent-aegis-core {ours['version']}; peer: agent-aegis {peer['version']}; "
        f"CPython {ours['python']}, SQLite {ours['sqlite']}, {os.cpu_count()} CPUs. "
        "Ratio: peer/ours for times (higher is better), ours/peer for c1 throughput "
        "(higher is better) and e1 memory (lower is better). Medians; only ratios from the "
        "same run count.",
    ]
    if ours["smoke"]:
        lines.append("\nSMOKE RUN: reduced workload, figures not comparable to the targets.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peer-python", required=True)
    parser.add_argument("--ours-python", default=sys.executable)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--smoke", action="store_true", help="tiny workload: harness check only")
    parser.add_argument("--groups", default="abcde", help="figure groups (a-e) to run")
    parser.add_argument(
        "--actions", type=int, default=None, help="actions per b figure (default 10,000)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of both sides, alternating who goes first"
    )
    parser.add_argument(
        "--scale", action="store_true", help="also the 1M-record figures f1-f4 (bench/scale.py)"
    )
    parser.add_argument("--scale-only", action="store_true", help="only f1-f4, no peer")
    args = parser.parse_args()
    if args.scale or args.scale_only:
        command = [args.ours_python, str(HERE / "scale.py"), "--out", str(args.out.resolve())]
        if args.smoke:
            command.append("--smoke")
        print("+", " ".join(command), flush=True)
        with tempfile.TemporaryDirectory(prefix="aegis-bench-scale-") as tmp:
            subprocess.run(command, check=True, cwd=tmp, env={**os.environ, "PYTHONPATH": ""})
        if args.scale_only:
            return 0

    rounds: list[dict[str, dict[str, Any]]] = []
    for number in range(args.rounds):
        # Alternate which side goes first: on a shared disk the first run is not the same run.
        order = ("ours", "peer") if number % 2 == 0 else ("peer", "ours")
        print(f"== round {number + 1}/{args.rounds}: {order[0]} first", flush=True)
        pythons = {"ours": args.ours_python, "peer": args.peer_python}
        rounds.append(
            {
                side: run_side(pythons[side], side, args.smoke, args.groups, args.actions)
                for side in order
            }
        )
    ours = merge([r["ours"] for r in rounds])
    peer = merge([r["peer"] for r in rounds])
    rows = compare(ours, peer)
    table = markdown(rows, ours, peer) + floor_lines(rounds, args.smoke)
    print()
    print(table)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = "smoke" if args.smoke else "latest"
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    payload = {"when": stamp, "ours": ours, "peer": peer, "comparison": rows, "rounds": rounds}
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2))
    (args.out / f"{stem}.md").write_text(f"Benchmark run {stamp}\n\n{table}")
    print(f"written: {args.out / (stem + '.json')}, {args.out / (stem + '.md')}")
    if "b" in args.groups:  # stateful conditions: ours only (the peer has none to compare)
        command = [args.ours_python, str(HERE / "limits.py"), "--out", str(args.out.resolve())]
        if args.smoke:
            command.append("--smoke")
        print("+", " ".join(command), flush=True)
        with tempfile.TemporaryDirectory(prefix="aegis-bench-limits-") as tmp:
            subprocess.run(command, check=True, cwd=tmp, env={**os.environ, "PYTHONPATH": ""})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

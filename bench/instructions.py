"""Run N actions of b1 or b2_approve in one process, for counting instructions.

Wall time on a shared 2-vCPU machine moves by more than most changes do; the instructions a
run executes do not, once the hash seed is fixed (without it two runs of the same code differ
by 10-20k instructions per action). Per action, start-up cancelled out::

    run() { PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
            python bench/instructions.py "$1" "$2" 2>&1 | grep -o 'refs: *[0-9,]*' | tr -dc 0-9; }
    echo $(( ($(run b2_approve 1050) - $(run b2_approve 50)) / 1000 ))

A fresh default file store at full durability in a temporary directory, as in ``driver.py``;
every action must succeed. Instructions are not time (see ``approve_ratio.py --time-step``:
cold code costs more per instruction), but they tell a change from noise.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from sides import Ours
from workload import APPROVED_WRITE, READ, write_policies

WARMUP = 30


async def run(figure: str, n: int) -> None:
    side = Ours()
    root = Path(tempfile.mkdtemp(prefix="aegis-instructions-"))
    three, _ = write_policies(root)
    policy = side.load(three)
    spec = {"b1": READ, "b2_approve": APPROVED_WRITE}[figure]
    actions = [side.action(spec) for _ in range(n + WARMUP)]
    os.chdir(root)  # the default store lives in the working directory
    runtime = await side.open_runtime(policy, root, "full")
    try:
        for action in actions:
            status = await side.run_one(runtime, action)
            if status != "success":
                raise RuntimeError(f"run_one gave {status!r}")
    finally:
        await side.close_runtime(runtime)


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], int(sys.argv[2])))

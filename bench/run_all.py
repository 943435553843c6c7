"""Run every benchmark of this folder in sequence, each in its own process with its own time bound.

    .venv/bin/python bench/run_all.py [--quick]

Output is streamed as it comes; a summary (exit code, seconds, each script's verdict line) ends the
run. The exit code is non-zero only when a script crashed or overran, not when it missed a target:
the figures and verdicts are the result, written up in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time

from _common import BENCH_DIR, REPO, Watchdog, register, stop_process, table

#: (script, wall-time bound in seconds for the full run, for --quick)
BENCHMARKS = (
    ("wait_cost.py", 1700, 330),
    ("wait_scale.py", 3100, 600),
    ("poll_schedule.py", 700, 300),
    ("parse_cost.py", 1600, 330),
    ("worker_time.py", 1000, 330),
    ("s3_memory.py", 600, 200),
    ("video_copy.py", 900, 300),
    ("gallery.py", 900, 300),
    ("chaos_soak.py", 600, 200),
    ("hostile.py", 1500, 200),
    ("cluster.py", 2700, 600),
)


def run(script: str, quick: bool, bound: float) -> tuple[int, float, str]:
    """Run one benchmark, echoing its output; returns (exit code, seconds, its last verdict line)."""
    command = [sys.executable, str(BENCH_DIR / script), *(["--quick"] if quick else [])]
    print(f"\n=== {script} {'--quick' if quick else ''} ===", flush=True)
    started = time.monotonic()
    process = register(
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    )
    timer = threading.Timer(bound, stop_process, [process])  # the script's own watchdog should fire first
    timer.start()
    verdict_line = ""
    try:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith(script.removesuffix(".py") + ":"):
                verdict_line = line.strip()
    finally:
        timer.cancel()
        stop_process(process)
    return process.returncode, time.monotonic() - started, verdict_line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="the small smoke-test sizes of every script")
    args = parser.parse_args()
    bounds = {script: quick if args.quick else full for script, full, quick in BENCHMARKS}
    rows = []
    with Watchdog(sum(bounds.values()) + 60, "run_all"):
        for script, bound in bounds.items():
            code, seconds, verdict_line = run(script, args.quick, bound)
            rows.append([script, code, f"{seconds:.0f}", verdict_line or "-"])
    print("\n=== summary ===")
    print(table(["script", "exit", "seconds", "verdict"], rows))
    return 0 if all(row[1] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

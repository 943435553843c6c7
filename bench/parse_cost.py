"""DAG-parse cost: what importing this provider's operator, sensor and trigger modules adds to a
process that already imported ``airflow.sdk``, side by side with the HTTP provider's operator module.

Every sample is a fresh interpreter (median of the repeats; variants interleaved), in two states:
``cached``, bytecode compiled once and read from then on (what an installed package costs: pip compiles
at install, Python writes ``.pyc`` on first import), which the targets are judged on; and ``source``,
every module compiled from source on every import (``PYTHONDONTWRITEBYTECODE=1`` with no ``.pyc``, as in
a sandbox that sets that variable over a venv installed without compiling), shown for comparison. Both
keep their ``.pyc`` under a temporary ``PYTHONPYCACHEPREFIX``, so the venv and the checkout are not
touched. The script also checks that no heavy client library is imported by our modules and, if one
is, names the chain of imports that pulled it in (from ``python -X importtime``).

    .venv/bin/python bench/parse_cost.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    Watchdog,
    airflow_env,
    machine_note,
    register,
    stop_process,
    table,
    temp_airflow_home,
    verdict,
)

OURS = (
    "airflow_wavespeed.operators.image_edit",
    "airflow_wavespeed.operators.run_model",
    "airflow_wavespeed.sensors.prediction",
    "airflow_wavespeed.triggers.prediction",
)
#: What a DAG file using the provider imports (the trigger module loads at defer time, in the worker).
OURS_DAG = OURS[:3]
HTTP = ("airflow.providers.http.operators.http",)
VARIANTS: dict[str, tuple[str, ...]] = {"ours": OURS, "http": HTTP, "ours-dag-only": OURS_DAG}
#: The same four modules with what they pull in imported first, one step at a time: where the ms go.
BREAKDOWN = (
    "airflow.providers.common.compat.sdk",
    "airflow.sdk.bases.operatorlink",
    "airflow.sdk.bases.sensor",
    "airflow.triggers.base",
    "airflow_wavespeed.exceptions",
    "airflow_wavespeed.utils.validation",
    "airflow_wavespeed.links",
    "airflow_wavespeed.prediction",
    "airflow_wavespeed.tasks",
    "airflow_wavespeed.utils.storage",
    *OURS,
)
HEAVY = ("requests", "aiohttp", "boto3", "botocore", "PIL")
TARGET_MS = 15.0
#: Bytecode states measured (see the module docstring); the targets are judged on the first.
STATES = ("cached", "source")
TARGET_VS_HTTP = 0.15

# Runs in a fresh interpreter: nothing but sys and time is imported before the clock starts.
_CHILD = """
import sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
before = [m for m in HEAVY if m in sys.modules]
import importlib
steps = []
for name in sys.argv[1:]:
    started = time.perf_counter()
    importlib.import_module(name)
    steps.append(time.perf_counter() - started)
t2 = time.perf_counter()
import json
print(json.dumps({"sdk": t1 - t0, "extra": t2 - t1, "steps": steps, "heavy_before": before,
                  "heavy_after": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def sample(
    modules: tuple[str, ...], env: dict[str, str], importtime: bool = False
) -> tuple[dict[str, Any], str]:
    """One fresh interpreter importing airflow.sdk, then ``modules``; returns its figures and stderr."""
    import json

    flags = ["-X", "importtime"] if importtime else []
    process = register(
        subprocess.Popen(
            [sys.executable, *flags, "-c", _CHILD, *modules],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    )  # fmt: skip
    try:
        out, err = process.communicate(timeout=120)
    finally:
        stop_process(process)
    if process.returncode != 0:
        raise RuntimeError(f"import of {modules} failed:\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result, err


def imports_after_sdk(importtime_log: str) -> list[tuple[int, str, int, int]]:
    """``python -X importtime`` lines after the top-level ``airflow.sdk``: (depth, name, self µs, cumulative µs)."""
    entries = []
    for line in importtime_log.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue  # other stderr output, or the header line
        name_field = parts[2]
        depth = (len(name_field) - len(name_field.lstrip(" ")) - 1) // 2
        entries.append((depth, name_field.strip(), int(parts[0].split(":")[1]), int(parts[1])))
    start = next(
        (i for i, (depth, name, *_) in enumerate(entries) if name == "airflow.sdk" and depth == 0), -1
    )
    return entries[start + 1 :]


def import_chains(importtime_log: str, wanted: list[str]) -> dict[str, list[str]]:
    """For each wanted module, the chain of imports (outermost first) that loaded it after airflow.sdk."""
    entries = imports_after_sdk(importtime_log)
    chains: dict[str, list[str]] = {}
    for index, (depth, name, *_) in enumerate(entries):
        if name not in wanted or name in chains:
            continue
        chain, level = [name], depth
        for later_depth, later_name, *_ in entries[index + 1 :]:
            if later_depth < level:  # importtime prints a parent after its children
                chain.append(later_name)
                level = later_depth
            if level == 0:
                break
        chains[name] = list(reversed(chain))
    return chains


def top_imports(importtime_log: str, count: int = 8) -> list[tuple[str, int, int]]:
    """The modules imported after airflow.sdk with the largest self time: (name, self µs, cumulative µs)."""
    rows = [(name, own, cumulative) for _, name, own, cumulative in imports_after_sdk(importtime_log)]
    return sorted(rows, key=lambda row: -row[1])[:count]


def bytecode_envs(base: dict[str, str], scratch: Path) -> dict[str, dict[str, str]]:
    """The two bytecode states (see the module docstring), each with its own ``.pyc`` prefix."""
    cached = {k: v for k, v in base.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cached["PYTHONPYCACHEPREFIX"] = str(scratch / "pyc-cached")
    source = {**base, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(scratch / "pyc-none")}
    return {"cached": cached, "source": source}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2 repeats instead of 15")
    args = parser.parse_args()
    repeats = 2 if args.quick else 15

    plan = {**VARIANTS, "breakdown": BREAKDOWN}
    runs = [(state, name) for state in STATES for name in plan]
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {run: [] for run in runs}
    with Watchdog(300 if args.quick else 1500, "parse_cost"), temp_airflow_home() as home:
        envs = bytecode_envs({**os.environ, **airflow_env(home)}, home)
        for modules in plan.values():  # writes the cached state's .pyc files; not measured
            sample(modules, envs["cached"])
        for round_number in range(repeats):
            shift = round_number % len(runs)
            for state, name in runs[shift:] + runs[:shift]:  # rotate the order every round
                samples[state, name].append(sample(plan[name], envs[state])[0])
            print(f"  round {round_number + 1}/{repeats} done", flush=True)
        _, ours_log = sample(OURS, envs["cached"], importtime=True)

    def median_ms(state: str, name: str, key: str = "extra") -> float:
        return float(statistics.median(s[key] for s in samples[state, name])) * 1000

    extra = {(state, name): median_ms(state, name) for state in STATES for name in VARIANTS}
    print(f"\nDAG-parse cost: median of {repeats} fresh interpreters per variant and state; import "
          f"airflow.sdk alone takes {median_ms('cached', 'ours', 'sdk'):.0f} ms with cached bytecode, "
          f"{median_ms('source', 'ours', 'sdk'):.0f} ms compiled from source")  # fmt: skip
    rows = []
    for name, modules in VARIANTS.items():
        row = [name, " + ".join(m.rsplit(".", 2)[-2] + "." + m.rsplit(".", 1)[-1] for m in modules)]
        for state in STATES:
            runs_ms = [s["extra"] * 1000 for s in samples[state, name]]
            row += [f"{extra[state, name]:.1f}", f"{min(runs_ms):.1f} - {max(runs_ms):.1f}",
                    f"{extra[state, name] / extra[state, 'http']:.3f}x"]  # fmt: skip
        rows.append(row)
    print(table(["variant", "modules (after airflow.sdk)",
                 "cached: adds ms", "min - max", "vs http",
                 "source: adds ms", "min - max", "vs http"], rows))  # fmt: skip

    ours_ms, ratio = extra["cached", "ours"], extra["cached", "ours"] / extra["cached", "http"]
    targets = [
        ["ours adds (ms, 4 modules, cached bytecode)", f"{ours_ms:.1f}", f"<= {TARGET_MS:.0f}", verdict(ours_ms, TARGET_MS)],
        ["ours vs http operator (cached bytecode)", f"{ratio:.3f}x", f"<= {TARGET_VS_HTTP}x", verdict(ratio, TARGET_VS_HTTP)],
    ]  # fmt: skip
    print()
    print(table(["target", "measured", "limit", "verdict"], targets))

    print("\nWhere the ms go: the same imports one step at a time, each step's median (dependencies first):")
    steps = {
        state: [statistics.median(s["steps"][i] for s in samples[state, "breakdown"]) * 1000 for i in range(len(BREAKDOWN))]
        for state in STATES
    }  # fmt: skip
    print(table(
        ["step (after airflow.sdk)", *(f"{state} ms" for state in STATES)],
        [[m, *(f"{steps[state][i]:.1f}" for state in STATES)] for i, m in enumerate(BREAKDOWN)]
        + [["total", *(f"{sum(steps[state]):.1f}" for state in STATES)]],
    ))  # fmt: skip

    ours_runs = samples["cached", "ours"]
    heavy_after = sorted({m for s in ours_runs for m in s["heavy_after"]})
    heavy_before = sorted({m for s in ours_runs for m in s["heavy_before"]})
    pulled = [m for m in heavy_after if m not in heavy_before]
    print(f"\nHeavy modules after airflow.sdk alone: {heavy_before or 'none'}")
    print(f"Heavy modules our imports added ({', '.join(HEAVY)}): {pulled or 'none'}")
    for name, chain in import_chains(ours_log, pulled).items():
        print(f"  {name}: " + " -> ".join(chain))
    print("\nLargest self times among the imports ours adds (cached bytecode; -X importtime inflates them):")
    print(table(
        ["module", "self ms", "cumulative ms"],
        [[name, f"{own / 1000:.1f}", f"{cumulative / 1000:.1f}"] for name, own, cumulative in top_imports(ours_log)],
    ))  # fmt: skip
    print(f"\nMachine: {machine_note()}")
    passed = all(row[3] == "PASS" for row in targets) and not pulled
    print("\nparse_cost:", "all targets PASS" if passed else "a target was MISSED (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

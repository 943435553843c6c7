"""What a task costs on Airflow's production shape, ours against Airflow's own cheapest deferrable task.

The cluster of ``make e2e-cluster`` (PostgreSQL, CeleryExecutor on Redis, two triggerers, two workers,
bytecode cached as a production image ships it) runs each contender's batch of 100 mapped tasks, each a
10 s wait (``bench/cluster_dags/bench_contenders.py``):

* **floor**: ``DateTimeSensorAsync`` (defers, resumes on a worker); **floor, end_from_trigger**;
* **ours**: ``WaveSpeedImageEditOperator`` deferrable; **ours, end_from_trigger**; **ours on the worker**
  (``deferrable=False``, at two latencies: the crossover below);
* **stock http**: ``HttpOperator`` submit plus deferrable ``HttpSensor`` (two tasks per edit);
* **sdk**: the official SDK's ``Client.run()`` in a ``PythonOperator``.

Per task: launches (``PATCH /execution/task-instances/{id}/run`` in the api-server's access log), calls to
Airflow's Execution API (every ``/execution/`` request the api-server logged during the batch), and
Airflow's CPU-seconds per process: the worker, scheduler, triggerer, api-server, dag-processor and
PostgreSQL process trees (reaped children included) over the batch, each minus what the same tree burns
idle over as long (measured just before), so the processes sum to the total. Three runs per contender,
interleaved; the median is reported, its processes those of the median run (the mean of the middle two
when the runs are even in number). A second table shows which processes ours' extra CPU over the floor
goes to.

``--settings`` measures the floor alone (both forms, 50 tasks, 2 runs) on a fresh cluster per variant of
``SETTINGS`` (the Celery pool, bytecode caching, the supervisor's heartbeat interval): the settings that
make the floor's absolute cost differ between clusters. Roughly 20 minutes on 2 cores.

    .venv/bin/python bench/cluster.py [--quick]
    .venv/bin/python bench/cluster.py --provider-at dd74cad   # "before": floor against that commit's provider
    .venv/bin/python bench/cluster.py --crossover
    .venv/bin/python bench/cluster.py --settings [--quick]   # --quick: two variants, 10 tasks, 1 run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import psutil
from _common import (
    BENCH_DIR,
    BENCH_KEY,
    HTTP_CONN_ID,
    REPO,
    EmulatorProcess,
    Watchdog,
    extract_provider,
    machine_note,
    table,
    verdict,
)

sys.path.insert(0, str(REPO))
from tests.cluster.celery_cluster import CeleryCluster  # noqa: E402
from tests.cluster.services import PostgresServer, RedisServer  # noqa: E402
from tests.e2e.processes import Budget, wait_for  # noqa: E402

CONTENDERS = {
    "floor": "bench_floor",
    "floor, end_from_trigger": "bench_floor_end_from_trigger",
    "ours": "bench_ours",
    "ours, end_from_trigger": "bench_ours_end_from_trigger",
    "stock http": "bench_stock_http",
    "sdk in PythonOperator": "bench_sdk_python",
}
TARGET_CPU_RATIO = 1.15
TARGET_API_CALLS = 12
#: The process trees whose CPU is Airflow's: the cluster's components by name, and PostgreSQL.
KINDS = ("worker", "scheduler", "triggerer", "api-server", "dag-processor", "postgres")

#: In ``SETTINGS``, replaced by a new empty directory per cluster: as the bytecode cache prefix it makes
#: Python read no ``__pycache__`` (the venv's included), and with PYTHONDONTWRITEBYTECODE it writes none
#: there either, so every import compiles from source.
EMPTY_DIR = "<a new empty directory>"
#: ``--settings``: each variant's changes to the cluster's environment (which applies them last). The
#: baseline is the cluster as the other modes run it: Celery's prefork pool, bytecode cached, and
#: ``[workers] min_heartbeat_interval`` 1 s (tests/e2e/cluster.py; Airflow's default is 5 s).
#: No variant starts task processes fresh: on Linux, Airflow 3.3's supervisor always ``os.fork()``s the
#: task process from the process that runs it (airflow/sdk/execution_time/supervisor.py,
#: ``_FORK_EXEC_PLATFORMS``: fork+exec on macOS only), and ``[core] execute_tasks_new_python_interpreter``
#: is read only on the Celery provider's Airflow 2 path. Celery's ``threads`` pool fails every task there:
#: the supervisor installs signal handlers, which only a main thread may (``ActivitySubprocess.wait``).
SETTINGS: dict[str, dict[str, str]] = {
    "baseline": {},
    "no bytecode cache": {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": EMPTY_DIR},
    # The cluster's task heartbeat timeout (20 s, tests/cluster/celery_cluster.py) is under 30 s: a launch
    # living past it would be failed for a missed heartbeat. 300 s is Airflow's default.
    "heartbeat 30 s": {
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "300",
    },
    # One task at a time per worker, run by the worker process itself (no pool processes).
    "pool solo": {"AIRFLOW__CELERY__POOL": "solo"},
}
QUICK_SETTINGS = ("baseline", "no bytecode cache")


def tree_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes and all their descendants, reaped ones included."""
    total = 0.0
    seen: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for process in members:
            if process.pid in seen:
                continue
            seen.add(process.pid)
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
    return total


def call_kind(line: str) -> str:
    """An access-log line's Execution API call with the ids taken out: ``PATCH task-instances/{id}/run``,
    ``POST xcoms/prediction_id``, ``GET connections``."""
    method = line.split("method=", 1)[1].split()[0] if "method=" in line else "?"
    path = line.split("path=", 1)[1].split()[0].split("?")[0]
    parts = path.split("/")[2:]  # after "/execution/"
    resource = parts[0] if parts else ""
    if resource == "task-instances" and len(parts) >= 3:
        return f"{method} task-instances/{{id}}/{parts[2]}"
    if resource == "xcoms" and len(parts) >= 5:
        return f"{method} xcoms/{unquote(parts[4])}"
    if resource == "store" and len(parts) >= 2:
        return f"{method} store/{parts[1]}"
    return f"{method} {resource}"


class Bench:
    def __init__(self, airflow: CeleryCluster, postgres: PostgresServer, tasks: int) -> None:
        self.airflow, self.postgres, self.tasks = airflow, postgres, tasks
        self.access_log = airflow.log_dir / "api-server.out"

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each kind of process tree."""
        roots = {
            kind: [p.pid for name, p in self.airflow.components.items() if name.startswith(kind)]
            for kind in KINDS
        }
        roots["postgres"].append(self.postgres.process.pid)
        return {kind: tree_cpu(pids) for kind, pids in roots.items()}

    def idle_rate(self, seconds: float) -> dict[str, float]:
        """Each kind's CPU seconds per second with no batch running: what a batch's figures are net of."""
        before = self.cpu()
        time.sleep(seconds)
        after = self.cpu()
        return {kind: (after[kind] - before[kind]) / seconds for kind in KINDS}

    def run(self, dag_id: str, idle_seconds: float) -> dict[str, Any]:
        rate = self.idle_rate(idle_seconds)
        offset = self.access_log.stat().st_size
        before = self.cpu()
        started = time.monotonic()
        run_id = self.airflow.api.trigger(dag_id)
        state = wait_for(
            lambda: (s := self.airflow.api.dag_run(dag_id, run_id)["state"]) in ("success", "failed") and s,
            timeout=900,
            what=f"{dag_id} to finish",
            budget=self.airflow.budget,
            interval=1.0,
        )
        wall = time.monotonic() - started
        time.sleep(3)  # the last task processes exit and are reaped
        after, elapsed = self.cpu(), time.monotonic() - started
        parts = {kind: (after[kind] - before[kind] - rate[kind] * elapsed) / self.tasks for kind in KINDS}
        with self.access_log.open("rb") as log:
            log.seek(offset)
            lines = [
                line
                for line in log.read().decode(errors="replace").splitlines()
                if "path=/execution/" in line
            ]
        kinds = Counter(call_kind(line) for line in lines)
        launches = kinds["PATCH task-instances/{id}/run"]
        return {
            "state": state,
            "cpu": sum(parts.values()),
            "parts": parts,
            "api": len(lines) / self.tasks,
            "calls": {kind: count / self.tasks for kind, count in kinds.items()},
            "launches": launches / self.tasks,
            "wall": wall,
        }


def middle(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The median run's CPU, total and per process (the mean of the middle two when even): its processes
    sum to its total, which medians taken process by process would not."""
    ordered = sorted(runs, key=lambda run: float(run["cpu"]))
    mid = ordered[(len(ordered) - 1) // 2 : len(ordered) // 2 + 1]
    return {
        key: statistics.mean(run["parts"][key] if key in KINDS else run[key] for run in mid)
        for key in ("cpu", *KINDS)
    }


def describe(result: dict[str, Any]) -> str:
    return (f"{result['launches']:.1f} launches  {result['cpu']:.3f} CPU-s/task  {result['api']:.1f} API calls/task  "
            f"wall {result['wall']:.0f} s  {result['state']}")  # fmt: skip


def bench_env(emulator: EmulatorProcess, tasks: int, latency: float) -> dict[str, str]:
    """The contenders' environment: batch size, latency, and the emulator to call."""
    http = {"conn_type": "http", "host": "127.0.0.1", "port": emulator.port, "schema": "http",
            "extra": {"Authorization": f"Bearer {BENCH_KEY}"}}  # fmt: skip
    return {
        "WAVESPEED_BENCH_TASKS": str(tasks),
        "WAVESPEED_BENCH_LATENCY": str(latency),
        "WAVESPEED_BENCH_IMAGE": _upload(emulator.base_url),
        "WAVESPEED_BENCH_KEY": BENCH_KEY,
        "WAVESPEED_BENCH_URL": emulator.base_url,
        f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": json.dumps(http),
    }


@contextlib.contextmanager
def cluster(
    root: Path,
    emulator: EmulatorProcess,
    env: dict[str, str],
    dag_ids: Iterable[str],
    tasks: int,
    warm_up: str,
    budget: Budget,
) -> Iterator[Bench]:
    """A fresh PostgreSQL, Redis and Airflow cluster with these DAGs unpaused, after one warm-up batch
    (bytecode compiled and cached where the cluster caches it, each long-lived process's lazy imports
    done), stopped on exit."""
    log_dir = root / "process-logs"
    log_dir.mkdir(parents=True)
    dag_ids = set(dag_ids)
    with contextlib.ExitStack() as stack:
        postgres = PostgresServer(log_dir, budget)
        stack.callback(postgres.stop)
        redis = RedisServer(log_dir, budget)
        stack.callback(redis.stop)
        connection = {"conn_type": "wavespeed", "password": BENCH_KEY, "host": emulator.base_url}
        airflow = CeleryCluster(
            root / "airflow", connection, budget, postgres=postgres, redis=redis, extra_env=env,
            dags_folder=BENCH_DIR / "cluster_dags",
        )  # fmt: skip
        stack.callback(airflow.stop_all)
        airflow.migrate()
        airflow.start_all()
        airflow.wait_healthy()
        airflow.wait_dags(dag_ids)
        for dag_id in dag_ids:
            airflow.api._request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        bench = Bench(airflow, postgres, tasks)
        bench.run(warm_up, idle_seconds=1)
        yield bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10 tasks, 1 run, 3 s latency")
    parser.add_argument(
        "--crossover", action="store_true",
        help="ours deferred against ours waiting on the worker, at 5, 20 and 60 s of latency (20 tasks, 2 runs)",
    )  # fmt: skip
    parser.add_argument(
        "--provider-at", metavar="COMMIT",
        help="measure the provider as it was at COMMIT (its package first on the cluster's PYTHONPATH), floor and ours only",
    )  # fmt: skip
    parser.add_argument(
        "--settings", action="store_true",
        help="the floor alone on a fresh cluster per variant of SETTINGS (50 tasks, 2 runs; --quick: two variants)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.settings:
        return settings(args.quick)
    tasks, runs, latency, idle = (10, 1, 3.0, 5.0) if args.quick else (100, 3, 10.0, 15.0)
    contenders = dict(CONTENDERS)
    latencies = [latency]
    extra_env: dict[str, str] = {}
    if args.crossover:
        tasks, runs, idle = 20, 2, 10.0
        contenders = {"ours": "bench_ours", "ours on the worker": "bench_ours_on_worker"}
        latencies = [5.0, 20.0, 60.0]
    if args.provider_at:
        contenders = {"floor": "bench_floor", f"ours at {args.provider_at}": "bench_ours"}
        extra_env = {
            "PYTHONPATH": str(
                extract_provider(args.provider_at, Path(tempfile.mkdtemp(prefix="wavespeed-provider-")))
            ),
            "WAVESPEED_BENCH_DAGS": ",".join(contenders.values()),
        }
    root = Path(tempfile.mkdtemp(prefix="wavespeed-bench-cluster-"))
    results: dict[str, list[dict[str, Any]]] = {
        f"{name} @{lat:g}s": [] for name in contenders for lat in latencies
    }
    with Watchdog(2400, "cluster"), emulator_process(latency) as emulator:
        env = {**bench_env(emulator, tasks, latency), **extra_env}
        with cluster(root, emulator, env, contenders.values(), tasks, "bench_ours", Budget(2400)) as bench:
            print(machine_note(), flush=True)
            for lat in latencies:
                emulator_config(emulator.base_url, processing_seconds=lat)
                for n in range(runs):
                    for name, dag_id in contenders.items():
                        result = bench.run(dag_id, idle)
                        results[f"{name} @{lat:g}s"].append(result)
                        print(f"  run {n + 1} {name:24} @{lat:g}s {describe(result)}", flush=True)
    if args.crossover:
        return report_crossover(results, latencies)
    if args.provider_at:
        return report_before(
            {name.rsplit(" @", 1)[0]: runs for name, runs in results.items()}, tasks, latency
        )
    return report({name.rsplit(" @", 1)[0]: runs for name, runs in results.items()}, tasks, latency)


def emulator_process(latency: float) -> EmulatorProcess:
    return EmulatorProcess(
        flags=["--processing-seconds", str(latency), "--processing-polls", "0", "--scale", "0.25"],
        bench_routes=True,
    )


def settings(quick: bool) -> int:
    """The floor, both forms, on a fresh cluster per variant of ``SETTINGS``: its absolute cost is what
    differs between clusters, so each variant shows what one setting moves it by."""
    tasks, runs, latency, idle = (10, 1, 3.0, 5.0) if quick else (50, 2, 10.0, 10.0)
    variants = {name: SETTINGS[name] for name in (QUICK_SETTINGS if quick else SETTINGS)}
    contenders = {name: CONTENDERS[name] for name in ("floor", "floor, end_from_trigger")}
    root = Path(tempfile.mkdtemp(prefix="wavespeed-bench-settings-"))
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        variant: {name: [] for name in contenders} for variant in variants
    }
    envs: dict[str, dict[str, str]] = {}
    with Watchdog(600 * len(variants) + 600, "cluster --settings"), emulator_process(latency) as emulator:
        print(machine_note(), flush=True)
        for number, (variant, changes) in enumerate(variants.items()):
            empty = root / f"pycache-{number}"
            empty.mkdir()
            env = {
                **bench_env(emulator, tasks, latency),
                **{k: str(empty) if v == EMPTY_DIR else v for k, v in changes.items()},
            }
            with cluster(root / f"cluster-{number}", emulator, env, contenders.values(), tasks, "bench_floor",
                         Budget(1200)) as bench:  # fmt: skip
                envs[variant] = bench.airflow.env
                for n in range(runs):
                    for name, dag_id in contenders.items():
                        result = bench.run(dag_id, idle)
                        results[variant][name].append(result)
                        print(f"  {variant:18} run {n + 1} {name:24} {describe(result)}", flush=True)
            written = sum(1 for _ in empty.rglob("*.pyc"))
            if written:  # then that variant read them too
                print(f"  {variant}: {written} .pyc files written under the empty cache prefix", flush=True)
    return report_settings(results, envs, tasks, latency)


def report_settings(
    results: dict[str, dict[str, list[dict[str, Any]]]],
    envs: dict[str, dict[str, str]],
    tasks: int,
    latency: float,
) -> int:
    """The floor's cost per variant, against the baseline, and where it goes process by process."""
    base = {name: middle(runs)["cpu"] for name, runs in results["baseline"].items()}
    summary, rows = [], []
    for variant, contenders in results.items():
        env = envs[variant]
        cpu = {name: middle(runs)["cpu"] for name, runs in contenders.items()}
        summary.append([
            variant, env.get("AIRFLOW__CELERY__POOL", "prefork"), env["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"],
            "compiled per import" if env.get("PYTHONDONTWRITEBYTECODE") else "cached",
            *(f"{cpu[name]:.3f} ({cpu[name] / base[name]:.2f}x)" for name in contenders),
        ])  # fmt: skip
        for name, runs in contenders.items():
            mid = middle(runs)
            rows.append([
                variant, name, f"{mid['cpu']:.3f}", *(f"{mid[kind]:.3f}" for kind in KINDS),
                f"{statistics.median(r['launches'] for r in runs):.1f}", f"{statistics.median(r['api'] for r in runs):.1f}",
                f"{statistics.median(r['calls'].get(HEARTBEAT, 0.0) for r in runs):.1f}",
                f"{statistics.median(r['wall'] for r in runs):.0f}", " / ".join(f"{r['cpu']:.3f}" for r in runs),
                ",".join(sorted({r["state"] for r in runs})),
            ])  # fmt: skip
    print(f"\nThe floor's Airflow CPU-s per task by cluster setting, {tasks} mapped tasks a run, {latency:g} s wait, "
          "median of the runs (x the baseline's). Every task process is os.fork()ed by its supervisor: "
          "Airflow 3.3 has no setting to start it fresh.")  # fmt: skip
    headers = ["variant", "Celery pool", "min_heartbeat_interval s", "bytecode", *results["baseline"]]
    print(table(headers, summary))
    print("\nPer process (the median run's), per task:")
    print(table(["variant", "contender", "Airflow CPU-s", *KINDS, "launches", "API calls", "heartbeats", "wall s",
                 "every run CPU-s", "state"], rows))  # fmt: skip
    return 0


def emulator_config(base_url: str, **changes: Any) -> None:
    import requests

    requests.post(f"{base_url}/_emulator/config", json=changes, timeout=30).raise_for_status()


def report_crossover(results: dict[str, list[dict[str, Any]]], latencies: list[float]) -> int:
    """Below which model latency waiting on the worker costs less Airflow CPU than deferring."""
    rows = []
    points = []
    for lat in latencies:
        deferred = statistics.median(r["cpu"] for r in results[f"ours @{lat:g}s"])
        on_worker = statistics.median(r["cpu"] for r in results[f"ours on the worker @{lat:g}s"])
        points.append((lat, deferred, on_worker))
        rows.append(
            [f"{lat:g}", f"{deferred:.3f}", f"{on_worker:.3f}", "worker" if on_worker < deferred else "defer"]
        )
    print("\nAirflow CPU-s per edit, deferring against waiting on the worker (median of the runs):")
    print(table(["latency s", "deferred", "on the worker", "cheaper"], rows))
    (l0, d0, w0), (l1, d1, w1) = points[0], points[-1]
    slope = ((w1 - d1) - (w0 - d0)) / (l1 - l0)
    crossover = l0 - (w0 - d0) / slope if slope > 0 else float("inf")
    print(f"\ncrossover: waiting on the worker costs less below about {crossover:.0f} s of model latency "
          f"(CPU only; it also holds a worker slot for the whole wait)")  # fmt: skip
    return 0


def report_before(results: dict[str, list[dict[str, Any]]], tasks: int, latency: float) -> int:
    """An older provider against the floor, for the "before" column of RESULTS."""
    rows = []
    floor = statistics.median(r["cpu"] for r in results["floor"])
    for name, runs in results.items():
        cpu = statistics.median(r["cpu"] for r in runs)
        rows.append([
            name, f"{statistics.median(r['launches'] for r in runs):.1f}", f"{cpu:.3f}", f"{cpu / floor:.2f}x",
            f"{statistics.median(r['api'] for r in runs):.1f}", f"{middle(runs)['worker']:.3f}",
            f"{statistics.median(r['wall'] for r in runs):.0f}", " / ".join(f"{r['cpu']:.3f}" for r in runs),
        ])  # fmt: skip
    print(f"\nPer task, {tasks} mapped tasks a run, {latency:g} s latency, median of the runs:")
    print(
        table(
            [
                "contender",
                "launches",
                "Airflow CPU-s",
                "vs floor",
                "API calls",
                "worker",
                "wall s",
                "every run CPU-s",
            ],
            rows,
        )
    )
    report_calls(results)
    return 0


HEARTBEAT = "PUT task-instances/{id}/heartbeat"


def without_heartbeats(run: dict[str, Any]) -> float:
    """Calls per task less heartbeats: the supervisor sends one when a launch starts and one per
    ``[workers] min_heartbeat_interval`` it lives (1 s on this cluster, tests/e2e/cluster.py; Airflow's
    default is 5 s), so their number follows how loaded the machine is."""
    return float(run["api"] - run["calls"].get(HEARTBEAT, 0.0))


def report_calls(results: dict[str, list[dict[str, Any]]]) -> None:
    """Where each contender's Execution API calls go, per task (median of the runs), side by side."""
    kinds = sorted({kind for runs in results.values() for run in runs for kind in run["calls"]})
    rows = [
        [
            kind,
            *(
                f"{statistics.median(run['calls'].get(kind, 0.0) for run in runs):.2f}"
                for runs in results.values()
            ),
        ]
        for kind in kinds
    ]
    rows.append(
        ["all calls", *(f"{statistics.median(run['api'] for run in runs):.2f}" for runs in results.values())]
    )
    rows.append(
        [
            "all but heartbeats",
            *(f"{statistics.median(without_heartbeats(r) for r in runs):.2f}" for runs in results.values()),
        ]
    )
    print("\nWhere the Execution API calls go, per task (median of the runs):")
    print(table(["call", *results], rows))


def _upload(base_url: str) -> str:
    import requests

    sample = REPO / "example_dags" / "data" / "sample_input.png"
    response = requests.post(
        f"{base_url}/api/v3/media/upload/binary", headers={"Authorization": f"Bearer {BENCH_KEY}"},
        files={"file": ("input.png", sample.read_bytes())}, timeout=30,
    )  # fmt: skip
    response.raise_for_status()
    return str(response.json()["data"]["download_url"])


def report(results: dict[str, list[dict[str, Any]]], tasks: int, latency: float) -> int:
    def median(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in results[name]))

    mids = {name: middle(runs) for name, runs in results.items()}
    floor, floor_eft = mids["floor"]["cpu"], mids["floor, end_from_trigger"]["cpu"]
    rows = []
    for name in results:
        cpu = mids[name]["cpu"]
        rows.append([
            name, f"{median(name, 'launches'):.1f}", f"{cpu:.3f}", f"{cpu / floor:.2f}x", f"{cpu / floor_eft:.2f}x",
            f"{median(name, 'api'):.1f}", *(f"{mids[name][kind]:.3f}" for kind in KINDS), f"{median(name, 'wall'):.0f}",
            " / ".join(f"{r['cpu']:.3f}" for r in results[name]),
        ])  # fmt: skip
    print(
        f"\nPer task, {tasks} mapped tasks a run, {latency:g} s latency, median of the runs (processes: the median run's):"
    )
    print(table(
        ["contender", "launches", "Airflow CPU-s", "vs floor", "vs floor eft", "API calls", *KINDS, "wall s",
         "every run CPU-s"], rows,
    ))  # fmt: skip
    pairs = {
        "ours - floor": ("ours", "floor"),
        "ours eft - floor eft": ("ours, end_from_trigger", "floor, end_from_trigger"),
    }
    extra = [[kind, *(f"{mids[a][kind] - mids[b][kind]:+.3f}" for a, b in pairs.values())] for kind in KINDS]
    extra.append(
        ["sum = total delta", *(f"{mids[a]['cpu'] - mids[b]['cpu']:+.3f}" for a, b in pairs.values())]
    )
    print("\nWhere ours' extra CPU goes, CPU-s per task (the median runs'):")
    print(table(["process", *pairs], extra))
    report_calls(results)
    ours, ours_eft = mids["ours"]["cpu"], mids["ours, end_from_trigger"]["cpu"]
    targets = [
        ["ours vs floor, CPU-s per task (2 launches each)", f"{ours / floor:.2f}x", f"<= {TARGET_CPU_RATIO}x", verdict(ours / floor, TARGET_CPU_RATIO)],
        ["ours, end_from_trigger vs the floor's (1 launch each)", f"{ours_eft / floor_eft:.2f}x", f"<= {TARGET_CPU_RATIO}x", verdict(ours_eft / floor_eft, TARGET_CPU_RATIO)],
        ["ours, Execution API calls per edit", f"{median('ours', 'api'):.1f}", f"<= {TARGET_API_CALLS}", verdict(median("ours", "api"), TARGET_API_CALLS)],
    ]  # fmt: skip
    print()
    print(table(["target", "measured", "limit", "verdict"], targets))
    print(
        f"\ncluster: {'all targets PASS' if all(t[-1] == 'PASS' for t in targets) else 'a target was MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

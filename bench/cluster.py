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
Airflow's total CPU-seconds: the CPU of the worker, scheduler, triggerer, api-server, dag-processor and
PostgreSQL process trees (reaped children included) over the batch, minus what the same trees burn idle
over as long (measured just before). Three runs per contender, interleaved; the median is reported.

    .venv/bin/python bench/cluster.py [--quick]
    .venv/bin/python bench/cluster.py --provider-at dd74cad   # "before": floor against that commit's provider
    .venv/bin/python bench/cluster.py --crossover
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
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
    def __init__(self, airflow: CeleryCluster, postgres: PostgresServer, emulator: EmulatorProcess, tasks: int) -> None:
        self.airflow, self.postgres, self.emulator, self.tasks = airflow, postgres, emulator, tasks
        self.access_log = airflow.log_dir / "api-server.out"

    def pids(self, kinds: tuple[str, ...] = ()) -> list[int]:
        components = [p for name, p in self.airflow.components.items() if not kinds or name.startswith(kinds)]
        extra = [self.postgres.process.pid] if not kinds or "postgres" in kinds else []
        return [p.pid for p in components] + extra

    def idle_rate(self, seconds: float) -> float:
        before = tree_cpu(self.pids())
        time.sleep(seconds)
        return (tree_cpu(self.pids()) - before) / seconds

    def run(self, dag_id: str, idle_seconds: float) -> dict[str, Any]:
        rate = self.idle_rate(idle_seconds)
        offset = self.access_log.stat().st_size
        parts = {kind: tree_cpu(self.pids((kind,))) for kind in ("worker", "scheduler", "triggerer", "postgres")}
        before = tree_cpu(self.pids())
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
        spent = tree_cpu(self.pids()) - before - rate * (wall + 3)
        parts = {kind: tree_cpu(self.pids((kind,))) - value for kind, value in parts.items()}
        with self.access_log.open("rb") as log:
            log.seek(offset)
            lines = [line for line in log.read().decode(errors="replace").splitlines() if "path=/execution/" in line]
        kinds = Counter(call_kind(line) for line in lines)
        launches = kinds["PATCH task-instances/{id}/run"]
        return {
            "state": state,
            "cpu": spent / self.tasks,
            "api": len(lines) / self.tasks,
            "calls": {kind: count / self.tasks for kind, count in kinds.items()},
            "launches": launches / self.tasks,
            "wall": wall,
            **{f"cpu_{kind}": value / self.tasks for kind, value in parts.items()},
        }


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
    args = parser.parse_args()
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
        extra_env = {"PYTHONPATH": str(extract_provider(args.provider_at, Path(tempfile.mkdtemp(prefix="wavespeed-provider-")))), "WAVESPEED_BENCH_DAGS": ",".join(contenders.values())}
    budget = Budget(2400)
    root = Path(tempfile.mkdtemp(prefix="wavespeed-bench-cluster-"))
    log_dir = root / "process-logs"
    log_dir.mkdir()
    started: list[Any] = []
    results: dict[str, list[dict[str, Any]]] = {f"{name} @{lat:g}s": [] for name in contenders for lat in latencies}
    with Watchdog(2400, "cluster"):
        try:
            postgres = PostgresServer(log_dir, budget)
            started.append(postgres)
            redis = RedisServer(log_dir, budget)
            started.append(redis)
            emulator = EmulatorProcess(flags=["--processing-seconds", str(latency), "--processing-polls", "0", "--scale", "0.25"], bench_routes=True)
            emulator.start()
            started.append(emulator)
            image = _upload(emulator.base_url)
            http = {"conn_type": "http", "host": "127.0.0.1", "port": emulator.port, "schema": "http",
                    "extra": {"Authorization": f"Bearer {BENCH_KEY}"}}  # fmt: skip
            env = {
                "WAVESPEED_BENCH_TASKS": str(tasks),
                "WAVESPEED_BENCH_LATENCY": str(latency),
                "WAVESPEED_BENCH_IMAGE": image,
                "WAVESPEED_BENCH_KEY": BENCH_KEY,
                "WAVESPEED_BENCH_URL": emulator.base_url,
                f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": json.dumps(http),
                **extra_env,
            }
            connection = {"conn_type": "wavespeed", "password": BENCH_KEY, "host": emulator.base_url}
            airflow = CeleryCluster(
                root / "airflow", connection, budget, postgres=postgres, redis=redis, extra_env=env,
                dags_folder=BENCH_DIR / "cluster_dags",
            )  # fmt: skip
            started.append(airflow)
            airflow.migrate()
            airflow.start_all()
            airflow.wait_healthy()
            airflow.wait_dags(set(contenders.values()))
            bench = Bench(airflow, postgres, emulator, tasks)
            print(machine_note(), flush=True)
            for dag_id in contenders.values():  # warm-up: bytecode compiled and cached, DAGs unpaused
                airflow.api._request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
            bench.run("bench_ours", idle_seconds=1)
            for lat in latencies:
                emulator_config(emulator.base_url, processing_seconds=lat)
                for n in range(runs):
                    for name, dag_id in contenders.items():
                        result = bench.run(dag_id, idle)
                        results[f"{name} @{lat:g}s"].append(result)
                        print(f"  run {n + 1} {name:24} @{lat:g}s {result['launches']:.1f} launches  {result['cpu']:.3f} "
                              f"CPU-s/task  {result['api']:.1f} API calls/task  wall {result['wall']:.0f} s  {result['state']}",
                              flush=True)  # fmt: skip
        finally:
            for service in reversed(started):
                if isinstance(service, CeleryCluster):
                    service.stop_all()
                else:
                    service.stop()
    if args.crossover:
        return report_crossover(results, latencies)
    if args.provider_at:
        return report_before({name.rsplit(" @", 1)[0]: runs for name, runs in results.items()}, tasks, latency)
    return report({name.rsplit(" @", 1)[0]: runs for name, runs in results.items()}, tasks, latency)


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
        rows.append([f"{lat:g}", f"{deferred:.3f}", f"{on_worker:.3f}", "worker" if on_worker < deferred else "defer"])
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
            f"{statistics.median(r['api'] for r in runs):.1f}", f"{statistics.median(r['cpu_worker'] for r in runs):.3f}",
            f"{statistics.median(r['wall'] for r in runs):.0f}", " / ".join(f"{r['cpu']:.3f}" for r in runs),
        ])  # fmt: skip
    print(f"\nPer task, {tasks} mapped tasks a run, {latency:g} s latency, median of the runs:")
    print(table(["contender", "launches", "Airflow CPU-s", "vs floor", "API calls", "worker", "wall s", "every run CPU-s"], rows))
    report_calls(results)
    return 0


HEARTBEAT = "PUT task-instances/{id}/heartbeat"


def without_heartbeats(run: dict[str, Any]) -> float:
    """Calls per task less heartbeats: the supervisor sends one when a launch starts and one per
    ``min_heartbeat_interval`` (5 s) it lives, so their number follows how loaded the machine is."""
    return float(run["api"] - run["calls"].get(HEARTBEAT, 0.0))


def report_calls(results: dict[str, list[dict[str, Any]]]) -> None:
    """Where each contender's Execution API calls go, per task (median of the runs), side by side."""
    kinds = sorted({kind for runs in results.values() for run in runs for kind in run["calls"]})
    rows = [
        [kind, *(f"{statistics.median(run['calls'].get(kind, 0.0) for run in runs):.2f}" for runs in results.values())]
        for kind in kinds
    ]
    rows.append(["all calls", *(f"{statistics.median(run['api'] for run in runs):.2f}" for runs in results.values())])
    rows.append(["all but heartbeats", *(f"{statistics.median(without_heartbeats(r) for r in runs):.2f}" for runs in results.values())])
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
        return statistics.median(r[key] for r in results[name])

    floor, floor_eft = median("floor", "cpu"), median("floor, end_from_trigger", "cpu")
    rows = []
    for name in results:
        cpu = median(name, "cpu")
        rows.append([
            name, f"{median(name, 'launches'):.1f}", f"{cpu:.3f}", f"{cpu / floor:.2f}x", f"{cpu / floor_eft:.2f}x",
            f"{median(name, 'api'):.1f}", f"{median(name, 'cpu_worker'):.3f}", f"{median(name, 'cpu_scheduler'):.3f}",
            f"{median(name, 'cpu_triggerer'):.3f}", f"{median(name, 'cpu_postgres'):.3f}", f"{median(name, 'wall'):.0f}",
            " / ".join(f"{r['cpu']:.3f}" for r in results[name]),
        ])  # fmt: skip
    print(f"\nPer task, {tasks} mapped tasks a run, {latency:g} s latency, median of the runs:")
    print(table(
        ["contender", "launches", "Airflow CPU-s", "vs floor", "vs floor eft", "API calls", "worker", "scheduler",
         "triggerer", "postgres", "wall s", "every run CPU-s"], rows,
    ))  # fmt: skip
    report_calls(results)
    ours, ours_eft = median("ours", "cpu"), median("ours, end_from_trigger", "cpu")
    targets = [
        ["ours vs floor, CPU-s per task (2 launches each)", f"{ours / floor:.2f}x", f"<= {TARGET_CPU_RATIO}x", verdict(ours / floor, TARGET_CPU_RATIO)],
        ["ours, end_from_trigger vs the floor's (1 launch each)", f"{ours_eft / floor_eft:.2f}x", f"<= {TARGET_CPU_RATIO}x", verdict(ours_eft / floor_eft, TARGET_CPU_RATIO)],
        ["ours, Execution API calls per edit", f"{median('ours', 'api'):.1f}", f"<= {TARGET_API_CALLS}", verdict(median("ours", "api"), TARGET_API_CALLS)],
    ]  # fmt: skip
    print()
    print(table(["target", "measured", "limit", "verdict"], targets))
    print(f"\ncluster: {'all targets PASS' if all(t[-1] == 'PASS' for t in targets) else 'a target was MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

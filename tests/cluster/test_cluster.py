"""The provider on Airflow's production shape (issue 12): PostgreSQL, CeleryExecutor on Redis, two triggerers,
two Celery workers, the emulator with faults on. ``make e2e-cluster`` runs this module.

1. Load: 200 mapped edits through a pool with poll 503s and submit 429s: all succeed, one billed submit each.
2. Triggerer failover: SIGKILL the triggerer holding most waits; the other takes them over, no resubmit.
3. Worker loss: SIGKILL the Celery worker running edits (some waiting on it, some inside a slow submit);
   retries resume the stored predictions, and a duplicate comes only from the documented window: a
   worker killed inside the submit POST, before the prediction id could be stored.
4. Secrets: the key is in no log file, no table of the metadata database, no Redis key.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.cluster.celery_cluster import CeleryCluster
from tests.cluster.services import PostgresServer, RedisServer
from tests.e2e.cluster import EmulatorProcess
from tests.e2e.processes import Budget, wait_for
from tests.e2e.secret_scan import files_containing, files_under

pytestmark = pytest.mark.cluster

EDITS_DAG = "wavespeed_cluster_edits"
LOSS_DAG = "wavespeed_cluster_worker_loss"
END_DAG = "wavespeed_cluster_end_from_trigger"
MODULE_BUDGET_SECONDS = 1800.0
LOAD_EDITS = 200
POOL_SLOTS = 16


@dataclass
class Cluster:
    airflow: CeleryCluster
    emulator: EmulatorProcess
    postgres: PostgresServer
    redis: RedisServer
    api_key: str
    image_url: str
    budget: Budget
    root: Path

    def trigger(self, dag_id: str, prompts: list[str]) -> str:
        return self.airflow.api.trigger(dag_id, {"prompts": prompts, "image_url": self.image_url})

    def edits(self, dag_id: str, run_id: str) -> dict[int, dict[str, Any]]:
        """Map index -> every mapped ``edit`` instance of the run, as the API describes it."""
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances"
        found: dict[int, dict[str, Any]] = {}
        while True:  # the API answers at most 100 a page
            page = self.airflow.api.get(path, limit=100, offset=len(found), task_id_pattern="edit")["task_instances"]
            found.update({ti["map_index"]: ti for ti in page if ti["task_id"] == "edit"})
            if len(page) < 100:
                return found

    def edit_states(self, dag_id: str, run_id: str) -> dict[int, str | None]:
        return {index: ti["state"] for index, ti in self.edits(dag_id, run_id).items()}

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.airflow.api.dag_run(dag_id, run_id)["state"])

    def wait_run(self, dag_id: str, run_id: str, timeout: float, what: str) -> str:
        return wait_for(
            lambda: (state := self.run_state(dag_id, run_id)) in ("success", "failed") and state,
            timeout=timeout,
            what=what,
            budget=self.budget,
            processes=self.airflow.live(),
            interval=2.0,
            extra=lambda: f"edit states: {Counter(self.edit_states(dag_id, run_id).values())}",
        )

    def predictions_by_prompt(self) -> Counter[str]:
        summaries = requests.get(f"{self.emulator.base_url}/_emulator/predictions", timeout=30).json()
        return Counter(summary["prompt"] for summary in summaries)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    budget = Budget(MODULE_BUDGET_SECONDS)
    root = tmp_path_factory.mktemp("cluster")
    log_dir = root / "process-logs"
    log_dir.mkdir()
    api_key = f"ws-cluster-SECRET-{secrets.token_hex(16)}"
    started: list[Any] = []
    try:
        postgres = PostgresServer(log_dir, budget)
        started.append(postgres)
        redis = RedisServer(log_dir, budget)
        started.append(redis)
        emulator = EmulatorProcess(api_key, log_dir, budget, processing_seconds=8)
        started.append(emulator)
        emulator.configure(poll_5xx_rate=0.1, submit_429_rate=0.1, retry_after="0.2", seed=12)
        connection = {"conn_type": "wavespeed", "password": api_key, "host": emulator.base_url}
        airflow = CeleryCluster(root / "airflow", connection, budget, postgres=postgres, redis=redis)
        started.append(airflow)
        airflow.migrate()
        airflow.start_all()
        airflow.wait_healthy()
        airflow.wait_dags({EDITS_DAG, LOSS_DAG, END_DAG})
        airflow.api.post("/pools", {"name": "wavespeed", "slots": POOL_SLOTS, "include_deferred": False})
        image_url = _upload_sample(emulator.base_url, api_key)
        yield Cluster(airflow, emulator, postgres, redis, api_key, image_url, budget, root)
    finally:
        for service in reversed(started):
            if isinstance(service, CeleryCluster):
                service.stop_all()
            elif isinstance(service, EmulatorProcess):
                service.close()
            else:
                service.stop()


def _upload_sample(base_url: str, api_key: str) -> str:
    sample = Path(__file__).resolve().parents[2] / "example_dags" / "data" / "sample_input.png"
    response = requests.post(
        f"{base_url}/api/v3/media/upload/binary",
        headers={"Authorization": f"Bearer {api_key}"},
        files={"file": ("input.png", sample.read_bytes())},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["data"]["download_url"])


def test_load_every_edit_succeeds_with_one_billed_submit(cluster: Cluster) -> None:
    prompts = [f"load-{n:03d}" for n in range(LOAD_EDITS)]
    run_id = cluster.trigger(EDITS_DAG, prompts)
    state = cluster.wait_run(EDITS_DAG, run_id, timeout=900, what=f"{LOAD_EDITS} edits to finish")
    states = cluster.edit_states(EDITS_DAG, run_id)
    assert state == "success" and Counter(states.values()) == {"success": LOAD_EDITS}, Counter(states.values())
    billed = cluster.predictions_by_prompt()
    assert {prompt: billed[prompt] for prompt in prompts} == dict.fromkeys(prompts, 1), "one submit per edit"
    stats = requests.get(f"{cluster.emulator.base_url}/_emulator/stats", timeout=30).json()
    assert stats["submits_rejected"] > 0, "submit 429s were answered (and retried)"
    for map_index in (0, LOAD_EDITS // 2, LOAD_EDITS - 1):
        path = f"/dags/{EDITS_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/edit/xcomEntries/return_value"
        outputs = cluster.airflow.api.get(path, map_index=map_index, deserialize="true")["value"]
        assert outputs and outputs[0].startswith(cluster.emulator.base_url + "/outputs/"), outputs


def test_triggerer_failover_loses_nothing_and_resubmits_nothing(cluster: Cluster) -> None:
    airflow = cluster.airflow
    cluster.emulator.configure(processing_seconds=60)
    prompts = [f"failover-{n:02d}" for n in range(24)]
    run_id = cluster.trigger(EDITS_DAG, prompts)

    def all_deferred() -> dict[str, str] | None:
        held = airflow.trigger_assignments()
        return held if len(held) == len(prompts) else None

    held = wait_for(all_deferred, timeout=240, what="24 waits held by the triggerers", budget=cluster.budget, interval=1)
    by_job = Counter(held.values())
    victim = max(airflow.triggerer_jobs, key=lambda name: by_job.get(airflow.triggerer_jobs[name], 0))
    victim_job = airflow.triggerer_jobs[victim]
    survivor_job = next(job for name, job in airflow.triggerer_jobs.items() if name != victim)
    moved = {prediction for prediction, job in held.items() if job == victim_job}
    assert moved, f"the killed triggerer holds waits: {by_job}"
    airflow.components.pop(victim).kill()
    killed_at = time.monotonic()

    def taken_over() -> bool:
        now = airflow.trigger_assignments()
        return all(now.get(prediction) == survivor_job for prediction in moved if prediction in now)

    wait_for(taken_over, timeout=120, what="the other triggerer to take the waits over", budget=cluster.budget, interval=1)
    takeover_seconds = time.monotonic() - killed_at
    print(f"takeover of {len(moved)} waits after {takeover_seconds:.1f} s")
    assert takeover_seconds < 60, f"takeover took {takeover_seconds:.0f} s (threshold 15 s)"
    state = cluster.wait_run(EDITS_DAG, run_id, timeout=300, what="the failover run to finish")
    assert state == "success", Counter(cluster.edit_states(EDITS_DAG, run_id).values())
    billed = cluster.predictions_by_prompt()
    assert {prompt: billed[prompt] for prompt in prompts} == dict.fromkeys(prompts, 1), "no resubmit"
    airflow.start(victim)  # back to two triggerers for what follows


def test_worker_loss_resumes_stored_predictions(cluster: Cluster) -> None:
    """Waiting edits resume; a duplicate only where the worker died inside the submit POST (documented)."""
    airflow = cluster.airflow
    cluster.emulator.configure(processing_seconds=45, slow_submit_seconds=40)
    waiting = [f"loss-wait-{n}" for n in range(4)]
    in_submit = [f"loss-submit-{n} [slow-submit]" for n in range(3)]
    run_id = cluster.trigger(LOSS_DAG, waiting + in_submit)

    def caught_in_the_act() -> bool:
        billed = cluster.predictions_by_prompt()
        return all(billed[prompt] == 1 for prompt in waiting + in_submit)

    wait_for(caught_in_the_act, timeout=180, what="every edit submitted (some still inside the POST)", budget=cluster.budget)
    time.sleep(3)  # the waiting edits stored their ids and are polling
    airflow.components["worker-1"].kill()
    airflow.start("worker-1")  # a replacement, as an orchestrator would start one
    state = cluster.wait_run(LOSS_DAG, run_id, timeout=480, what="the worker-loss run to finish")
    assert state == "success", Counter(cluster.edit_states(LOSS_DAG, run_id).values())
    tries = sorted(ti["try_number"] for ti in cluster.edits(LOSS_DAG, run_id).values())
    assert min(tries) >= 2, f"every edit died with the worker and was retried: tries {tries}"
    billed = cluster.predictions_by_prompt()
    assert {prompt: billed[prompt] for prompt in waiting} == dict.fromkeys(waiting, 1), "resumed, not resubmitted"
    # The documented window: killed inside the submit POST, no id stored, so the retry submits again.
    assert all(1 <= billed[prompt] <= 2 for prompt in in_submit), {p: billed[p] for p in in_submit}
    print(f"duplicates from the in-submit window: {sum(billed[p] - 1 for p in in_submit)} of {len(in_submit)}")


def test_end_from_trigger_ends_each_edit_with_one_launch(cluster: Cluster) -> None:
    """Issue 12, part 4: success ends in the triggerer, one task launch per edit; the downstream task
    reads the outputs through the README's one-line workaround (they arrive as JSON text)."""
    cluster.emulator.configure(processing_seconds=8)
    prompts = [f"ended-{n}" for n in range(10)]
    offset = (cluster.airflow.log_dir / "api-server.out").stat().st_size
    run_id = cluster.trigger(END_DAG, prompts)
    assert cluster.wait_run(END_DAG, run_id, timeout=300, what="the end-from-trigger run") == "success"
    edits = cluster.edits(END_DAG, run_id)
    with (cluster.airflow.log_dir / "api-server.out").open("rb") as log:
        log.seek(offset)
        access = log.read().decode(errors="replace")
    launches = {index: access.count(f"path=/execution/task-instances/{ti['id']}/run ") for index, ti in edits.items()}
    assert set(launches.values()) == {1}, f"launches per edit: {launches}"
    path = f"/dags/{END_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/count_outputs/xcomEntries/return_value"
    assert cluster.airflow.api.get(path, deserialize="true")["value"] == len(prompts)
    billed = cluster.predictions_by_prompt()
    assert {prompt: billed[prompt] for prompt in prompts} == dict.fromkeys(prompts, 1)


def test_the_key_is_in_no_log_no_table_and_no_redis_key(cluster: Cluster) -> None:
    # Every file of the run: task and component logs, Airflow's home, PostgreSQL's data directory.
    assert files_containing(files_under(cluster.root, cluster.postgres.root), cluster.api_key) == {}
    dump = cluster.postgres.dump(cluster.root / "metadata.sql")
    text = dump.read_bytes()
    assert b"COPY public.task_instance" in text and cluster.api_key.encode() not in text, "pg_dump of the metadata DB"
    redis_text = cluster.redis.dump_text()
    assert redis_text and cluster.api_key not in redis_text

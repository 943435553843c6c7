"""The example DAGs in a real Airflow: scheduler, dag-processor, triggerer and api-server as processes.

One Airflow (SQLite, LocalExecutor, a temporary AIRFLOW_HOME) and one WaveSpeed emulator serve the
whole module, in this order:

1. ``wavespeed_image_edit``, ``wavespeed_submit_then_sense`` and an edit the emulator fails run at once;
   their results, XComs and task logs are read back through the REST API and the log files;
2. a slow edit is waiting in the triggerer when the triggerer is SIGKILLed; a new triggerer takes the
   trigger over and the run succeeds without a second submit;
3. the API key (only ever in the environment) is searched for in every file Airflow wrote, every
   process's output, the database and every XCom.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.api import AirflowApi, hitl_path
from tests.e2e.cluster import AirflowCluster, EmulatorProcess
from tests.e2e.processes import Budget, ManagedProcess, tail, wait_for
from tests.e2e.secret_scan import files_containing, files_under, sqlite_cells_containing

pytestmark = pytest.mark.e2e

EDIT_DAG = "wavespeed_image_edit"
SENSE_DAG = "wavespeed_submit_then_sense"
REVIEW_DAG = "wavespeed_review_and_publish"
PUBLISH_BUCKET = "wavespeed-published"  # the review example's default, made by `make local-s3`
TRIGGER_CLASS = "WaveSpeedPredictionTrigger"
TRIGGER_CLASSPATH = f"airflow_wavespeed.triggers.prediction.{TRIGGER_CLASS}"
EMULATED_FAILURE = "Emulated failure: the model rejected this request"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Every wait is cut short so the module ends (pass or fail) within 6.5 minutes, teardown included.
MODULE_BUDGET_SECONDS = 390.0
#: Model latency of the first runs. Real edits take 10-60 s; much shorter ones race Airflow itself:
#: when a trigger fires before the scheduler has seen the deferred attempt's exit, Airflow 3.1-3.3
#: can fail the resumed task ("state mismatch", apache/airflow#66374, #71580).
RUN_PROCESSING_SECONDS = 12.0
#: Model latency of the edit that outlives a triggerer (kill, restart, heartbeat expiry, reassignment).
RESTART_PROCESSING_SECONDS = 30.0


# -- the stack -------------------------------------------------------------------------------------------


@dataclass
class RunWatch:
    """One DAG run and every task-instance state seen while polling it."""

    dag_id: str
    run_id: str
    state: str | None = None
    #: task id -> distinct consecutive states seen.
    states: dict[str, list[str | None]] = field(default_factory=dict)
    #: task id -> the task instance as last seen while deferred (with its trigger and triggerer job).
    deferred: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: task id -> the task instance as last seen.
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)

    def update(self, api: AirflowApi) -> None:
        self.state = api.dag_run(self.dag_id, self.run_id)["state"]
        for task_id, ti in api.task_instances(self.dag_id, self.run_id).items():
            seen = self.states.setdefault(task_id, [])
            if not seen or seen[-1] != ti["state"]:
                seen.append(ti["state"])
            self.latest[task_id] = ti
            if ti["state"] == "deferred" and (task_id not in self.deferred or ti.get("triggerer_job")):
                self.deferred[task_id] = ti

    @property
    def finished(self) -> bool:
        return self.state in ("success", "failed")

    def summary(self) -> str:
        tasks = ", ".join(f"{task}: {' > '.join(map(str, states))}" for task, states in self.states.items())
        return f"{self.dag_id} {self.run_id}: {self.state} ({tasks})"


@dataclass
class Stack:
    """The running Airflow and emulator, and what the tests read from them."""

    cluster: AirflowCluster
    emulator: EmulatorProcess
    api_key: str
    budget: Budget
    moto_url: str = ""
    runs: list[RunWatch] = field(default_factory=list)
    #: Every XCom value and decrypted trigger kwargs read during the module (for the secret scan).
    read_back: list[Any] = field(default_factory=list)

    @property
    def api(self) -> AirflowApi:
        return self.cluster.api

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> RunWatch:
        run = RunWatch(dag_id, self.api.trigger(dag_id, conf))
        self.runs.append(run)
        return run

    def xcom(self, run: RunWatch, task_id: str, key: str = "return_value") -> Any:
        value = self.api.xcom(run.dag_id, run.run_id, task_id, key)
        self.read_back.append(value)
        return value

    def task_log_dir(self, run: RunWatch, task_id: str) -> Path:
        return (
            self.cluster.home
            / "logs"
            / f"dag_id={run.dag_id}"
            / f"run_id={run.run_id}"
            / f"task_id={task_id}"
        )

    def task_logs(self, run: RunWatch, task_id: str) -> str:
        """Every log file of the task instance (worker attempts and trigger logs), for messages."""
        folder = self.task_log_dir(run, task_id)
        return "\n".join(f"--- {path.name}\n{tail(path, 30)}" for path in sorted(folder.glob("attempt=*")))

    def watch(
        self,
        runs: list[RunWatch],
        *,
        timeout: float,
        what: str,
        done: Callable[[RunWatch], bool] = lambda run: run.finished,
    ) -> None:
        """Poll the runs' task instances (every state is recorded) until ``done`` holds for each."""

        def check() -> bool:
            for run in runs:
                run.update(self.api)
            return all(done(run) for run in runs)

        wait_for(
            check,
            timeout=timeout,
            what=what,
            budget=self.budget,
            processes=[*self.cluster.live(), self.emulator.process],
            interval=0.5,
            extra=lambda: "\n".join(run.summary() for run in runs),
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Emulator, ``airflow db migrate``, the four components; healthy and the example DAGs listed."""
    budget = Budget(MODULE_BUDGET_SECONDS)
    root = tmp_path_factory.mktemp("real-airflow")
    api_key = f"ws-e2e-SECRET-{secrets.token_hex(16)}"
    (root / "process-logs").mkdir()
    emulator: EmulatorProcess | None = None
    cluster: AirflowCluster | None = None
    local_s3 = start_local_s3(root / "process-logs", budget)
    try:
        moto_url = json.loads(local_s3.connection)["extra"]["endpoint_url"]
        emulator = EmulatorProcess(api_key, root / "process-logs", budget, RUN_PROCESSING_SECONDS)
        connection = {"conn_type": "wavespeed", "password": api_key, "host": emulator.base_url}
        # The review example as its docstring says to run it offline: the connection `make local-s3`
        # printed, the example's own default bucket (the script made it), nothing else.
        s3_env = {"AIRFLOW_CONN_AWS_DEFAULT": local_s3.connection}
        cluster = AirflowCluster(root, connection, budget, extra_env=s3_env)
        cluster.migrate()
        cluster.start_all()
        cluster.wait_healthy()
        cluster.wait_dags({EDIT_DAG, SENSE_DAG, REVIEW_DAG})
        yield Stack(cluster, emulator, api_key, budget, moto_url=moto_url)
    finally:
        if cluster is not None:
            cluster.stop_all()
        if emulator is not None:
            emulator.close()
        local_s3.process.stop()


@dataclass
class LocalS3:
    process: ManagedProcess
    #: The ``aws_default`` connection the script printed to export.
    connection: str


def start_local_s3(log_dir: Path, budget: Budget) -> LocalS3:
    """``scripts/local_s3.py`` (``make local-s3``) as a user starts it, on a free port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "WAVESPEED_"))}
    script = Path(__file__).resolve().parents[2] / "scripts" / "local_s3.py"
    process = ManagedProcess("local-s3", [sys.executable, str(script), "--port", "0"], env, log_dir)

    def exported() -> str | None:
        text = process.stdout_path.read_text()
        if "Local S3 ready at" not in text:
            return None
        (line,) = [line for line in text.splitlines() if "export AIRFLOW_CONN_AWS_DEFAULT=" in line]
        return line.split("=", 1)[1].strip().strip("'")

    connection = wait_for(exported, timeout=60, what="make local-s3 to be ready", budget=budget, processes=[process])
    return LocalS3(process, connection)


def s3_client(endpoint_url: str) -> Any:
    import boto3

    from tests.s3_fixtures import MOTO_KEYS, MOTO_REGION

    return boto3.client("s3", endpoint_url=endpoint_url, region_name=MOTO_REGION, **MOTO_KEYS)


@pytest.fixture(scope="module")
def first_runs(stack: Stack) -> dict[str, RunWatch]:
    """Phase 1: an edit, submit-then-sense, and an edit the emulator fails, all at once, to the end."""
    runs = {
        "edit": stack.trigger(EDIT_DAG, {"output_name": "edit"}),
        "sense": stack.trigger(SENSE_DAG),
        "fail": stack.trigger(EDIT_DAG, {"prompt": "[fail] on purpose", "output_name": "fail"}),
    }
    # The failing edit is tried twice (the example's retries=1, 10 s apart), hence the longer wait.
    stack.watch(list(runs.values()), timeout=210, what="the first three DAG runs to finish")
    return runs


def assert_succeeded(stack: Stack, run: RunWatch, task_id: str) -> None:
    assert run.state == "success", f"{run.summary()}\n{stack.task_logs(run, task_id)}"


# -- phase 1 ---------------------------------------------------------------------------------------------


def test_image_edit_stores_png_files_and_returns_their_paths(
    stack: Stack, first_runs: dict[str, RunWatch]
) -> None:
    """``wavespeed_image_edit`` succeeds; ``return_value`` lists stored PNG files."""
    run = first_runs["edit"]
    assert_succeeded(stack, run, "edit_image")
    paths = stack.xcom(run, "edit_image")
    assert isinstance(paths, list) and paths, paths
    for path in map(Path, paths):
        assert path.is_file(), f"{path} (from XCom) does not exist"
        assert path.is_relative_to(stack.cluster.output_dir / "edit"), path
        assert path.read_bytes().startswith(PNG_MAGIC), f"{path} is not a PNG"
    prediction_id = stack.xcom(run, "edit_image", "prediction_id")
    metadata = stack.xcom(run, "edit_image", "prediction")
    assert metadata["id"] == prediction_id
    assert metadata["status"] == "completed"


def test_submit_then_sense_returns_output_urls(stack: Stack, first_runs: dict[str, RunWatch]) -> None:
    """The submit returns the prediction id, the sensor its output URLs, and they serve PNGs."""
    run = first_runs["sense"]
    assert_succeeded(stack, run, "wait_for_edit")
    prediction_id = stack.xcom(run, "submit_edit")
    assert isinstance(prediction_id, str) and prediction_id
    urls = stack.xcom(run, "wait_for_edit")
    assert isinstance(urls, list) and urls, urls
    for url in urls:
        assert url.startswith(f"{stack.emulator.base_url}/outputs/{prediction_id}/"), url
    described = stack.xcom(run, "describe_outputs")
    assert [item["url"] for item in described] == urls
    assert all(item["content_type"] == "image/png" for item in described), described


def test_the_waits_happened_in_the_triggerer(stack: Stack, first_runs: dict[str, RunWatch]) -> None:
    """The edit and the sensor were deferred to our trigger, which a triggerer ran and fired."""
    for run, task_id in ((first_runs["edit"], "edit_image"), (first_runs["sense"], "wait_for_edit")):
        states = run.states.get(task_id, [])
        assert "deferred" in states, f"{task_id} never seen deferred: {run.summary()}"
        assert states[-1] == "success", run.summary()
        deferred = run.deferred[task_id]
        assert (deferred.get("trigger") or {}).get("classpath") == TRIGGER_CLASSPATH, deferred
        job = deferred.get("triggerer_job")
        assert job and job.get("job_type") == "TriggererJob", f"no triggerer job seen on {deferred}"
        # The triggerer writes the trigger's log next to the task's, named after its job id.
        trigger_log = stack.task_log_dir(run, task_id) / f"attempt=1.log.trigger.{job['id']}.log"
        assert trigger_log.is_file(), stack.task_logs(run, task_id)
        text = trigger_log.read_text()
        prediction_id = stack.xcom(
            run, "edit_image" if run.dag_id == EDIT_DAG else "submit_edit", "prediction_id"
        )
        # The trigger's own lines reach this task's log: its logger is shared by the class, and the
        # triggerer routes each line by the trigger's log context.
        assert f"waiting for WaveSpeed prediction {prediction_id}" in text, text[-2000:]
        # Issue 24: the triggerer logs the event (its repr) at INFO as a one-line summary, not the payload.
        (fired,) = [line for line in text.splitlines() if "Trigger fired event" in line]
        assert f"TriggerEvent<success: prediction {prediction_id}, 1 output(s)" in fired, fired
        assert "'outputs'" not in fired and len(fired) < 1000, fired


def test_the_triggerer_log_names_the_trigger_class(stack: Stack, first_runs: dict[str, RunWatch]) -> None:
    """Someone reading the triggerer's logs can tell a WaveSpeed prediction was being waited for."""
    triggerer_output = "\n".join(
        process.log_text() for process in stack.cluster.started if process.name.startswith("triggerer")
    )
    trigger_logs = "\n".join(
        path.read_text(errors="replace") for path in (stack.cluster.home / "logs").rglob("*.log.trigger.*")
    )
    named = TRIGGER_CLASS in triggerer_output + trigger_logs
    assert named, f"Neither the triggerer's output nor the trigger logs it wrote name {TRIGGER_CLASS}"


def test_a_failed_prediction_fails_the_task_with_its_id_and_error(
    stack: Stack, first_runs: dict[str, RunWatch]
) -> None:
    """The emulator fails ``[fail]`` prompts: the task log names the prediction and the API's error."""
    run = first_runs["fail"]
    assert run.state == "failed", run.summary()
    assert run.states["edit_image"][-1] == "failed", run.summary()
    assert "deferred" in run.states["edit_image"], (
        f"the failure did not come through the trigger: {run.summary()}"
    )
    assert "up_for_retry" in run.states["edit_image"] and run.latest["edit_image"]["try_number"] == 2, (
        f"the example's retries=1 did not retry: {run.summary()}"
    )
    prediction_id = stack.xcom(run, "edit_image", "prediction_id")
    log = stack.api.task_log(run.dag_id, run.run_id, "edit_image", try_number=2)
    assert prediction_id in log, log[-3000:]
    assert EMULATED_FAILURE in log, log[-3000:]
    assert stack.api_key not in log


# -- phase 2 ---------------------------------------------------------------------------------------------


def test_a_killed_triggerer_does_not_lose_or_resubmit_the_prediction(
    stack: Stack, first_runs: dict[str, RunWatch]
) -> None:
    """SIGKILL the triggerer mid-wait, start another: the same run succeeds with exactly one submit."""
    emulator, cluster = stack.emulator, stack.cluster
    emulator.configure(processing_seconds=RESTART_PROCESSING_SECONDS)
    submits_before = emulator.stats()["submits"]
    requests_before = len(emulator.request_log())
    run = stack.trigger(EDIT_DAG, {"output_name": "restart"})

    assigned_at: list[int] = []  # request-log length when first seen deferred on a triggerer

    def polled_in_triggerer() -> str | None:
        """The prediction id, once the deferred task's triggerer has polled it (not the worker)."""
        run.update(stack.api)
        ti = run.latest.get("edit_image", {})
        if ti.get("state") != "deferred" or not ti.get("triggerer_job"):
            return None
        log = emulator.request_log()
        if not assigned_at:
            assigned_at.append(len(log))
        prediction_id: str = stack.api.xcom(run.dag_id, run.run_id, "edit_image", "prediction_id")
        return prediction_id if _polls(log[assigned_at[0] :], prediction_id) else None

    prediction_id = wait_for(
        polled_in_triggerer,
        timeout=60,
        what="the edit to be deferred and polled by the triggerer",
        budget=stack.budget,
        processes=cluster.live(),
        extra=run.summary,
    )
    old_job = run.latest["edit_image"]["triggerer_job"]["id"]

    # While it waits, the trigger's stored kwargs (decrypted) name the prediction and hold no secret.
    rows = [row for row in cluster.trigger_rows() if prediction_id in row["kwargs"]]
    assert len(rows) == 1, cluster.trigger_rows()
    assert rows[0]["classpath"] == TRIGGER_CLASSPATH
    kwargs_text = rows[0]["kwargs"]
    stack.read_back.append(kwargs_text)
    assert stack.api_key not in kwargs_text and stack.api_key not in rows[0]["kwargs_stored"]

    polls_before_kill = _polls(emulator.request_log(), prediction_id)
    old_triggerer = cluster.components["triggerer"]
    old_triggerer.kill()
    assert not old_triggerer.running()
    cluster.start("triggerer")

    stack.watch([run], timeout=120, what="the edit to finish after the triggerer was killed and replaced")
    assert_succeeded(stack, run, "edit_image")
    states = run.states["edit_image"]
    assert "deferred" in states and "up_for_retry" not in states, run.summary()
    assert run.latest["edit_image"]["try_number"] == 1, run.latest["edit_image"]

    # Exactly one submit for this run; the new triggerer polled the same prediction to the end.
    assert emulator.stats()["submits"] - submits_before == 1
    new_requests = emulator.request_log()[requests_before:]
    submits = [
        r for r in new_requests if r["method"] == "POST" and r["path"].endswith("/openai/gpt-image-2/edit")
    ]
    assert len(submits) == 1, submits
    assert submits[0]["prediction_id"] == prediction_id
    assert _polls(emulator.request_log(), prediction_id) > polls_before_kill, "nobody polled after the kill"
    fired = [
        path
        for path in stack.task_log_dir(run, "edit_image").glob("attempt=1.log.trigger.*.log")
        if "Trigger fired event" in path.read_text()
    ]
    # The killed triggerer's log stops at "starting"; the event was fired by the new one.
    fired_by = [path.name.removeprefix("attempt=1.log.trigger.").removesuffix(".log") for path in fired]
    assert len(fired_by) == 1 and fired_by[0] != str(old_job), stack.task_logs(run, "edit_image")
    for path in map(Path, stack.xcom(run, "edit_image")):
        assert path.read_bytes().startswith(PNG_MAGIC), path
    assert stack.xcom(run, "edit_image", "prediction_id") == prediction_id


def _polls(request_log: list[dict[str, Any]], prediction_id: str) -> int:
    return sum(1 for r in request_log if r["method"] == "GET" and r["prediction_id"] == prediction_id)


# -- phase 3 ---------------------------------------------------------------------------------------------


def test_testing_a_connection_through_the_api_names_no_temporary_id(stack: Stack) -> None:
    """What the UI's "Test" button sends (issue 14): a form with ``port: 0`` and the key typed in works;
    a wrong key and an ``/api/v3`` base URL are explained without naming Airflow's temporary id."""
    form = {"connection_id": "wavespeed_form", "conn_type": "wavespeed", "host": stack.emulator.base_url, "port": 0}
    ok = stack.api.post("/connections/test", {**form, "password": stack.api_key})
    assert ok["status"] is True and "balance" in ok["message"], ok
    wrong = stack.api.post("/connections/test", {**form, "password": "sk-wrong-" + "x" * 20})
    assert wrong["status"] is False and "refused the API key" in wrong["message"], wrong
    assert "this connection" in wrong["message"] and "'wavespeed_form'" not in wrong["message"]
    assert not re.search(r"connection '[A-Za-z0-9]{8}'", wrong["message"]), wrong["message"]
    path = stack.api.post(
        "/connections/test", {**form, "host": stack.emulator.base_url + "/api/v3/", "password": stack.api_key}
    )
    assert path["status"] is False and "the base URL is the host only" in path["message"], path


def test_only_the_approved_run_publishes(stack: Stack) -> None:
    """Issue 13: edit, review in the UI's stead (Airflow's REST API), publish on approval only."""
    runs = {
        "approve": stack.trigger(REVIEW_DAG, {"prompt": "Approve me: a white studio background"}),
        "reject": stack.trigger(REVIEW_DAG, {"prompt": "Reject me: a neon background"}),
    }
    forms: dict[str, Any] = {}

    def forms_ready() -> bool:
        for name, run in runs.items():
            if name not in forms:
                try:
                    forms[name] = stack.api.get(hitl_path(REVIEW_DAG, run.run_id, "review"))
                except Exception:  # not asked yet: the edit is still running
                    pass
        return len(forms) == len(runs)

    wait_for(forms_ready, timeout=120, what="both review forms", budget=stack.budget, processes=stack.cluster.live())

    def paused_for_the_scheduler() -> bool:
        # A person answers seconds after the form appears. The test could answer within the second the
        # task pauses, before the scheduler has taken in the pause: on Airflow 3.3.2 the paused process's
        # executor event then meets an already re-queued task and the scheduler fails the review. Answer
        # as a person would: once the scheduler has recorded each review as paused (awaiting input on 3.3,
        # deferred to the triggerer on 3.1 and 3.2).
        log = (stack.cluster.log_dir / "scheduler.out").read_text(errors="replace")
        recorded = (
            f"TaskInstance Finished: dag_id={REVIEW_DAG}, task_id=review, run_id={run.run_id}," for run in runs.values()
        )
        lines = [line for line in log.splitlines() if "state=awaiting_input," in line or "state=deferred," in line]
        return all(any(head in line for line in lines) for head in recorded)

    wait_for(
        paused_for_the_scheduler, timeout=60, what="the scheduler to record both reviews as paused",
        budget=stack.budget, processes=stack.cluster.live(),
    )  # fmt: skip
    for name, form in forms.items():
        body = form["body"]
        assert "![edit 1, image 1](" in body and "0.0600 USD (quoted)" in body and "none flagged" in body, body
        assert ("Approve me" if name == "approve" else "Reject me") in body
        prompt = "Approve me: a white studio background" if name == "approve" else "Reject me: a neon background"
        assert form["subject"] == f'Review the WaveSpeed edit "{prompt}"', form["subject"]
    answer = {"approve": "Approve", "reject": "Reject"}
    for name, run in runs.items():
        stack.api.patch(
            hitl_path(REVIEW_DAG, run.run_id, "review"), {"chosen_options": [answer[name]], "params_input": {}}
        )
    stack.watch(list(runs.values()), timeout=90, what="the reviewed runs to finish")
    approved, rejected = runs["approve"], runs["reject"]
    assert approved.states["publish"][-1] == "success", approved.summary()
    assert rejected.states["publish"][-1] == "skipped", rejected.summary()
    published = stack.xcom(approved, "publish")
    keys = [o["Key"] for o in s3_client(stack.moto_url).list_objects_v2(Bucket=PUBLISH_BUCKET).get("Contents", [])]
    assert [f"s3://{PUBLISH_BUCKET}/{key}" for key in keys] == published, "only the approved run published"
    rejected_id = stack.xcom(rejected, "edit", "prediction_id")
    assert not any(rejected_id in key for key in keys)


def test_the_api_key_is_nowhere(stack: Stack) -> None:
    """Not in any XCom, file under AIRFLOW_HOME (logs, the SQLite DB), process output, or DB cell."""
    assert stack.runs, "no DAG run was triggered, nothing to scan"
    prediction_ids: list[str] = []
    for run in stack.runs:
        for task_id in stack.api.task_instances(run.dag_id, run.run_id):
            for key in stack.api.xcom_keys(run.dag_id, run.run_id, task_id):
                value = stack.xcom(run, task_id, key)
                if key == "prediction_id":
                    prediction_ids.append(value)
    assert prediction_ids, "no prediction_id XCom to read back"
    leaked = [value for value in stack.read_back if stack.api_key in json.dumps(value, default=str)]
    assert not leaked, leaked

    # Stop everything first, so every log is flushed and the database is no longer written.
    cluster = stack.cluster
    cluster.stop_all()
    stack.emulator.close()
    files = files_under(cluster.home, cluster.log_dir)
    assert cluster.db_path in files
    assert any(path.name == "attempt=1.log" for path in files), "no task log to scan"
    assert any(".log.trigger." in path.name for path in files), "no trigger log to scan"
    assert any(path.name.startswith("triggerer") for path in files), "no triggerer output to scan"

    hits = files_containing(files, stack.api_key)
    assert not hits, "the API key leaked into:\n" + "\n".join(
        f"{path}: ...{text}..." for path, text in hits.items()
    )
    cells = sqlite_cells_containing(cluster.db_path, stack.api_key)
    assert not cells, f"the API key is in the database: {cells}"

    # The scan does see what Airflow stored: the prediction ids are in the database and the logs.
    assert sqlite_cells_containing(cluster.db_path, prediction_ids[0])
    assert files_containing(files, prediction_ids[0])

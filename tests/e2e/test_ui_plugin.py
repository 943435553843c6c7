"""The WaveSpeed views in a real browser (Debian's Chromium, driven by Playwright) against a real Airflow.

One Airflow (scheduler, dag-processor, triggerer, api-server) and the emulator run an image edit, a
mapped batch of three edits, a submit-then-sense pair and a text-to-video run; then the browser, logged in
through the UI's own session cookie, opens the WaveSpeed tab inside Airflow's task-instance page, the run
gallery and the runs list, and checks that every output image loaded (a non-zero natural width) and the
video became playable. Anonymous requests to every plugin endpoint and a signed-in user
without access to the DAG are refused. With ``WAVESPEED_UI_SCREENSHOTS=docs`` the screenshots the
README shows are written to ``docs/``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.e2e.cluster import ADMIN_USER, REPO_ROOT, AirflowCluster, EmulatorProcess
from tests.e2e.processes import Budget, wait_for
from tests.e2e.ui_auth import OUTSIDER

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
EDIT_DAG = "wavespeed_image_edit"
BATCH_DAG = "wavespeed_batch_edit"
SENSE_DAG = "wavespeed_submit_then_sense"
VIDEO_DAG = "wavespeed_ui_video"
MODULE_BUDGET_SECONDS = 300.0
#: Model latency: long enough not to race Airflow's own deferral bookkeeping (see test_real_airflow).
PROCESSING_SECONDS = 8.0
BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium (.ci/run installs it)", allow_module_level=True)


class Views:
    """The running stack, the two finished runs and tokens for the admin and the outsider."""

    def __init__(self, cluster: AirflowCluster, root: Path) -> None:
        self.cluster = cluster
        self.root = root
        self.runs: dict[str, str] = {}
        self.outsider_password = ""
        self.emulator_url = ""

    @property
    def url(self) -> str:
        return self.cluster.api_url

    def token(self, username: str, password: str) -> str:
        response = requests.post(
            f"{self.url}/auth/token", json={"username": username, "password": password}, timeout=10
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def endpoints(self) -> list[str]:
        """One URL of every route the plugin serves."""
        edit = quote(self.runs[EDIT_DAG], safe="")
        return [
            f"/wavespeed/ti/{EDIT_DAG}/{edit}/edit_image/-1",
            f"/wavespeed/run/{EDIT_DAG}/{edit}",
            f"/wavespeed/file/{EDIT_DAG}/{edit}/edit_image/-1/0",
            "/wavespeed/runs",
            "/wavespeed/static/style.css",
        ]


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Views]:
    budget = Budget(MODULE_BUDGET_SECONDS)
    root = tmp_path_factory.mktemp("ui-plugin")
    (root / "process-logs").mkdir()
    api_key = f"ws-ui-SECRET-{secrets.token_hex(16)}"
    emulator = EmulatorProcess(api_key, root / "process-logs", budget, PROCESSING_SECONDS)
    cluster: AirflowCluster | None = None
    try:
        dags = root / "dags"  # the example DAGs and a text-to-video run
        shutil.copytree(REPO_ROOT / "example_dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(Path(__file__).with_name("ui_dags") / "wavespeed_ui_video.py", dags)
        connection = {"conn_type": "wavespeed", "password": api_key, "host": emulator.base_url}
        extra = {
            "AIRFLOW__CORE__AUTH_MANAGER": "tests.e2e.ui_auth.OutsiderAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin,{OUTSIDER}:viewer",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        }
        cluster = AirflowCluster(root, connection, budget, extra_env=extra)
        view = Views(cluster, root)
        view.emulator_url = emulator.base_url.rstrip("/")
        passwords = json.loads((cluster.home / "passwords.json").read_text())
        view.outsider_password = passwords[OUTSIDER] = secrets.token_hex(8)
        (cluster.home / "passwords.json").write_text(json.dumps(passwords))
        cluster.migrate()
        cluster.start_all()
        cluster.wait_healthy()
        cluster.wait_dags({EDIT_DAG, BATCH_DAG, SENSE_DAG, VIDEO_DAG})
        view.runs = {
            EDIT_DAG: cluster.api.trigger(EDIT_DAG, {"output_name": "ui"}),
            BATCH_DAG: cluster.api.trigger(BATCH_DAG),
            SENSE_DAG: cluster.api.trigger(SENSE_DAG),
            VIDEO_DAG: cluster.api.trigger(VIDEO_DAG),
        }

        def finished() -> bool:
            states = {dag: cluster.api.dag_run(dag, run)["state"] for dag, run in view.runs.items()}
            assert "failed" not in states.values(), f"a run failed: {states}"
            return all(state == "success" for state in states.values())

        wait_for(finished, timeout=200, what="every run to succeed", budget=budget, processes=cluster.live())
        yield view
    finally:
        if cluster is not None:
            cluster.stop_all()
        emulator.close()


@pytest.fixture(scope="module")
def browser(views: Views) -> Iterator[Any]:
    """Chromium with the admin's UI session cookie (what the UI's login sets) for the api-server."""
    from playwright.sync_api import sync_playwright

    profile = views.root / "chromium-profile"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=BROWSER_ARGS,
            viewport={"width": 1200, "height": 800},
        )
        try:
            token = views.token(ADMIN_USER, views.cluster.password)
            context.add_cookies([{"name": "_token", "value": token, "url": views.url}])
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def loaded_images(frame: Any) -> list[tuple[str, int]]:
    """Every output image in the view once all are loaded: (src, natural width)."""
    frame.wait_for_function(
        "() => [...document.images].every(i => i.complete)", timeout=30_000
    )
    images: list[tuple[str, int]] = frame.eval_on_selector_all(
        "img", "els => els.map(i => [i.currentSrc, i.naturalWidth])"
    )
    return images


def screenshot(page: Any, name: str) -> None:
    if os.environ.get("WAVESPEED_UI_SCREENSHOTS") == "docs":
        page.screenshot(path=str(REPO_ROOT / "docs" / name))


def test_tab_renders_the_edit_inside_airflows_task_page(views: Views, browser: Any) -> None:
    run_id = views.runs[EDIT_DAG]
    page = browser.new_page()
    page.goto(f"{views.url}/dags/{EDIT_DAG}/runs/{quote(run_id, safe='')}/tasks/edit_image/plugin/wavespeed-task")
    frame_element = page.wait_for_selector("iframe[title='WaveSpeed']", timeout=60_000)
    frame = frame_element.content_frame()
    frame.wait_for_selector("h1", timeout=30_000)
    text = frame.inner_text("body")
    assert "openai/gpt-image-2/edit" in text and "completed" in text, text
    images = loaded_images(frame)
    assert images and all(width > 0 for _, width in images), images
    assert all("/wavespeed/file/" in src for src, _ in images), images  # stored locally, served by the plugin
    screenshot(page, "ui-task-tab.png")
    page.close()


def test_tab_plays_a_stored_video(views: Views, browser: Any) -> None:
    run_id = quote(views.runs[VIDEO_DAG], safe="")
    page = browser.new_page()
    page.goto(f"{views.url}/dags/{VIDEO_DAG}/runs/{run_id}/tasks/make_video/plugin/wavespeed-task")
    frame = page.wait_for_selector("iframe[title='WaveSpeed']", timeout=60_000).content_frame()
    video = frame.wait_for_selector("video", timeout=30_000)
    state = video.evaluate(
        """v => new Promise(done => {
            if (v.readyState >= 3) return done(v.readyState);
            v.addEventListener('canplay', () => done(v.readyState));
            v.addEventListener('error', () => done(-(v.error ? v.error.code : 99)));
            v.preload = 'auto'; v.load();
        })"""
    )
    assert state >= 3, f"the video did not become playable (readyState/error {state})"
    assert video.evaluate("v => v.duration") > 1.5
    assert video.evaluate("v => v.currentSrc").startswith(views.emulator_url)  # WaveSpeed's own URL
    assert "wavespeed-ai/wan-2.2/t2v-480p" in frame.inner_text("body")
    page.close()


def test_gallery_shows_every_output_of_the_mapped_batch(views: Views, browser: Any) -> None:
    run_id = views.runs[BATCH_DAG]
    page = browser.new_page()
    response = page.goto(f"{views.url}/wavespeed/run/{BATCH_DAG}/{quote(run_id, safe='')}")
    assert response is not None and response.status == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy, policy
    assert page.locator("script").count() == 0
    images = loaded_images(page.main_frame)
    assert len(images) == 3 and all(width > 0 for _, width in images), images
    assert page.locator(".cell").count() == 3
    assert "Make it a snowy winter morning" in page.inner_text("body")  # map_index_template labels
    # The same gallery as Airflow shows it: a tab of the run's page.
    page.goto(f"{views.url}/dags/{BATCH_DAG}/runs/{quote(run_id, safe='')}/plugin/wavespeed-gallery")
    frame = page.wait_for_selector("iframe[title='WaveSpeed gallery']", timeout=60_000).content_frame()
    frame.wait_for_selector(".cell", timeout=30_000)
    images = loaded_images(frame)
    assert len(images) == 3 and all(width > 0 for _, width in images), images
    screenshot(page, "ui-run-gallery.png")
    page.goto(f"{views.url}/wavespeed/run/{BATCH_DAG}/{quote(run_id, safe='')}?show=flagged")
    assert page.locator(".cell").count() == 0  # the emulator flags nothing
    # The runs list, as Airflow's navigation shows it.
    page.goto(f"{views.url}/plugin/wavespeed-runs")
    frame = page.wait_for_selector("iframe[title='WaveSpeed runs']", timeout=60_000).content_frame()
    frame.wait_for_selector("table", timeout=30_000)
    listed = frame.inner_text("body")
    assert run_id in listed and views.runs[EDIT_DAG] in listed, listed
    page.close()


def test_sensor_outputs_load_from_wavespeed_and_other_tasks_say_so(views: Views, browser: Any) -> None:
    """A sensor's outputs are WaveSpeed's own URLs (not stored): the browser loads them from there, the
    page's CSP names that origin and no other; a plain @task's tab is one line."""
    run = quote(views.runs[SENSE_DAG], safe="")
    page = browser.new_page()
    response = page.goto(f"{views.url}/wavespeed/ti/{SENSE_DAG}/{run}/wait_for_edit/{{MAP_INDEX}}")
    assert response is not None and response.status == 200
    emulator = views.emulator_url
    assert f"img-src 'self' {emulator};" in response.headers["content-security-policy"]
    images = loaded_images(page.main_frame)
    assert images and all(src.startswith(emulator) and width > 0 for src, width in images), images
    assert "will be deleted on" in page.inner_text("body")  # not stored: WaveSpeed's 7 days
    response = page.goto(f"{views.url}/wavespeed/ti/{SENSE_DAG}/{run}/describe_outputs/-1")
    assert response is not None and response.status == 200
    assert page.inner_text("body").strip() == "describe_outputs is not a WaveSpeed task."
    page.close()


def test_anonymous_requests_are_refused(views: Views) -> None:
    for path in views.endpoints():
        response = requests.get(views.url + path, timeout=10, allow_redirects=False)
        assert response.status_code in (401, 403), (path, response.status_code, response.text[:200])


def test_a_user_without_access_to_the_dag_is_refused(views: Views) -> None:
    headers = {"Authorization": f"Bearer {views.token(OUTSIDER, views.outsider_password)}"}
    admin = {"Authorization": f"Bearer {views.token(ADMIN_USER, views.cluster.password)}"}
    for path in views.endpoints():
        allowed = requests.get(views.url + path, headers=admin, timeout=10)
        assert allowed.status_code == 200, (path, allowed.status_code, allowed.text[:300])
        refused = requests.get(views.url + path, headers=headers, timeout=10)
        if path.endswith(("/runs", ".css")):  # no DAG of their own: answered, listing none of the runs
            assert refused.status_code == 200
            assert all(run_id not in refused.text for run_id in views.runs.values()), refused.text[:500]
        else:
            assert refused.status_code == 403, (path, refused.status_code, refused.text[:200])

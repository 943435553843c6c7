"""Shared fixtures: an isolated AIRFLOW_HOME, the emulator, and a `wavespeed` connection pointing at it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

# Airflow reads its home and config at import time: set them before anything imports airflow.
_HOME = tempfile.mkdtemp(prefix="airflow-wavespeed-tests-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
_ROOT = Path(__file__).resolve().parents[1]
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_ROOT / "example_dags")
# Two bundles: the example DAGs users see, and DAGs that only tests need (dag.test() wants them in one).
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(_ROOT / folder), "refresh_interval": 0},
        }
        for name, folder in (("wavespeed_examples", "example_dags"), ("wavespeed_test_dags", "tests/dags"))
    ]
)
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# Where the example DAGs store outputs (read when they are parsed): runs name a folder under it.
EXAMPLE_OUTPUT_DIR = Path(tempfile.mkdtemp(prefix="wavespeed-example-outputs-"))
os.environ["WAVESPEED_OUTPUT_DIR"] = str(EXAMPLE_OUTPUT_DIR)
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

import pytest  # noqa: E402

from airflow_wavespeed.emulator import Emulator  # noqa: E402

pytest.register_assert_rewrite("tests.emulator_fixtures")
from tests.emulator_fixtures import EMULATOR_API_KEY  # noqa: E402

pytest_plugins = ["tests.emulator_fixtures"]


def connection_json(base_url: str, api_key: str | None = EMULATOR_API_KEY) -> str:
    conn: dict[str, str] = {"conn_type": "wavespeed", "host": base_url}
    if api_key is not None:
        conn["password"] = api_key
    return json.dumps(conn)


@pytest.fixture
def wavespeed_conn(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """`wavespeed_default` points at the (reset) emulator with the right key."""
    monkeypatch.setenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", connection_json(emulator.base_url))
    return emulator


@pytest.fixture
def sample_png_path(tmp_path: Path, sample_png: bytes) -> Path:
    path = tmp_path / "input.png"
    path.write_bytes(sample_png)
    return path


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated SQLite metadata DB in the test AIRFLOW_HOME, for dag.test()."""
    from airflow.utils import db

    db.initdb() if hasattr(db, "initdb") else db.resetdb()


def load_dag_bag(folder: Path | str) -> object:
    """A DagBag of one folder, on Airflow 3.1 (airflow.models) as on 3.2+ (airflow.dag_processing)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(str(folder), include_examples=False) if "include_examples" in DagBag.__init__.__code__.co_varnames else DagBag(str(folder))

"""``python -m airflow_wavespeed.check_key``: the key check that needs no ``[core] test_connection`` (issue 24).

Each test runs the command as a user does, in its own process against the emulator over loopback, with
Airflow's connection testing left disabled (its default), and reads only what the process printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from airflow_wavespeed.emulator import Emulator
from tests.conftest import connection_json
from tests.emulator_fixtures import EMULATOR_API_KEY

#: A key the emulator refuses, long and unique enough to search the output for.
WRONG_KEY = "sk-wrong-check-key-0123456789abcdef"


def airflow_environment() -> dict[str, str]:
    """This session's environment plus its Fernet key: in unit-test mode each process makes up its own,
    and a connection saved here is encrypted with this one (a deployment keeps it in airflow.cfg)."""
    from airflow.configuration import conf

    return {**os.environ, "AIRFLOW__CORE__FERNET_KEY": conf.get("core", "fernet_key")}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**airflow_environment(), "AIRFLOW__CORE__TEST_CONNECTION": "Disabled", **(env or {})}
    return subprocess.run(
        [sys.executable, *args], env=environment, capture_output=True, text=True, timeout=180, check=False
    )


@pytest.fixture
def stored_connection(airflow_db: None, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A ``wavespeed`` connection saved in the metadata database (as the UI or ``airflow connections add``
    saves it), and no environment variable for it."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    monkeypatch.delenv("AIRFLOW_CONN_WAVESPEED_DEFAULT", raising=False)
    conn_id = "wavespeed_saved"
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        session.add(Connection(conn_id=conn_id, conn_type="wavespeed", host=emulator.base_url, password=EMULATOR_API_KEY))
    yield conn_id
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()


def test_it_prints_the_balance_of_a_connection_saved_in_the_database(stored_connection: str, emulator: Emulator) -> None:
    emulator.config.balance = 42.5
    result = run("-m", "airflow_wavespeed.check_key", stored_connection)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{stored_connection}: Connected to WaveSpeed at {emulator.base_url}; balance: 42.5 USD" in result.stdout
    assert EMULATOR_API_KEY not in result.stdout + result.stderr
    assert [(r.method, r.path) for r in emulator.requests] == [("GET", "/api/v3/balance")], "one free call, nothing billed"


def test_it_reads_the_default_connection_from_the_environment(emulator: Emulator) -> None:
    result = run("-m", "airflow_wavespeed.check_key", env={"AIRFLOW_CONN_WAVESPEED_DEFAULT": connection_json(emulator.base_url)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "wavespeed_default: Connected to WaveSpeed" in result.stdout and "balance: 100.0 USD" in result.stdout


def test_a_refused_key_exits_non_zero_and_is_not_printed(emulator: Emulator) -> None:
    env = {"AIRFLOW_CONN_WAVESPEED_WRONG": connection_json(emulator.base_url, WRONG_KEY)}
    result = run("-m", "airflow_wavespeed.check_key", "wavespeed_wrong", env=env)
    assert result.returncode == 1
    assert "wavespeed_wrong: the key check failed" in result.stderr and "refused the API key" in result.stderr
    assert WRONG_KEY not in result.stdout + result.stderr
    assert "balance:" not in result.stdout


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        (None, "no Airflow connection 'wavespeed_missing': create it"),
        ('{"conn_type": "wavespeed", "host": "http://127.0.0.1:9"}', "has no WaveSpeed API key"),
    ],
    ids=["missing", "no-key"],
)
def test_a_connection_that_cannot_be_checked_says_why(conn: str | None, expected: str) -> None:
    env = {"AIRFLOW_CONN_WAVESPEED_MISSING": conn} if conn else {}
    result = run("-m", "airflow_wavespeed.check_key", "wavespeed_missing", env=env)
    assert result.returncode == 1 and expected in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def test_airflows_own_test_is_off_by_default_and_prints_no_balance(stored_connection: str) -> None:
    """What the README says of ``airflow connections test``: refused until ``[core] test_connection =
    Enabled``, then it passes without showing the balance (hence check_key)."""
    airflow = [os.path.join(os.path.dirname(sys.executable), "airflow"), "connections", "test", stored_connection]
    environment = {k: v for k, v in airflow_environment().items() if k != "AIRFLOW__CORE__TEST_CONNECTION"}
    off = subprocess.run(airflow, env=environment, capture_output=True, text=True, timeout=180, check=False)
    assert off.returncode == 1 and "Testing connections is disabled" in off.stdout + off.stderr
    enabled = {**environment, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    on = subprocess.run(airflow, env=enabled, capture_output=True, text=True, timeout=180, check=False)
    assert on.returncode == 0 and "Connection success!" in on.stdout, on.stdout[-3000:] + on.stderr[-3000:]
    assert "balance" not in on.stdout

"""Check a ``wavespeed`` connection's API key from a shell: ``python -m airflow_wavespeed.check_key [conn_id]``.

It makes the call the connection form's "Test" button makes (``GET /api/v3/balance``, which bills
nothing) and prints the balance, on any Airflow the provider supports and whatever ``[core]
test_connection`` says: that setting gates Airflow's own testing (the UI button, ``airflow connections
test``), which is off by default, and the UI's test of a saved connection is broken on Airflow 3.3.1 and
later (apache/airflow#73298). It reads the connection the way the ``airflow connections`` commands do
(environment variables, secrets backends, the metadata database), so run it where those commands work.
The key is never printed; the exit status is 0 when WaveSpeed accepted the key, 1 when not.
"""

from __future__ import annotations

import argparse
import os
import sys

#: What the exit status says.
EXIT_OK, EXIT_FAILED = 0, 1


def main(argv: list[str] | None = None) -> int:
    """Check the key of one connection; print the balance, or why the check failed, and answer the exit status.

    :param argv: the command line after the program name (``sys.argv[1:]`` when None).
    """
    parser = argparse.ArgumentParser(
        prog="python -m airflow_wavespeed.check_key",
        description="Check a WaveSpeed connection's API key and print the account balance (bills nothing).",
    )
    parser.add_argument("conn_id", nargs="?", default="wavespeed_default", help="the connection id (default: %(default)s)")
    conn_id: str = parser.parse_args(argv).conn_id
    # Outside a task, Airflow's SDK reads connections from the metadata database only in a "server"
    # process; the `airflow connections` commands declare themselves one the same way.
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")

    from airflow.providers.common.compat.sdk import AirflowNotFoundException

    from airflow_wavespeed.exceptions import WaveSpeedError
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

    try:
        ok, message = WaveSpeedHook(conn_id).test_connection()
    except AirflowNotFoundException:
        ok, message = False, (
            f"no Airflow connection {conn_id!r}: create it (`airflow connections add {conn_id} --conn-type "
            f"wavespeed --conn-password YOUR_API_KEY`) or set AIRFLOW_CONN_{conn_id.upper()}"
        )
    except WaveSpeedError as error:  # the connection's own fields are wrong (no key, a bad base URL)
        ok, message = False, str(error)
    if ok:
        print(f"{conn_id}: {message}")
        return EXIT_OK
    print(f"{conn_id}: the key check failed: {message}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

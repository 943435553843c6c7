"""`make local-s3`: a local S3 (moto's server) with the example DAGs' buckets made, for running them offline.

It creates the bucket ``wavespeed_s3_pipeline`` reads and writes (``WAVESPEED_S3_BUCKET``, default
``wavespeed-demo``) with the bundled sample image at ``inputs/sample_input.png``, and the bucket
``wavespeed_review_and_publish`` publishes to (from ``WAVESPEED_PUBLISH_PREFIX``, default
``s3://wavespeed-published/edits``). It prints the ``aws_default`` connection to export before starting
Airflow, and serves until stopped (Ctrl-C). Everything lives in memory: a restart starts empty, and
makes the buckets again. Needs moto (the project's ``dev`` extra, which ``make venv`` installs).

    python scripts/local_s3.py [--port 5000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_INPUT = ROOT / "example_dags" / "data" / "sample_input.png"
REGION = "us-east-1"
#: moto accepts any key; these are only there because boto3 wants some.
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
#: The line a caller (or a test) waits for before using the server.
READY = "Local S3 ready at"


def example_buckets() -> dict[str, dict[str, Path]]:
    """Each bucket the example DAGs use, with the objects it starts with (key -> file)."""
    pipeline = os.environ.get("WAVESPEED_S3_BUCKET", "wavespeed-demo")
    input_prefix = os.environ.get("WAVESPEED_S3_INPUT_PREFIX", "inputs")
    publish = os.environ.get("WAVESPEED_PUBLISH_PREFIX", "s3://wavespeed-published/edits")
    buckets: dict[str, dict[str, Path]] = {pipeline: {f"{input_prefix}/sample_input.png": SAMPLE_INPUT}}
    if publish.startswith("s3://"):
        buckets.setdefault(publish.removeprefix("s3://").split("/", 1)[0], {})
    return buckets


def connection_json(endpoint_url: str) -> str:
    """The ``aws`` connection whose every client talks to the local server."""
    extra = {"endpoint_url": endpoint_url, "region_name": REGION}
    return json.dumps({"conn_type": "aws", "login": KEYS["aws_access_key_id"], "password": KEYS["aws_secret_access_key"], "extra": extra})


def make_buckets(endpoint_url: str, buckets: dict[str, dict[str, Path]]) -> None:
    import boto3

    client: Any = boto3.client("s3", endpoint_url=endpoint_url, region_name=REGION, **KEYS)
    for bucket, objects in buckets.items():
        client.create_bucket(Bucket=bucket)
        for key, path in objects.items():
            client.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": "image/png"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python scripts/local_s3.py", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on, 0 for any (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise SystemExit("moto is not installed: `make venv` installs it, or `pip install 'moto[server,s3]'`") from None

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per S3 request
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    buckets = example_buckets()
    make_buckets(endpoint_url, buckets)
    for bucket, objects in buckets.items():
        print(f"  s3://{bucket}/ {', '.join(objects) or '(empty)'}")
    print("Export this before starting Airflow (every Airflow process reads it):")
    print(f"  export AIRFLOW_CONN_AWS_DEFAULT='{connection_json(endpoint_url)}'")
    print(f"{READY} {endpoint_url} (Ctrl-C stops it)", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()

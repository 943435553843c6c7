"""Memory of copying one large WaveSpeed output into S3: ``store_outputs`` (streamed, 8 MiB parts)
side by side with the naive ``requests.get(url).content`` then ``put_object``.

The emulator (serving a padded output of ``--size`` bytes) and moto's S3 server each run in their own
process, so their memory is not counted. Each copy runs in a fresh interpreter that first warms up
(imports, one small copy through the same code path), then records its baseline RSS and samples RSS
every 5 ms in a thread during the copy. Target: the streamed copy's peak is at most 16 MiB above its
baseline. Results are printed and appended to ``bench/RESULTS.md`` under this script's own heading.

    .venv/bin/python bench/s3_memory.py [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    BENCH_KEY,
    EmulatorProcess,
    PeakRss,
    Watchdog,
    child_command,
    machine_note,
    register,
    run_child_json,
    stop_process,
    table,
    temp_airflow_home,
    verdict,
)

MiB = 1024 * 1024
TARGET_GROWTH = 16 * MiB
SAMPLE_SECONDS = 0.005
REGION = "us-east-1"
KEYS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
BUCKET = "wavespeed-bench"
HEADING = "## S3 copy memory (`bench/s3_memory.py`)"
RESULTS = BENCH_DIR / "RESULTS.md"
#: 1x1 PNG, for the warm-up copy through the same code path.
TINY_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360f8cfc0f01f0005000201e221bc330000000049454e44ae426082"
    )
).decode()


# ------------------------------------------------------------------------------------------ children


def child(mode: str, url: str, endpoint: str, key: str) -> dict[str, Any]:
    """One measured copy in this (fresh) process; answers baseline, peak and growth in bytes."""
    import gc

    import requests
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow_wavespeed.hooks.limits import RequestLimits
    from airflow_wavespeed.hooks.outputs import OutputDownloader, OutputHostPolicy
    from airflow_wavespeed.utils.storage import store_outputs

    download = OutputDownloader(OutputHostPolicy.for_base_url(url.split("/outputs/")[0]), RequestLimits()).open
    names = {"dag_id": "bench", "run_id": "run", "task_id": mode, "map_index": 0, "prediction_id": "p"}

    def streamed() -> None:
        store_outputs([url], f"s3://{BUCKET}/{mode}", download=download, names=names, name_template=key)

    def naive() -> None:
        data = requests.get(url, timeout=120).content
        S3Hook(aws_conn_id="aws_default").get_conn().put_object(Bucket=BUCKET, Key=f"{mode}/{key}", Body=data)

    # Warm up the very calls measured below (clients, models, connection pools), then settle.
    requests.get(f"{url.split('/outputs/')[0]}/_emulator/stats", timeout=30).raise_for_status()
    store_outputs([TINY_PNG], f"s3://{BUCKET}/warmup", download=download, names=names, name_template=f"{mode}.png")
    S3Hook(aws_conn_id="aws_default").get_conn().put_object(Bucket=BUCKET, Key=f"warmup/{mode}", Body=b"x")
    gc.collect()
    time.sleep(0.2)

    copy = streamed if mode == "stream" else naive
    started = time.perf_counter()
    with PeakRss(interval=SAMPLE_SECONDS) as rss:
        copy()
    seconds = time.perf_counter() - started
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **KEYS)
    head = s3.head_object(Bucket=BUCKET, Key=f"{mode}/{key}")
    return {
        "mode": mode,
        "baseline": rss.start_rss,
        "peak": rss.peak,
        "growth": rss.growth,
        "seconds": seconds,
        "size": head["ContentLength"],
        "etag": head["ETag"].strip('"'),
        "content_type": head.get("ContentType", ""),
    }


# ------------------------------------------------------------------------------------------ servers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_moto(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 in its own process; answers it and its endpoint URL."""
    port = free_port()
    with log.open("wb") as sink:
        process = register(
            subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return process, endpoint
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"moto exited with {process.returncode}:\n{log.read_text()}") from None
            time.sleep(0.1)
    stop_process(process)
    raise RuntimeError("moto did not answer within 60 s")


def finished_output(emulator: EmulatorProcess) -> str:
    """Run one (generated, input-free) prediction on the emulator; answers its output URL."""
    headers = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}

    def call(method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{emulator.base_url}{path}", data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["data"]

    prediction = call("POST", "/api/v3/wavespeed-ai/flux-dev", {"prompt": "a lighthouse at dusk"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        prediction = call("GET", f"/api/v3/predictions/{prediction['id']}/result")
        if prediction["status"] == "completed":
            return str(prediction["outputs"][0])
        if prediction["status"] == "failed":
            raise RuntimeError(f"the emulator's prediction failed: {prediction['error']}")
        time.sleep(0.1)
    raise RuntimeError("the emulator's prediction did not complete within 60 s")


# ------------------------------------------------------------------------------------------ report


def report(size: int, results: list[dict[str, Any]], passed: bool) -> str:
    rows = [
        [
            "store_outputs (streamed, 8 MiB parts)"
            if r["mode"] == "stream"
            else "naive: .content + put_object",
            f"{r['baseline'] / MiB:.1f}",
            f"{r['peak'] / MiB:.1f}",
            f"{r['growth'] / MiB:.1f}",
            f"{r['seconds']:.2f}",
            f"{r['size'] / MiB:.1f} MiB, ETag …{r['etag'][-4:]}",
        ]
        for r in results
    ]
    headers = ["copy", "baseline RSS MiB", "peak RSS MiB", "growth MiB", "seconds", "stored object"]
    stream = next(r for r in results if r["mode"] == "stream")
    return "\n".join(
        [
            HEADING,
            "",
            f"Copy one {size // MiB} MiB output (emulator) into S3 (moto server), each in its own process; "
            f"RSS of the copying process sampled every {SAMPLE_SECONDS * 1000:.0f} ms.",
            f"Machine: {machine_note()}.",
            "",
            table(headers, rows, markdown=True),
            "",
            f"Target: streamed growth ≤ {TARGET_GROWTH // MiB} MiB → {stream['growth'] / MiB:.1f} MiB: "
            f"**{'PASS' if passed else 'FAIL'}**.",
            "",
        ]
    )


def append_section(section: str, heading: str = HEADING) -> None:
    """Write a script's section of RESULTS.md (under ``heading``), leaving every other section as it is on
    disk now."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if heading in text:  # replace our own earlier section only
        start = text.index(heading)
        following = text.find("\n## ", start + len(heading))
        text = text[:start] + text[following + 1 :] if following != -1 else text[:start]
    RESULTS.write_text(text.rstrip("\n") + "\n\n" + section)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 MiB instead of 64 MiB")
    parser.add_argument("--size-mib", type=int, default=None, help="output size in MiB (default 64)")
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    parser.add_argument("--child", choices=("stream", "naive"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, args.endpoint, "copy.png")))
        return 0

    size = (args.size_mib or (16 if args.quick else 64)) * MiB
    with Watchdog(600, "s3_memory"), temp_airflow_home() as home:
        moto, endpoint = start_moto(home / "moto.log")
        try:
            import boto3

            boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **KEYS).create_bucket(Bucket=BUCKET)
            with EmulatorProcess(flags=["--large-output-bytes", str(size)]) as emulator:
                url = finished_output(emulator)
                env = {
                    **os.environ,
                    "AIRFLOW_HOME": str(home),
                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
                    "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
                        {
                            "conn_type": "aws",
                            "login": KEYS["aws_access_key_id"],
                            "password": KEYS["aws_secret_access_key"],
                            "extra": {"endpoint_url": endpoint, "region_name": REGION},
                        }
                    ),
                }
                results = [
                    run_child_json(
                        child_command(Path(__file__), "--child", mode, "--url", url, "--endpoint", endpoint),
                        env,
                        timeout=300,
                    )
                    for mode in ("stream", "naive")
                ]
        finally:
            stop_process(moto)

    for result in results:
        if result["size"] != size:
            raise RuntimeError(f"{result['mode']}: stored {result['size']} bytes, expected {size}")
    stream = results[0]
    passed = stream["growth"] <= TARGET_GROWTH
    section = report(size, results, passed)
    print(section)
    print(f"streamed copy: {verdict(stream['growth'], TARGET_GROWTH)}")
    if not args.no_write:
        append_section(section)
        print(f"appended to {RESULTS}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

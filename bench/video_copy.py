"""Memory of copying a large video output, side by side with an image: ``store_media`` (the path of the
operators' ``output_uri`` and of ``WaveSpeedToS3Operator``) to a local directory and to S3.

One emulator run of each kind (``wavespeed-ai/flux-dev``: a PNG, ``wavespeed-ai/wan-2.2/t2v-480p``: an
MP4) is served padded to its size by the emulator's ``large_output_bytes`` (the MP4 with a trailing
``free`` box, so it stays a valid MP4 and is typed as video by its bytes). The emulator and moto's S3
server run in their own processes, so their memory is not counted. Each of the four copies runs in a fresh
interpreter that first warms up (imports, one small copy through the same code path to the same kind of
destination), records its baseline RSS and samples RSS every 5 ms in a thread during the copy, through
the hook's real output downloader (its ``transfer_timeout`` deadline, host rules and sniffing). Target:
the video copy grows RSS by at most 32 MiB, to disk and to S3. Results are printed and written to
``bench/RESULTS.md`` under this script's own heading.

    .venv/bin/python bench/video_copy.py [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from _common import (
    BENCH_KEY,
    REPO,
    EmulatorProcess,
    PeakRss,
    Watchdog,
    child_command,
    machine_note,
    run_child_json,
    stop_process,
    table,
    temp_airflow_home,
    verdict,
)
from s3_memory import BUCKET, KEYS, REGION, SAMPLE_SECONDS, TINY_PNG, append_section, start_moto

MiB = 1024 * 1024
TARGET_GROWTH = 32 * MiB
HEADING = "## Video copy memory (`bench/video_copy.py`)"
MODELS = {"image": "wavespeed-ai/flux-dev", "video": "wavespeed-ai/wan-2.2/t2v-480p"}
PROMPTS = {"image": {"prompt": "a lighthouse at dusk"}, "video": {"prompt": "waves at a lighthouse"}}


# ------------------------------------------------------------------------------------------ children


def child(kind: str, target: str, url: str, size: str, endpoint: str, directory: str) -> dict[str, Any]:
    """One measured copy in this (fresh) process; answers baseline, peak, growth and what was stored.

    The warm-up copies the same output unpadded (the emulator told so through its control endpoint), then
    the emulator is told to pad it to ``size`` bytes for the measured copy.
    """
    import gc

    from airflow_wavespeed.hooks.limits import RequestLimits
    from airflow_wavespeed.hooks.outputs import OutputDownloader, OutputHostPolicy
    from airflow_wavespeed.utils.storage import store_media

    downloader = OutputDownloader(OutputHostPolicy.for_base_url(url.split("/outputs/")[0]), RequestLimits())
    names = {"dag_id": "bench", "run_id": "run", "task_id": kind, "map_index": 0, "prediction_id": "p"}
    destination = f"s3://{BUCKET}/{kind}" if target == "s3" else directory

    def copy(source: str, where: str, key: str) -> Any:
        return store_media([source], where, download=downloader.open, names=names, name_template=key)[0]

    def pad(total: int) -> None:
        body = json.dumps({"large_output_bytes": total}).encode()
        control = url.split("/outputs/")[0] + "/_emulator/config"
        request = urllib.request.Request(control, data=body, headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=30).close()

    # Warm up the very calls measured below (clients, connection pools, the sniffers), then settle.
    warm = f"s3://{BUCKET}/warmup" if target == "s3" else os.path.join(directory, "warmup")
    copy(TINY_PNG, warm, f"{kind}-b64.{{ext}}")
    pad(0)
    copy(url, warm, f"{kind}-url.{{ext}}")
    pad(int(size))
    gc.collect()
    time.sleep(0.2)

    started = time.perf_counter()
    with PeakRss(interval=SAMPLE_SECONDS) as rss:
        stored = copy(url, destination, f"{kind}.{{ext}}")
    seconds = time.perf_counter() - started
    return {
        "kind": kind,
        "target": target,
        "baseline": rss.start_rss,
        "peak": rss.peak,
        "growth": rss.growth,
        "seconds": seconds,
        "location": stored.location,
        "media": stored.media,
        "content_type": stored.content_type,
        "size": stored.bytes,
    }


# ------------------------------------------------------------------------------------------ servers


def finished_output(emulator: EmulatorProcess, kind: str) -> str:
    """Run one (input-free) prediction of ``kind`` on the emulator; answers its output URL."""
    headers = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}

    def call(method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{emulator.base_url}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["data"]

    prediction = call("POST", f"/api/v3/{MODELS[kind]}", PROMPTS[kind])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        prediction = call("GET", f"/api/v3/predictions/{prediction['id']}/result")
        if prediction["status"] == "completed":
            return str(prediction["outputs"][0])
        if prediction["status"] == "failed":
            raise RuntimeError(f"the emulator's {kind} prediction failed: {prediction['error']}")
        time.sleep(0.1)
    raise RuntimeError(f"the emulator's {kind} prediction did not complete within 120 s")


def check_stored(result: dict[str, Any], size: int, endpoint: str) -> None:
    """The copy is whole and of the right media: its size on disk / in S3 and its type from its bytes."""
    if result["media"] != result["kind"] or result["size"] != size:
        raise RuntimeError(f"{result['kind']} to {result['target']}: stored {result['media']} of {result['size']} B")
    if result["target"] == "s3":
        import boto3

        key = result["location"].split(f"s3://{BUCKET}/", 1)[1]
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **KEYS)
        head = s3.head_object(Bucket=BUCKET, Key=key)
        found, where = head["ContentLength"], f"ETag …{head['ETag'].strip(chr(34))[-6:]}"
        s3.delete_object(Bucket=BUCKET, Key=key)  # moto holds objects in its memory
    else:
        path = Path(result["location"])
        with path.open("rb") as stored:
            found, where = path.stat().st_size, f"sha256 {hashlib.file_digest(stored, 'sha256').hexdigest()[:8]}…"
        path.unlink()
    if found != size:
        raise RuntimeError(f"{result['location']}: {found} bytes stored, expected {size}")
    result["stored"] = f"{found / MiB:.0f} MiB {result['content_type']}, {where}"


# ------------------------------------------------------------------------------------------ report


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "airflow_wavespeed"], cwd=REPO, capture_output=True, text=True)
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def report(sizes: dict[str, int], results: list[dict[str, Any]], passed: bool) -> str:
    rows = [
        [
            f"{r['kind']} ({sizes[r['kind']] // MiB} MiB)",
            "local directory" if r["target"] == "local" else "S3 (moto, 8 MiB parts)",
            f"{r['baseline'] / MiB:.1f}",
            f"{r['peak'] / MiB:.1f}",
            f"{r['growth'] / MiB:.1f}",
            f"{r['seconds']:.1f}",
            f"{sizes[r['kind']] / MiB / r['seconds']:.0f}",
            r["stored"],
        ]
        for r in results
    ]
    headers = ["output", "to", "baseline RSS MiB", "peak RSS MiB", "growth MiB", "seconds", "MiB/s", "stored"]
    from airflow_wavespeed.hooks.limits import RequestLimits

    limits = RequestLimits()
    videos = [r for r in results if r["kind"] == "video"]
    worst = max(r["growth"] for r in videos)
    deadlines = ", ".join(
        f"{label} {limits.download_seconds(size):.0f} s" for label, size in (("512 MiB", 512 * MiB), ("4 GiB", 4096 * MiB))
    )
    return "\n".join(
        [
            HEADING,
            "",
            "`store_media` through the hook's output downloader, from the emulator (its own process, output "
            "padded by `large_output_bytes`) to a local directory and to S3 (moto server, its own process); "
            f"each copy in a fresh, warmed-up process whose RSS is sampled every {SAMPLE_SECONDS * 1000:.0f} ms.",
            f"Commit measured: {commit()}. Machine: {machine_note()}.",
            "",
            table(headers, rows, markdown=True),
            "",
            f"Target: the video copy's growth ≤ {TARGET_GROWTH // MiB} MiB, to disk and to S3 → worst "
            f"{worst / MiB:.1f} MiB: **{'PASS' if passed else 'FAIL'}**.",
            "",
            f"Download deadline under the defaults (transfer_timeout {limits.transfer_timeout:g} s, grown at "
            f"transfer_min_rate {limits.transfer_min_rate // 1024} KiB/s for an announced length): {deadlines}; "
            "here the copies took seconds, on loopback.",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 64 MiB video and a 16 MiB image")
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    parser.add_argument("--child", nargs=6, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    sizes = {"image": 16 * MiB, "video": 64 * MiB} if args.quick else {"image": 64 * MiB, "video": 512 * MiB}
    results = []
    with Watchdog(900, "video_copy"), temp_airflow_home() as home, tempfile.TemporaryDirectory() as out:
        moto, endpoint = start_moto(home / "moto.log")
        try:
            import boto3

            boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **KEYS).create_bucket(Bucket=BUCKET)
            with EmulatorProcess() as emulator:
                urls = {kind: finished_output(emulator, kind) for kind in MODELS}
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
                for kind in MODELS:
                    for target in ("local", "s3"):
                        command = child_command(
                            Path(__file__), "--child", kind, target, urls[kind], str(sizes[kind]), endpoint, out
                        )
                        result = run_child_json(command, env, timeout=400)
                        check_stored(result, sizes[kind], endpoint)
                        results.append(result)
                        print(f"  {kind} → {target}: growth {result['growth'] / MiB:.1f} MiB", flush=True)
        finally:
            stop_process(moto)

    passed = all(r["growth"] <= TARGET_GROWTH for r in results if r["kind"] == "video")
    section = report(sizes, results, passed)
    print(section)
    worst = max(r["growth"] for r in results if r["kind"] == "video")
    print(f"video_copy: worst video growth {worst / MiB:.1f} MiB: {verdict(worst, TARGET_GROWTH)}")
    if not args.no_write:
        append_section(section, heading=HEADING)
        print("written to bench/RESULTS.md")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

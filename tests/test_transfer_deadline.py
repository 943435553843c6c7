"""The output download's deadline fits long downloads: it grows with the announced length at
``transfer_min_rate`` (bounded by the largest per-media cap), through a real trickling server."""

from __future__ import annotations

import time

import pytest

from airflow_wavespeed.exceptions import WaveSpeedInputError, WaveSpeedOutputError
from airflow_wavespeed.hooks.deadline import Deadline
from airflow_wavespeed.hooks.limits import RequestLimits
from airflow_wavespeed.hooks.outputs import OutputDownloader, OutputHostPolicy
from airflow_wavespeed.utils.validation import MAX_OUTPUT_BYTES_BY_MEDIA
from tests import hostile_server as hs
from tests.hostile_server import HostileServer

MiB = 1024 * 1024
POLICY = OutputHostPolicy(trusted_origin=None, allow_private=True)


def test_the_defaults_give_a_large_video_time_at_one_mib_per_second() -> None:
    limits = RequestLimits()
    assert (limits.transfer_timeout, limits.transfer_min_rate) == (900.0, MiB)
    assert limits.download_seconds(None) == 900.0, "a body without a length keeps transfer_timeout"
    assert limits.download_seconds(512 * MiB) == 900.0, "512 MiB at 1 MiB/s fits in 900 s"
    assert limits.download_seconds(2048 * MiB) == 2048.0
    # An announced length past every cap buys no more than the largest cap needs (it is refused anyway).
    largest = max(MAX_OUTPUT_BYTES_BY_MEDIA.values())
    assert limits.download_seconds(100 * largest) == largest / MiB == 4096.0


@pytest.mark.parametrize("bad", [0, -1, 1.5, "fast"])
def test_transfer_min_rate_must_be_a_positive_whole_number(bad: object) -> None:
    with pytest.raises(WaveSpeedInputError, match="transfer_min_rate"):
        RequestLimits.from_params({"transfer_min_rate": bad})


def test_an_expired_deadline_is_not_extended() -> None:
    with Deadline(0.05) as deadline:
        time.sleep(0.2)
        deadline.extend(60, why="late")
        assert deadline.expired and deadline.seconds == 0.05 and deadline.extended_for == ""
    with Deadline(60) as deadline:
        deadline.extend(30, why="shorter")
        assert deadline.seconds == 60 and deadline.remaining() > 55, "never shortened"


def test_a_slow_but_honest_download_outlasts_transfer_timeout() -> None:
    """30 bytes at 20 bytes/s take 1.5 s, three times transfer_timeout; the 3 bytes/s floor gives 10 s."""
    body = b"v" * 30
    with HostileServer({"GET /clip.mp4": hs.trickle(body, 0.05)}) as cdn:
        downloader = OutputDownloader(POLICY, RequestLimits(transfer_timeout=0.5, transfer_min_rate=3))
        started = time.monotonic()
        with downloader.open(cdn.url("/clip.mp4")) as (stream, length):
            data = stream.read()
        assert (data, length) == (body, 30)
        assert time.monotonic() - started > 0.5, "the download did run past transfer_timeout"


def test_a_download_slower_than_the_floor_is_cut_at_the_grown_deadline() -> None:
    """60 bytes announced at a 20 bytes/s floor: 3 s, not the 15 s the trickle takes, nor 0.5 s."""
    with HostileServer({"GET /clip.mp4": hs.trickle(b"v" * 60, 0.25)}) as cdn:
        downloader = OutputDownloader(POLICY, RequestLimits(transfer_timeout=0.5, transfer_min_rate=20))
        started = time.monotonic()
        late = pytest.raises(
            WaveSpeedOutputError,
            match=r"took longer than 3 s \(transfer_timeout=0.5 s grown for its announced 60 bytes at "
            r"transfer_min_rate=20 bytes/s\)",
        )
        with late, downloader.open(cdn.url("/clip.mp4")) as (stream, _):
            stream.read()
        elapsed = time.monotonic() - started
        assert 2.9 <= elapsed < 10, f"{elapsed:.1f} s"


def test_a_body_without_a_length_keeps_transfer_timeout() -> None:
    with HostileServer({"GET /clip.mp4": hs.trickle(b"v" * 60, 0.25, with_length=False)}) as cdn:
        downloader = OutputDownloader(POLICY, RequestLimits(transfer_timeout=1, transfer_min_rate=1))
        started = time.monotonic()
        late = pytest.raises(WaveSpeedOutputError, match=r"took longer than transfer_timeout=1 s$")
        with late, downloader.open(cdn.url("/clip.mp4")) as (stream, _):
            stream.read()
        assert time.monotonic() - started < 5

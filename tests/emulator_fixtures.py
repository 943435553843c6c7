"""Pytest fixtures around the WaveSpeed emulator; import them into conftest.py.

One server serves the whole session (starting one costs a thread and a port); each test gets it
reset to a fresh state, so tests stay independent while the suite stays fast.

    from tests.emulator_fixtures import emulator, emulator_image_url, emulator_server, sample_png  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_wavespeed.emulator import Emulator, EmulatorConfig

EMULATOR_API_KEY = "test-key"
EMULATOR_SCALE = 0.0625

__all__ = [
    "EMULATOR_API_KEY",
    "loopback_download",
    "EMULATOR_SCALE",
    "emulator",
    "emulator_image_url",
    "emulator_server",
    "sample_png",
    "upload_to_emulator",
]


def _test_config() -> EmulatorConfig:
    return EmulatorConfig(processing_polls=1, scale=EMULATOR_SCALE)


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[Emulator]:
    """The session's emulator (api_key "test-key", processing_polls=1, scale 1/16). Prefer `emulator`."""
    with Emulator(api_key=EMULATOR_API_KEY, config=_test_config()) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_server: Emulator) -> Emulator:
    """The session emulator, reset: empty log, no predictions or uploads, the default test config."""
    emulator_server.reset()
    return emulator_server


@pytest.fixture(scope="session")
def sample_png() -> bytes:
    """A 300x200 PNG (3:2) to use as an edit input."""
    from airflow_wavespeed.emulator.images import render_sample_input

    return render_sample_input(300, 200)


def upload_to_emulator(emu: Emulator, data: bytes, filename: str = "input.png") -> str:
    """Upload bytes through the real upload route; answers the download URL."""
    response = requests.post(
        f"{emu.base_url}/api/v3/media/upload/binary",
        headers={"Authorization": f"Bearer {EMULATOR_API_KEY}"},
        files={"file": (filename, data)},
        timeout=10,
    )
    response.raise_for_status()
    url: str = response.json()["data"]["download_url"]
    return url


@pytest.fixture
def emulator_image_url(emulator: Emulator, sample_png: bytes) -> str:
    """URL of `sample_png` stored in the (reset) emulator, without an HTTP request in its log."""
    return emulator.add_upload(sample_png, "input.png")


def loopback_download() -> Any:
    """A downloader for ``store_outputs`` that may fetch from loopback test servers (the output-host rule
    lifted, as ``allow_private_output_hosts=True`` does): for tests of storage itself, not of that rule."""
    from airflow_wavespeed.hooks.limits import RequestLimits
    from airflow_wavespeed.hooks.outputs import OutputDownloader, OutputHostPolicy

    return OutputDownloader(OutputHostPolicy(allow_private=True), RequestLimits()).open

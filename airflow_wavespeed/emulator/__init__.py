"""A local emulator of the WaveSpeed v3 REST API, for tests, demos and offline DAG development.

The official ``wavespeed`` SDK and this provider's hooks run against it unmodified: point their base
URL at ``Emulator.base_url`` (in-process, background thread) or at the CLI::

    python -m airflow_wavespeed.emulator --port 8765 --api-key KEY --processing-polls 2 --poll-5xx-rate 0.1

Models of every kind are answered with real files by what they make (``catalog.py`` lists real model ids
with their input schemas, ``GET /api/v3/models``; ``render.py`` and ``media.py`` make images, H.264 MP4s,
MP3/WAV audio, GLB 3D and text answers).

Behaviour (latency, output scale, faults) lives in :class:`EmulatorConfig`, changeable at runtime:
``emu.config.drop_rate = 0.2`` in-process, ``POST /_emulator/config`` from another process.
Control endpoints (no auth, not logged): ``GET /_emulator/requests``, ``GET /_emulator/stats``,
``GET|POST /_emulator/config``, ``POST /_emulator/reset``, ``GET /_emulator/predictions``.
"""

from airflow_wavespeed.emulator.config import EmulatorConfig
from airflow_wavespeed.emulator.runner import Emulator
from airflow_wavespeed.emulator.server import create_app
from airflow_wavespeed.emulator.state import EmulatorState, Prediction, RequestRecord

__all__ = ["Emulator", "EmulatorConfig", "EmulatorState", "Prediction", "RequestRecord", "create_app"]

"""The ``response_check_path`` target of HttpEventTrigger in wait_cost.py (it reloads this module per poll)."""

from __future__ import annotations

from typing import Any


async def prediction_completed(response: Any) -> bool:
    """True once the WaveSpeed result envelope says ``completed`` (``response`` is a requests.Response)."""
    body = response.json()
    return isinstance(body, dict) and (body.get("data") or {}).get("status") == "completed"

"""A minimal task context for calling ``execute()`` directly, with a dict-backed task state store.

Unit tests use it to drive operators step by step (submit → TaskDeferred → execute_complete); the same
flows also run through Airflow itself in ``dag.test()`` tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RecordingTI:
    """Records what an operator pushes to XCom."""

    dag_id: str = "dag"
    run_id: str = "manual__2026-01-01T00:00:00+00:00"
    task_id: str = "task"
    map_index: int = -1
    try_number: int = 1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int | None = None) -> Any:
        """What this stub recorded (an operator reads back its own XComs when it resumes)."""
        return self.xcoms.get(key)


class DictStateStore:
    """Stands in for Airflow 3.3's ``task_state_store``: the same get/set/delete calls."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def make_context(*, store: DictStateStore | None = None, **ti_fields: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"ti": RecordingTI(**ti_fields)}
    if store is not None:
        context["task_state_store"] = store
    return context

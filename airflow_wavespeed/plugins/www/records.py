"""What the WaveSpeed views read from Airflow's database, and nothing else does.

A task records its run in XComs (``prediction``: the small metadata dict; ``prediction_id``;
``return_value``: the outputs; the extra link's XCom), its inputs in the rendered template fields, and
its earlier tries in the task instance history. Each view reads them in a few indexed queries per run,
not per task instance: the gallery of a 200-output batch is three statements (bench/gallery.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The XComs a WaveSpeed task writes that the views show.
XCOM_KEYS = ("prediction", "prediction_id", "prediction_tries", "return_value", "_link_WaveSpeedPredictionLink")
#: How many recent runs the runs list shows.
RECENT_RUNS = 50


def is_wavespeed_operator(name: str | None) -> bool:
    """The provider's operators and sensors (and subclasses named after them) are ``WaveSpeed…``."""
    return bool(name) and str(name).startswith("WaveSpeed")


@dataclass
class Try:
    """One earlier try of a task instance (Airflow keeps it when a retry starts)."""

    try_number: int
    state: str | None
    start_date: datetime | None
    end_date: datetime | None
    hostname: str | None


@dataclass
class TaskRecord:
    """One task instance and what it recorded."""

    task_id: str
    map_index: int
    state: str | None
    operator: str | None
    try_number: int
    hostname: str | None
    start_date: datetime | None
    end_date: datetime | None
    rendered_map_index: str | None = None
    xcoms: dict[str, Any] = field(default_factory=dict)
    rendered_fields: dict[str, Any] | None = None
    tries: list[Try] = field(default_factory=list)

    @property
    def prediction(self) -> dict[str, Any]:
        value = self.xcoms.get("prediction")
        return value if isinstance(value, dict) else {}

    @property
    def prediction_by_try(self) -> dict[int, dict[str, Any]]:
        """Which prediction each try used (``{"id", "how"}``), as a retry recorded it (Airflow 3.3+)."""
        value = self.xcoms.get("prediction_tries")
        entries = value if isinstance(value, list) else []
        return {
            entry["try"]: {"id": str(entry.get("id")), "how": str(entry.get("how", ""))}
            for entry in entries
            if isinstance(entry, dict) and isinstance(entry.get("try"), int)
        }

    @property
    def is_wavespeed(self) -> bool:
        return is_wavespeed_operator(self.operator) or "prediction_id" in self.xcoms or bool(self.prediction)

    @property
    def outputs(self) -> list[Any]:
        """``return_value`` when it is the outputs, which are text (URLs, URIs, paths, a text model's
        answer): the budget operator returns its batch's keyword arguments, a task that did not wait its
        prediction id."""
        value = self.xcoms.get("return_value")
        if isinstance(value, list):
            return [item for item in value if isinstance(item, str)]
        if isinstance(value, str) and value != self.xcoms.get("prediction_id"):
            return [value]
        return []


def xcom_value(row: Any) -> Any:
    """An XCom row's value as the task pushed it. A value pushed from the triggerer arrives as JSON text
    (Airflow encodes it twice), so text that is a JSON list or object is decoded once more."""
    from airflow.models.xcom import XComModel

    value = XComModel.deserialize_value(row)
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def task_instance(
    session: Session, dag_id: str, run_id: str, task_id: str, map_index: int
) -> TaskRecord | None:
    """One task instance with what it recorded; its XComs only when it is a WaveSpeed task."""
    records = run_tasks(session, dag_id, run_id, task_id=task_id, map_index=map_index, details=True)
    return records[0] if records else None


def run_tasks(
    session: Session,
    dag_id: str,
    run_id: str,
    *,
    task_id: str | None = None,
    map_index: int | None = None,
    details: bool = False,
) -> list[TaskRecord]:
    """The run's WaveSpeed task instances (or the one asked for), ordered by task and map index.

    :param details: also read rendered template fields and earlier tries (the tab; the gallery needs
        neither and reads only task instances and XComs).
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    query = select(
        TaskInstance.task_id,
        TaskInstance.map_index,
        TaskInstance.state,
        TaskInstance.operator,
        TaskInstance.custom_operator_name,
        TaskInstance.try_number,
        TaskInstance.hostname,
        TaskInstance.start_date,
        TaskInstance.end_date,
        TaskInstance._rendered_map_index.label("rendered_map_index"),
    ).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
    if task_id is not None:
        query = query.where(TaskInstance.task_id == task_id)
    if map_index is not None:
        query = query.where(TaskInstance.map_index == map_index)
    records = {
        (row.task_id, row.map_index): TaskRecord(
            task_id=row.task_id,
            map_index=row.map_index,
            state=None if row.state is None else str(row.state),
            operator=row.operator or row.custom_operator_name,
            try_number=row.try_number or 0,
            hostname=row.hostname,
            start_date=row.start_date,
            end_date=row.end_date,
            rendered_map_index=row.rendered_map_index,
        )
        for row in session.execute(query.order_by(TaskInstance.task_id, TaskInstance.map_index))
    }
    if not records:
        return []
    if task_id is not None and not any(is_wavespeed_operator(r.operator) for r in records.values()):
        # The tab on another operator's task instance: one row read, nothing more.
        return list(records.values())
    xcoms = select(XComModel.task_id, XComModel.map_index, XComModel.key, XComModel.value).where(
        XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key.in_(XCOM_KEYS)
    )
    if task_id is not None:
        xcoms = xcoms.where(XComModel.task_id == task_id)
    if map_index is not None:
        xcoms = xcoms.where(XComModel.map_index == map_index)
    for row in session.execute(xcoms):
        record = records.get((row.task_id, row.map_index))
        if record is not None:
            record.xcoms[row.key] = xcom_value(row)
    found = [record for record in records.values() if record.is_wavespeed]
    if details:
        for record in found:
            _add_details(session, dag_id, run_id, record)
    return found


def _add_details(session: Session, dag_id: str, run_id: str, record: TaskRecord) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from sqlalchemy import select

    fields = session.execute(
        select(RenderedTaskInstanceFields.rendered_fields).where(
            RenderedTaskInstanceFields.dag_id == dag_id,
            RenderedTaskInstanceFields.run_id == run_id,
            RenderedTaskInstanceFields.task_id == record.task_id,
            RenderedTaskInstanceFields.map_index == record.map_index,
        )
    ).scalar()
    record.rendered_fields = fields if isinstance(fields, dict) else None
    history = select(
        TaskInstanceHistory.try_number,
        TaskInstanceHistory.state,
        TaskInstanceHistory.start_date,
        TaskInstanceHistory.end_date,
        TaskInstanceHistory.hostname,
    ).where(
        TaskInstanceHistory.dag_id == dag_id,
        TaskInstanceHistory.run_id == run_id,
        TaskInstanceHistory.task_id == record.task_id,
        TaskInstanceHistory.map_index == record.map_index,
    )
    record.tries = [
        Try(row.try_number, None if row.state is None else str(row.state), row.start_date, row.end_date, row.hostname)
        for row in session.execute(history.order_by(TaskInstanceHistory.try_number))
    ]


@dataclass
class RunSummary:
    """One run in the runs list."""

    dag_id: str
    run_id: str
    state: str | None
    start_date: datetime | None
    wavespeed_tasks: int


def recent_runs(session: Session, dag_ids: set[str], limit: int = RECENT_RUNS) -> list[RunSummary]:
    """The newest runs of ``dag_ids`` that have WaveSpeed task instances, with how many."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import func, select

    if not dag_ids:
        return []
    counted = (
        select(TaskInstance.dag_id, TaskInstance.run_id, func.count().label("tasks"))
        .where(TaskInstance.dag_id.in_(dag_ids), TaskInstance.operator.like("WaveSpeed%"))
        .group_by(TaskInstance.dag_id, TaskInstance.run_id)
        .subquery()
    )
    query = (
        select(DagRun.dag_id, DagRun.run_id, DagRun.state, DagRun.start_date, counted.c.tasks)
        .join(counted, (counted.c.dag_id == DagRun.dag_id) & (counted.c.run_id == DagRun.run_id))
        .order_by(DagRun.id.desc())
        .limit(limit)
    )
    return [
        RunSummary(row.dag_id, row.run_id, None if row.state is None else str(row.state), row.start_date, row.tasks)
        for row in session.execute(query)
    ]

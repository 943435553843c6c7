"""Chaos soak: hundreds of edits through the operator and trigger while the emulator misbehaves.

Faults on at once: 5xx on a fifth of polls, 429 bursts with Retry-After on submit, dropped
connections, malformed bodies, answers slower than the read timeout, failed predictions, and sync-mode
POSTs that come back still processing or as a gateway 504. Every edit must end completed with its
outputs, or failed with an error naming its prediction id; the only exception is a submit whose answer
was lost (dropped, 504), which must say a prediction may exist. The emulator's own records then show
zero duplicate submits and zero lost predictions.

    python bench/chaos_soak.py [--edits 300] [--seed 42]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

EMULATOR_KEY = "chaos-soak-key"
#: Short timeouts and backoffs so a soak of hundreds of edits takes seconds; the rule is the product's.
HOOK_PARAMS = {
    "connect_timeout": 2.0,
    "read_timeout": 0.5,
    "sync_read_timeout": 5.0,
    "retry_min_wait": 0.01,
    "retry_max_wait": 0.1,
    "max_attempts": 6,
    "retry_max_seconds": 10.0,
}
FAULTS = {
    "poll_5xx_rate": 0.20,
    "submit_429_rate": 0.15,
    "retry_after": "0.05",
    "drop_rate": 0.03,
    "submit_drop_rate": 0.01,
    "malformed_rate": 0.05,
    "slow_rate": 0.03,
    "slow_seconds": 1.0,
    "fail_rate": 0.05,
    "sync_504_rate": 0.10,
}


@dataclass
class SoakReport:
    edits: int
    completed: int = 0
    failed_naming_prediction: dict[str, int] = field(default_factory=dict)
    submit_uncertain: int = 0
    unclear_errors: list[str] = field(default_factory=list)
    sync_mode_edits: int = 0
    created_predictions: int = 0
    submit_posts: int = 0
    polls: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    duplicate_submits: int = 0
    #: Predictions the client never heard of, other than the one each uncertain edit may have created.
    lost_predictions: int = 0
    #: Edits reported uncertain whose submit created nothing (possible on the real API; the soak's faults
    #: all strike after the prediction exists, so here it must be 0).
    uncertain_without_prediction: int = 0
    seconds: float = 0.0

    def ok(self) -> bool:
        accounted = self.completed + sum(self.failed_naming_prediction.values()) + self.submit_uncertain
        return (
            accounted == self.edits
            and not self.unclear_errors
            and self.duplicate_submits == 0
            and self.lost_predictions == 0
            and self.uncertain_without_prediction == 0
        )


@dataclass
class _TI:
    """Just enough of a task instance for execute(): what the operator pushes to XCom."""

    task_id: str
    dag_id: str = "chaos_soak"
    run_id: str = "soak"
    map_index: int = -1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def run_soak(edits: int = 300, seed: int = 42) -> SoakReport:
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_wavespeed.emulator import Emulator, EmulatorConfig
    from airflow_wavespeed.emulator.images import render_sample_input
    from airflow_wavespeed.exceptions import WaveSpeedError, WaveSpeedSubmitUncertainError
    from airflow_wavespeed.operators.image_edit import WaveSpeedImageEditOperator

    report = SoakReport(edits=edits)
    config = EmulatorConfig(processing_polls=2, scale=0.03125, seed=seed, **FAULTS)  # type: ignore[arg-type]
    started = time.monotonic()
    previous_conn = os.environ.get("AIRFLOW_CONN_WAVESPEED_DEFAULT")
    with Emulator(api_key=EMULATOR_KEY, config=config) as emu:
        os.environ["AIRFLOW_CONN_WAVESPEED_DEFAULT"] = json.dumps(
            {"conn_type": "wavespeed", "password": EMULATOR_KEY, "host": emu.base_url}
        )
        image = emu.add_upload(render_sample_input(96, 64), "input.png")
        contexts: list[dict[str, Any]] = []
        outcomes: dict[int, Any] = {}
        deferred: list[tuple[int, Any, TaskDeferred]] = []
        prompts = [f"chaos soak edit {n}" for n in range(edits)]  # unique: a prediction's prompt names its edit
        uncertain_prompts: set[str] = set()
        for n in range(edits):
            sync = n % 5 == 0
            report.sync_mode_edits += sync
            # Half the sync POSTs outlive the server's sync wait and come back "processing".
            emu.config.sync_timeout_seconds = 0.05 if n % 10 == 5 else 5.0
            emu.config.processing_seconds = 0.2 if sync else 0.0
            operator = WaveSpeedImageEditOperator(
                task_id=f"edit_{n}",
                images=[image],
                prompt=prompts[n],
                enable_sync_mode=sync,
                deferrable=True,
                poll_interval=0.05,
                timeout=120,
                hook_params=HOOK_PARAMS,
            )
            context = {"ti": _TI(task_id=f"edit_{n}")}
            contexts.append(context)
            try:
                outcomes[n] = operator.execute(context)  # type: ignore[arg-type]
            except TaskDeferred as waiting:
                deferred.append((n, operator, waiting))
            except WaveSpeedError as error:
                outcomes[n] = error

        async def wait_all() -> list[dict[str, Any]]:
            async def one(trigger: Any) -> dict[str, Any]:
                async for event in trigger.run():
                    return dict(event.payload)
                raise AssertionError("a trigger yielded no event")

            return await asyncio.gather(*(one(waiting.trigger) for _, _, waiting in deferred))

        for (n, operator, waiting), event in zip(deferred, asyncio.run(wait_all()), strict=True):
            try:
                outcomes[n] = getattr(operator, waiting.method_name)(
                    contexts[n], event=event, **(waiting.kwargs or {})
                )
            except WaveSpeedError as error:
                outcomes[n] = error

        known_ids = set()
        for n, outcome in sorted(outcomes.items()):
            prediction_id = contexts[n]["ti"].xcoms.get("prediction_id")
            if prediction_id:
                known_ids.add(prediction_id)
            if isinstance(outcome, list) and outcome and all(_is_image(o) for o in outcome):
                report.completed += 1
            elif isinstance(outcome, WaveSpeedSubmitUncertainError) and not prediction_id:
                report.submit_uncertain += 1
                uncertain_prompts.add(prompts[n])
            elif isinstance(outcome, WaveSpeedError) and prediction_id and prediction_id in str(outcome):
                name = type(outcome).__name__
                report.failed_naming_prediction[name] = report.failed_naming_prediction.get(name, 0) + 1
            else:
                report.unclear_errors.append(f"edit {n}: {type(outcome).__name__}: {outcome}")

        created = set(emu.predictions)
        report.created_predictions = len(created)
        report.submit_posts = emu.submit_count(include_rejected=True)
        report.polls = sum(1 for r in emu.requests if r.method == "GET" and "/predictions/" in r.path)
        for record in emu.requests:
            if record.path.startswith("/api/v3/"):
                report.answers[str(record.status)] = report.answers.get(str(record.status), 0) + 1
        # Each edit (its prompt is unique) may create at most one prediction; a prediction the client never
        # heard of must belong to an edit it reported as uncertain (it told the user to look), edit by edit.
        per_edit = Counter(prediction.prompt for prediction in emu.predictions.values())
        report.duplicate_submits = sum(count - 1 for count in per_edit.values())
        unknown_prompts = [emu.predictions[prediction_id].prompt for prediction_id in created - known_ids]
        report.lost_predictions = sum(1 for prompt in unknown_prompts if prompt not in uncertain_prompts)
        report.uncertain_without_prediction = len(uncertain_prompts - set(unknown_prompts))
    if previous_conn is None:
        os.environ.pop("AIRFLOW_CONN_WAVESPEED_DEFAULT", None)
    else:
        os.environ["AIRFLOW_CONN_WAVESPEED_DEFAULT"] = previous_conn
    report.seconds = round(time.monotonic() - started, 1)
    return report


def _is_image(url: str) -> bool:
    """A completed edit counts only if its output really downloads as an image."""
    import requests

    response = requests.get(url, timeout=10)
    return response.status_code == 200 and response.content[:8] == b"\x89PNG\r\n\x1a\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--edits", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quick", action="store_true", help="60 edits (a smoke run of the same faults)")
    args = parser.parse_args()
    if args.quick:
        args.edits = 60
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="wavespeed-soak-"))
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    report = run_soak(args.edits, args.seed)
    print(json.dumps({**asdict(report), "ok": report.ok()}, indent=2, default=str))
    return 0 if report.ok() else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())

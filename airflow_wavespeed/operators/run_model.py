"""WaveSpeedRunModelOperator: run any WaveSpeed model, wait for it (deferred or not), hand on the outputs.

The flow is validate → build inputs → submit (or resume) → wait → complete. Subclasses change only
what the model needs: :meth:`validate_arguments` and :meth:`build_inputs`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_wavespeed.links import WaveSpeedPredictionLink
from airflow_wavespeed.utils.validation import (
    NSFW_POLICIES,
    check_bool,
    check_choice,
    check_dict,
    check_output_uri,
    check_positive,
    is_templated,
    validate_model,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_wavespeed.prediction import Prediction

#: task_state_store key holding the submitted prediction id (and a digest of what was submitted), so a
#: retry resumes instead of resubmitting.
STATE_STORE_KEY = "wavespeed_prediction_id"
DEFAULT_MAX_OUTPUT_BYTES = 200 * 1024 * 1024


class WaveSpeedRunModelOperator(BaseOperator):
    """
    Submit one prediction to any WaveSpeed model and, by default, wait for its outputs.

    XCom: ``prediction_id`` (pushed right after submitting), ``prediction`` (small metadata dict) and
    ``return_value``: the output URLs (or stored paths/URIs with ``output_uri``) when waiting, the
    prediction id when ``wait_for_completion=False``.

    :param model: the model path, e.g. ``wavespeed-ai/flux-dev``.
    :param inputs: the model's inputs (templated).
    :param enable_sync_mode: the submit POST waits for the result; if it comes back unfinished the task
        waits by id as usual, never submitting twice.
    :param enable_base64_output: ask for base64 outputs; requires ``output_uri`` (no bytes in XCom).
    :param wait_for_completion: wait for the outputs (default) or return the prediction id at once.
    :param deferrable: wait in the triggerer, holding no worker slot (default from
        ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls.
    :param timeout: seconds to wait for the prediction before failing the task.
    :param nsfw_policy: ``allow`` (flags kept in metadata), ``fail``, or ``drop`` flagged outputs.
    :param output_uri: copy outputs to this local directory or ``s3://bucket/prefix`` (templated). An
        ``s3://`` destination is declared as an Asset outlet (its fixed part when templated) unless
        ``outlets=`` is given; each run's asset event lists the stored URIs in ``extra["uris"]``.
    :param key_template: file name / object key under ``output_uri``; see ``store_outputs``.
    :param max_output_bytes: refuse to copy an output larger than this.
    :param aws_conn_id: Amazon connection for ``s3://`` inputs and outputs.
    :param wavespeed_conn_id: the WaveSpeed connection.
    :param hook_params: keyword arguments for :class:`WaveSpeedHook` (timeouts, retry bounds), used by
        the task and by its trigger alike.
    """

    template_fields: Sequence[str] = ("model", "inputs", "output_uri")
    template_fields_renderers = {"inputs": "json"}
    operator_extra_links = (WaveSpeedPredictionLink(),)
    ui_color = "#e8e0ff"

    def __init__(
        self,
        *,
        model: str,
        inputs: dict[str, Any] | None = None,
        enable_sync_mode: bool = False,
        enable_base64_output: bool = False,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        timeout: float | timedelta = 1800.0,
        nsfw_policy: str = "allow",
        output_uri: str | None = None,
        key_template: str | None = None,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        aws_conn_id: str | None = "aws_default",
        wavespeed_conn_id: str = "wavespeed_default",
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("outlets") is None:
            # Outputs stored in S3 are an asset other DAGs can be scheduled on; outlets= overrides.
            from airflow_wavespeed.utils.storage import with_default_outlet

            with_default_outlet(kwargs, output_uri)
        super().__init__(**kwargs)
        self.model = model
        self.inputs = inputs if inputs is not None else {}
        self.enable_sync_mode = enable_sync_mode
        self.enable_base64_output = enable_base64_output
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.nsfw_policy = nsfw_policy
        self.output_uri = output_uri
        self.key_template = key_template
        self.max_output_bytes = max_output_bytes
        self.aws_conn_id = aws_conn_id
        self.wavespeed_conn_id = wavespeed_conn_id
        self.hook_params = hook_params or {}
        self._check_run_arguments(rendered=False)

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """``partial()`` declares an ``s3://`` ``output_uri`` as the mapped task's outlet, as ``__init__`` does."""
        if kwargs.get("outlets") is None and kwargs.get("output_uri"):
            from airflow_wavespeed.utils.storage import with_default_outlet

            with_default_outlet(kwargs, kwargs["output_uri"])
        return super().partial(**kwargs)

    # ------------------------------------------------------------ what subclasses change

    def validate_arguments(self) -> None:
        """Check every argument after templates are rendered; raises naming the argument."""
        self._check_run_arguments(rendered=True)

    def build_inputs(self, context: Context) -> dict[str, Any]:
        """The JSON inputs to submit. Runs once per submit, after validation."""
        return dict(self.inputs)

    # ------------------------------------------------------------ the flow

    @cached_property
    def hook(self) -> WaveSpeedHook:
        from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook

        return WaveSpeedHook(wavespeed_conn_id=self.wavespeed_conn_id, **self.hook_params)

    @property
    def timeout_seconds(self) -> float:
        return self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)

    def execute(self, context: Context) -> Any:
        started = time.monotonic()
        self.validate_arguments()
        prediction = self._resume_or_submit(context)
        if not self.wait_for_completion:
            context["ti"].xcom_push(key="prediction", value=prediction.to_xcom())
            self._forget_prediction(context)
            return prediction.id
        if not prediction.status.is_terminal():
            if self.deferrable:
                self._defer(context, prediction, worker_seconds=time.monotonic() - started)
            prediction = self.hook.wait_for_prediction(
                prediction.id, poll_interval=self.poll_interval, timeout=self.timeout_seconds
            )
        return self._complete(context, prediction, {"worker_seconds": time.monotonic() - started})

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        prediction_id: str | None = None,
        worker_seconds: float | None = None,
    ) -> Any:
        """Resume after the trigger fired: finish, or raise with the prediction id and the reason."""
        from airflow_wavespeed.utils.completion import (
            inline_outputs_error,
            outputs_left_out,
            prediction_from_event,
        )

        started = time.monotonic()
        prediction = prediction_from_event(event, expected_id=prediction_id)
        if worker_seconds is None:
            # dag.test() resumes with the event alone, dropping defer()'s kwargs; the deferring run
            # left its timings in the ``prediction`` XCom.
            ti = context["ti"]
            pushed = ti.xcom_pull(task_ids=self.task_id, key="prediction", map_indexes=ti.map_index)
            worker_seconds = ((pushed or {}).get("task_timings") or {}).get("worker_seconds", 0.0)
        if outputs_left_out(event):
            # The trigger leaves base64 outputs out of its event: fetch them here, on the worker, to store.
            if not self.output_uri:
                raise inline_outputs_error(prediction.id)
            prediction = self.hook.get_prediction(prediction.id)
        waited = event.get("waited_seconds") if isinstance(event, dict) else None
        return self._complete(
            context,
            prediction,
            {"worker_seconds": worker_seconds, "trigger_seconds": waited},
            resumed_at=started,
        )

    def _defer(self, context: Context, prediction: Prediction, *, worker_seconds: float) -> None:
        from airflow_wavespeed.triggers.prediction import WaveSpeedPredictionTrigger

        prediction_id = prediction.id
        self.log.info("Deferring to the triggerer after %.2f s on the worker", worker_seconds)
        # What the prediction looks like while it waits; replaced by the final metadata on completion.
        pending = {**prediction.to_xcom(), "task_timings": {"worker_seconds": round(worker_seconds, 3)}}
        context["ti"].xcom_push(key="prediction", value=pending)
        self.defer(
            trigger=WaveSpeedPredictionTrigger(
                prediction_id=prediction_id,
                wavespeed_conn_id=self.wavespeed_conn_id,
                poll_interval=self.poll_interval,
                hook_params=self.hook_params,
                end_time=time.time() + self.timeout_seconds,
                include_outputs=not self.enable_base64_output,
            ),
            method_name="execute_complete",
            kwargs={"prediction_id": prediction_id, "worker_seconds": worker_seconds},
            # Airflow's own backstop, after the trigger's deadline: the trigger normally reports first.
            timeout=timedelta(seconds=self.timeout_seconds + 120),
        )

    def _resume_or_submit(self, context: Context) -> Prediction:
        """Submit, unless an earlier try of this task instance already did (Airflow ≥ 3.3)."""
        from airflow_wavespeed.exceptions import WaveSpeedNotFoundError
        from airflow_wavespeed.links import prediction_url

        store = context.get("task_state_store")
        submission = self.submission_digest() if store is not None else ""
        previous = self._state_get(store, submission)
        prediction = None
        if previous:
            try:
                prediction = self.hook.get_prediction(previous)
            except WaveSpeedNotFoundError:
                self.log.warning("Prediction %s from an earlier try no longer exists", previous)
            if prediction is not None and prediction.status.is_terminal() and not prediction.status.is_success():
                self.log.warning(
                    "Prediction %s from an earlier try %s (%s); submitting a new one",
                    previous,
                    prediction.raw_status,
                    prediction.error,
                )
                prediction = None
            elif prediction is not None:
                self.log.info(
                    "Resuming prediction %s (%s) submitted by an earlier try: not submitting again",
                    prediction.id,
                    prediction.raw_status,
                )
        if prediction is None:
            prediction = self.hook.submit(
                self.model,
                self.build_inputs(context),
                enable_sync_mode=self.enable_sync_mode,
                enable_base64_output=self.enable_base64_output,
            )
            self._state_set(store, prediction.id, submission)
        context["ti"].xcom_push(key="prediction_id", value=prediction.id)
        WaveSpeedPredictionLink.persist(context, prediction_url(self.hook.base_url, prediction.id))
        return prediction

    def _complete(
        self,
        context: Context,
        prediction: Prediction,
        task_timings: dict[str, float | None],
        resumed_at: float | None = None,
    ) -> list[str]:
        """Check, store and return the outputs; record where the task's time went.

        ``task_timings`` in the ``prediction`` XCom: seconds on a worker (submit, then finishing) and
        seconds waited in the triggerer, so users can see what deferring saved them.
        """
        from airflow_wavespeed.utils.completion import accepted_outputs

        metadata = prediction.to_xcom()
        try:
            outputs = accepted_outputs(prediction, self.nsfw_policy, will_store=bool(self.output_uri))
            if self.output_uri:
                outputs = self.store(context, prediction.id, outputs)
        finally:
            if resumed_at is not None:
                task_timings["worker_seconds"] = (task_timings["worker_seconds"] or 0.0) + (
                    time.monotonic() - resumed_at
                )
            metadata["task_timings"] = {k: round(v, 3) for k, v in task_timings.items() if v is not None}
            context["ti"].xcom_push(key="prediction", value=metadata)
        self._forget_prediction(context)
        self.log.info(
            "Prediction %s completed with %d output(s); task timings: %s",
            prediction.id,
            len(outputs),
            metadata["task_timings"],
        )
        return outputs

    def store(self, context: Context, prediction_id: str, outputs: list[str]) -> list[str]:
        """Copy outputs to ``output_uri``; returns the stored paths or ``s3://`` URIs."""
        from airflow_wavespeed.utils.storage import store_outputs

        stored = store_outputs(
            outputs,
            str(self.output_uri),
            names=output_names(context, prediction_id),
            name_template=self.key_template,
            max_output_bytes=self.max_output_bytes,
            aws_conn_id=self.aws_conn_id,
        )
        emit_asset_events(context, self, stored)
        return stored

    # ------------------------------------------------------------ task state store (Airflow ≥ 3.3)

    def submission_digest(self) -> str:
        """A digest of what this task submits, as the user wrote it (rendered, before uploads).

        A retry resumes the stored prediction only when the digest matches, so a task cleared after its
        inputs were changed submits the new edit instead of returning the old one.
        """
        import hashlib
        import json

        fields = {name: getattr(self, name) for name in self.template_fields if name != "output_uri"}
        submitted = {
            "model": self.model,
            "inputs": self.inputs,
            "fields": fields,
            "enable_sync_mode": self.enable_sync_mode,
            "enable_base64_output": self.enable_base64_output,
        }
        # Key order is the DAG's own, the same on every try; sort_keys would fail on mixed key types.
        text = json.dumps(submitted, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _state_get(self, store: Any, submission: str) -> str | None:
        """The prediction id an earlier try submitted with the same inputs, if any."""
        if store is None:
            return None
        try:
            value = store.get(STATE_STORE_KEY)
        except Exception as error:  # a store that cannot answer must not stop the task
            self.log.warning("task_state_store unavailable, a retry would submit again: %s", error)
            return None
        if isinstance(value, str) and value:
            return value  # stored by a provider version without the digest: resuming cannot bill twice
        if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
            return None
        if value.get("submission") != submission:
            self.log.warning(
                "Prediction %s from an earlier try was submitted with other inputs; submitting the new ones",
                value["id"],
            )
            return None
        return str(value["id"])

    def _state_set(self, store: Any, prediction_id: str, submission: str) -> None:
        if store is None:
            return
        try:
            store.set(STATE_STORE_KEY, {"id": prediction_id, "submission": submission})
        except Exception as error:
            self.log.warning("Could not record prediction %s for retries: %s", prediction_id, error)

    def _forget_prediction(self, context: Context) -> None:
        """After success: a later, deliberate re-run of the task submits afresh."""
        store = context.get("task_state_store")
        if store is not None:
            try:
                store.delete(STATE_STORE_KEY)
            except Exception as error:
                self.log.debug("Could not clear task_state_store: %s", error)

    # ------------------------------------------------------------ validation

    def _check_run_arguments(self, *, rendered: bool) -> None:
        from airflow_wavespeed.exceptions import WaveSpeedInputError

        def ready(value: Any) -> bool:
            return rendered or not is_templated(value)

        if ready(self.model):
            validate_model(self.model)
        if ready(self.inputs):
            check_dict(self.inputs, argument="inputs")
        check_bool(self.enable_sync_mode, argument="enable_sync_mode")
        check_bool(self.enable_base64_output, argument="enable_base64_output")
        check_bool(self.wait_for_completion, argument="wait_for_completion")
        check_bool(self.deferrable, argument="deferrable")
        check_positive(self.poll_interval, argument="poll_interval")
        check_positive(self.timeout, argument="timeout")
        check_choice(self.nsfw_policy, NSFW_POLICIES, argument="nsfw_policy")
        if ready(self.output_uri):
            check_output_uri(self.output_uri)
            if self.output_uri and not self.wait_for_completion:
                raise WaveSpeedInputError(
                    "output_uri needs wait_for_completion=True: a task that returns the prediction id at once "
                    "has no outputs to store (store them after a WaveSpeedPredictionSensor with "
                    "WaveSpeedToS3Operator)"
                )
            if self.enable_base64_output and not self.output_uri:
                raise WaveSpeedInputError(
                    "enable_base64_output=True needs output_uri (a local directory or s3:// prefix): base64 "
                    "images are decoded to storage, never passed through XCom"
                )
        if self.key_template is not None:
            from airflow_wavespeed.utils.storage import check_name_template

            check_name_template(self.key_template)
        if isinstance(self.max_output_bytes, bool) or not isinstance(self.max_output_bytes, int) or self.max_output_bytes <= 0:
            raise WaveSpeedInputError(f"max_output_bytes must be a positive int, got {self.max_output_bytes!r}")


def output_names(context: Context, prediction_id: str) -> dict[str, Any]:
    """The values a stored output's name is built from."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    return {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": map_index if map_index is not None and map_index >= 0 else 0,
        "prediction_id": prediction_id,
    }


def emit_asset_events(context: Context, task: BaseOperator, stored: list[str]) -> None:
    """Attach the stored URIs to this task's asset outlets, so downstream DAGs see what arrived."""
    outlet_events = context.get("outlet_events")
    if not stored or outlet_events is None:
        return
    for outlet in task.outlets or []:
        if type(outlet).__name__ == "Asset":
            outlet_events[outlet].extra["uris"] = list(stored)

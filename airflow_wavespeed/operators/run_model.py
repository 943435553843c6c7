"""WaveSpeedRunModelOperator: run any WaveSpeed model, wait for it (deferred or not), hand on the outputs.

The flow is validate → build inputs → submit (or resume) → wait or defer → complete. Subclasses change
only what the model needs: :meth:`validate_arguments` and :meth:`build_inputs`.

Imports: at module level only what building and checking the task needs, because every DAG parse pays
for them; what running it needs (the hook, the trigger, storage, the prediction model, the resume
ledger) is imported in the methods that run on a worker. ``tests/test_operators.py`` holds the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_wavespeed.exceptions import WaveSpeedInputError
from airflow_wavespeed.links import WaveSpeedPredictionLink, prediction_url, written_already
from airflow_wavespeed.operators.model_inputs import ModelInputsMixin
from airflow_wavespeed.operators.resume import ResumeMixin
from airflow_wavespeed.operators.safeguards import SafeguardsMixin
from airflow_wavespeed.tasks import WaveSpeedTaskMixin
from airflow_wavespeed.triggers.schedule import check_poll_schedule
from airflow_wavespeed.utils.assets import emit_asset_events, with_default_outlet
from airflow_wavespeed.utils.validation import (
    INPUT_MODES,
    NSFW_POLICIES,
    check_bool,
    check_choice,
    check_dict,
    check_json,
    check_name_template,
    check_output_uri,
    check_positive,
    check_positive_int,
    check_usd,
    is_templated,
    validate_model,
    without_bytes,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_wavespeed.prediction import Prediction
    from airflow_wavespeed.utils.storage import StoredOutput
    from airflow_wavespeed.utils.timings import TaskTimings


class WaveSpeedRunModelOperator(ModelInputsMixin, ResumeMixin, SafeguardsMixin, WaveSpeedTaskMixin, BaseOperator):
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
    :param end_from_trigger: let a successful wait end the task in the triggerer (one task launch instead of
        two) when nothing is left for a worker: no ``output_uri``, no outlets, no ``on_success_callback``, no
        lineage listener. Anything else resumes on a worker as usual. XComs pushed from the triggerer reach
        downstream tasks as JSON text (README, "Ending in the triggerer").
    :param deferrable: wait in the triggerer, holding no worker slot (default from
        ``[operators] default_deferrable``).
    :param poll_interval: seconds between polls (at first, with ``poll_schedule="backoff"``).
    :param poll_schedule: how a deferred wait polls: ``backoff`` (default) lets the interval grow while the
        prediction keeps processing (a 6-minute video costs about 20 polls, not 180), ``fixed`` polls every
        ``poll_interval``. A wait on the worker (``deferrable=False``) polls every ``poll_interval``.
    :param max_poll_interval: the longest interval ``backoff`` grows to; None keeps the default for the
        model's kind of output (10 s for images, 60 s for video; README, "Running at scale").
    :param timeout: seconds to wait for the prediction before failing the task.
    :param nsfw_policy: ``allow`` (flags kept in metadata), ``fail``, or ``drop`` flagged outputs.
    :param output_uri: copy outputs to this local directory or ``s3://bucket/prefix`` (templated). An
        ``s3://`` destination is declared as an Asset outlet (its fixed part when templated) unless
        ``outlets=`` is given; each run's asset event lists the stored URIs in ``extra["uris"]``.
    :param key_template: file name / object key under ``output_uri``; see ``store_outputs``.
    :param max_output_bytes: refuse to copy an output larger than this; by default the cap of the output's
        media, told from its bytes (README, "Video, audio and 3D").
    :param aws_conn_id: Amazon connection for ``s3://`` inputs and outputs.
    :param media_inputs: the inputs that hold media files (local paths, ``s3://`` URIs, bytes, URLs), to be
        uploaded or presigned before submitting; by default those the model's catalog schema marks. A value
        that can only be a file (``s3://``, ``file://``, bytes) is one in any input.
    :param input_mode: how ``s3://`` inputs reach WaveSpeed: ``presign`` (a presigned GET URL valid for the
        task's timeout plus an hour) or ``upload`` (streamed through WaveSpeed's media upload).
    :param check_catalog: check the inputs against the model's entry in WaveSpeed's catalog
        (``GET /api/v3/models``, read once an hour per process, bills nothing) before submitting: an unknown
        model or input, a missing one, a value outside an enum or range is refused. False for offline work.
    :param max_cost_usd: quote the run first (``POST /api/v3/model/price``, not billed) and refuse to
        submit when the quote is above this or unknown. The quote is recorded as ``cost_usd`` in the
        ``prediction`` XCom. On Airflow ≥ 3.3 it is one budget for all the task instance's tries.
    :param min_balance_usd: refuse to submit when the account balance is below this.
    :param cancel_on_kill: cancel the prediction when the task is killed (``on_kill``; deferred too on
        Airflow ≥ 3.3). Best-effort: WaveSpeed may still bill it (README, "Billing safety").
    :param cancel_on_timeout: cancel the prediction when ``timeout`` passes, unless a retry will resume it.
    :param allow_private_output_hosts: fetch outputs from private addresses too (a private deployment);
        by default outputs come only from public hosts and the connection's own base URL.
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
        end_from_trigger: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        poll_schedule: str = "backoff",
        max_poll_interval: float | None = None,
        timeout: float | timedelta = 1800.0,
        nsfw_policy: str = "allow",
        output_uri: str | None = None,
        key_template: str | None = None,
        max_output_bytes: int | None = None,
        media_inputs: list[str] | None = None,
        input_mode: str = "presign",
        check_catalog: bool = True,
        aws_conn_id: str | None = "aws_default",
        max_cost_usd: float | None = None,
        min_balance_usd: float | None = None,
        cancel_on_kill: bool = False,
        cancel_on_timeout: bool = False,
        allow_private_output_hosts: bool = False,
        wavespeed_conn_id: str = "wavespeed_default",
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Outputs stored in S3 are an asset other DAGs can be scheduled on; outlets= overrides.
        super().__init__(**with_default_outlet(kwargs, output_uri))
        self.model = model
        self.inputs = inputs if inputs is not None else {}
        self.enable_sync_mode = enable_sync_mode
        self.enable_base64_output = enable_base64_output
        self.wait_for_completion = wait_for_completion
        self.end_from_trigger = end_from_trigger
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.poll_schedule = poll_schedule
        self.max_poll_interval = max_poll_interval
        self.timeout = timeout
        self.nsfw_policy = nsfw_policy
        self.output_uri = output_uri
        self.key_template = key_template
        self.max_output_bytes = max_output_bytes
        self.media_inputs = list(media_inputs or [])
        self.input_mode = input_mode
        self.check_catalog = check_catalog
        #: What the model makes (image, video, audio, 3d, text), from its catalog entry or its name.
        self.media: str | None = None
        #: The media sources of the run as the user gave them, for lineage.
        self.media_sources: list[str] = []
        self.aws_conn_id = aws_conn_id
        self.max_cost_usd = None if max_cost_usd is None else check_usd(max_cost_usd, argument="max_cost_usd")
        self.min_balance_usd = None if min_balance_usd is None else check_usd(min_balance_usd, argument="min_balance_usd")
        self.cancel_on_kill = check_bool(cancel_on_kill, argument="cancel_on_kill")
        self.cancel_on_timeout = check_bool(cancel_on_timeout, argument="cancel_on_timeout")
        #: The quote made before submitting, when ``max_cost_usd`` asked for one.
        self.cost_usd: float | None = None
        self._set_hook_arguments(wavespeed_conn_id, hook_params, allow_private_output_hosts)
        self._check_run_arguments(rendered=False)

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """``partial()`` declares an ``s3://`` ``output_uri`` as the mapped task's outlet, as ``__init__`` does."""
        return super().partial(**with_default_outlet(kwargs, kwargs.get("output_uri")))

    # ------------------------------------------------------------ what subclasses change

    def validate_arguments(self) -> None:
        """Check every argument after templates are rendered; raises naming the argument."""
        self._check_run_arguments(rendered=True)

    def metadata_extras(self) -> dict[str, Any]:
        """What the ``prediction`` XCom holds beyond the prediction's own metadata: the quote and the billed
        cost, when made, and the media the model makes."""
        extras: dict[str, Any] = {} if self.cost_usd is None else {"cost_usd": self.cost_usd, **self._billed}
        if self.media is not None:
            extras["media"] = self.media
        return extras

    def metadata(self, prediction: Prediction) -> dict[str, Any]:
        """The ``prediction`` XCom: the prediction's small metadata and :meth:`metadata_extras`."""
        return {**prediction.to_xcom(), **self.metadata_extras()}

    # ------------------------------------------------------------ the flow

    @property
    def timeout_seconds(self) -> float:
        return check_positive(self.timeout, argument="timeout")

    def execute(self, context: Context) -> Any:
        from airflow_wavespeed.utils.timings import TaskTimings

        timings = TaskTimings()
        self.validate_arguments()
        prediction = self._submit_or_resume(context)
        if not self.wait_for_completion:
            context["ti"].xcom_push(key="prediction", value=self.metadata(prediction))
            self._ledger(context).forget()
            return prediction.id
        if not prediction.status.is_terminal():
            if self.deferrable:
                self._defer(context, prediction, timings.stop())
            with self._on_timeout(context, prediction.id):
                prediction = self.hook.wait_for_prediction(
                    prediction.id,
                    poll_interval=self.poll_interval,
                    timeout=self.timeout_seconds,
                    base64_outputs=self.enable_base64_output,
                )
        self._billed = self._billed_cost(prediction)
        return self._complete(context, prediction, timings)

    def execute_complete(self, context: Context, event: dict[str, Any] | str | None = None) -> Any:
        """Resume after the trigger fired: finish, or raise with the prediction id and the reason."""
        from airflow_wavespeed.prediction import inline_outputs_error
        from airflow_wavespeed.triggers.event import PredictionEvent
        from airflow_wavespeed.utils.timings import TaskTimings

        written_already(self)
        if event == "success" and self.end_from_trigger:
            # end_from_trigger under dag.test(): it resumes the task with the bare word instead of ending it.
            return self._complete(context, self._fetch_finished(context), TaskTimings())
        resumed = PredictionEvent.from_payload(event)
        self.cost_usd = resumed.carry.get("metadata", {}).get("cost_usd")
        self.media = resumed.carry.get("metadata", {}).get("media")
        timings = TaskTimings.resumed(resumed.carry.get("operator_seconds"), resumed.waited_seconds)
        with self._on_timeout(context, resumed.prediction_id):
            prediction = resumed.terminal_prediction()
        if resumed.outputs_left_out:
            # The trigger leaves base64 outputs out of its event: fetch them here, on the worker, to store.
            if not self.output_uri and self.media != "text":
                raise inline_outputs_error(prediction.id)
            prediction = self.hook.get_prediction(prediction.id, base64_outputs=True)
        self._billed = self._billed_cost(prediction)
        return self._complete(context, prediction, timings)

    def _submit_or_resume(self, context: Context) -> Prediction:
        """Submit, unless an earlier try of this task instance already did (Airflow ≥ 3.3); a submit whose
        answer was lost is looked for once in WaveSpeed's history (:mod:`airflow_wavespeed.recovery`)."""
        from airflow_wavespeed.recovery import submit_or_recover
        from airflow_wavespeed.utils.spend import SpendLedger

        ledger = self._ledger(context)
        previous = ledger.recorded()
        prediction = self._resume(previous, ledger) if previous else None
        if prediction is not None:
            ledger.note_resumed(prediction.id)
        else:
            inputs = self._prepare_inputs(context)
            spend = SpendLedger(context.get("task_state_store"), first_try=ledger.first_try)
            earlier = spend.spent() if self.max_cost_usd is not None else []
            self.cost_usd = self._check_spend(inputs, earlier)
            prediction = submit_or_recover(
                self.hook, self.model, inputs, sync=self.enable_sync_mode, base64=self.enable_base64_output
            )
            ledger.record(prediction.id)
            if self.cost_usd is not None:
                spend.add(prediction.id, self.cost_usd, earlier)
        self._waiting_on = prediction.id
        context["ti"].xcom_push(key="prediction_id", value=prediction.id)
        if len(ledger.tries) > 1:  # a retry (Airflow clears the XComs of earlier tries): which try used what
            context["ti"].xcom_push(key="prediction_tries", value=ledger.tries)
        self.prediction_link = prediction_url(self.hook.base_url, prediction.id)  # Airflow writes it (links.py)
        return prediction

    def _fetch_finished(self, context: Context) -> Prediction:
        """The prediction this task waited for, by its id: for a resume whose event carried nothing."""
        ti = context["ti"]
        prediction_id = ti.xcom_pull(task_ids=self.task_id, key="prediction_id", map_indexes=ti.map_index)
        return self.hook.get_prediction(str(prediction_id), base64_outputs=self.enable_base64_output)

    def _defer(self, context: Context, prediction: Prediction, timings: TaskTimings) -> None:
        from airflow_wavespeed.triggers.prediction import defer_to_trigger

        self.log.info("Deferring to the triggerer after %.2f s of the operator's code", timings.operator_seconds)
        defer_to_trigger(
            self,
            prediction.id,
            wavespeed_conn_id=self.wavespeed_conn_id,
            poll_interval=self.poll_interval,
            timeout=self.timeout_seconds,
            hook_params=self.hook_params,
            include_outputs=not self.enable_base64_output,
            carry={"operator_seconds": round(timings.operator_seconds, 3), "metadata": self.metadata_extras()},
            end_from_trigger=self._may_end_in_triggerer(),
            nsfw_policy=self.nsfw_policy,
            cancel_on_kill=self.cancel_on_kill,
            poll_schedule=self.poll_schedule,
            max_poll_interval=self.max_poll_interval,
            media=self.media,
        )

    def _may_end_in_triggerer(self) -> bool:
        """Whether a success may end in the triggerer: asked for, and nothing left for a worker to do
        (storing outputs, and what :func:`work_left_for_a_worker` names)."""
        if not self.end_from_trigger:
            return False
        from airflow_wavespeed.triggers.prediction import work_left_for_a_worker

        left = work_left_for_a_worker(self, output_uri=bool(self.output_uri))
        if left:
            self.log.info("end_from_trigger: finishing on a worker, for %s", ", ".join(left))
        return not left

    def _complete(self, context: Context, prediction: Prediction, timings: TaskTimings) -> list[str]:
        """Check, store and return the outputs; record where the task's time went."""
        from airflow_wavespeed.prediction import accepted_outputs

        metadata = self.metadata(prediction)
        try:
            # A text model's outputs are the text itself, passed on as it is; base64 media only to storage.
            inline_ok = bool(self.output_uri) or self.media == "text"
            outputs = accepted_outputs(prediction, self.nsfw_policy, will_store=inline_ok)
            if self.output_uri:
                copies = self.store(context, prediction.id, outputs)
                metadata["stored"] = [copy.to_xcom() for copy in copies]
                if str(self.output_uri).startswith("s3://"):
                    metadata["aws_conn_id"] = self.aws_conn_id  # the UI presigns its links with it
                outputs = [copy.location for copy in copies]
                self.log.info(
                    "Stored the outputs of prediction %s: %s",
                    prediction.id,
                    ", ".join(f"{c.location} ({c.content_type}, {c.bytes} bytes)" for c in copies),
                )
        finally:
            metadata["task_timings"] = timings.stop().to_xcom()
            context["ti"].xcom_push(key="prediction", value=metadata)
        self._ledger(context).forget()
        from airflow_wavespeed.utils.lineage import report_to_airflow

        self.lineage_outputs = list(outputs)
        report_to_airflow(self, inputs=self.lineage_inputs(), outputs=outputs)
        self.log.info(
            "Prediction %s completed with %d output(s); task timings: %s",
            prediction.id,
            len(outputs),
            metadata["task_timings"],
        )
        return outputs

    def store(self, context: Context, prediction_id: str, outputs: list[str]) -> list[StoredOutput]:
        """Copy outputs to ``output_uri``; returns where each went (paths or ``s3://`` URIs) and what it is."""
        from airflow_wavespeed.utils.storage import output_names, store_media

        stored = store_media(
            outputs,
            str(self.output_uri),
            download=self.download(),
            names=output_names(context, prediction_id),
            name_template=self.key_template,
            max_output_bytes=self.max_output_bytes,
            aws_conn_id=self.aws_conn_id,
            text=self.media == "text",
        )
        emit_asset_events(context, self, [copy.location for copy in stored])
        return stored

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the images that fed the edit and where its outputs are (or were stored)."""
        from airflow_wavespeed.utils.lineage import openlineage_facets

        return openlineage_facets(inputs=self.lineage_inputs(), outputs=getattr(self, "lineage_outputs", []))

    # ------------------------------------------------------------ validation

    def _check_run_arguments(self, *, rendered: bool) -> None:
        def ready(value: Any) -> bool:
            return rendered or not is_templated(value)

        if ready(self.model):
            validate_model(self.model)
        if ready(self.inputs):
            check_json(without_bytes(check_dict(self.inputs, argument="inputs")), argument="inputs")
        check_bool(self.enable_sync_mode, argument="enable_sync_mode")
        check_bool(self.enable_base64_output, argument="enable_base64_output")
        check_bool(self.wait_for_completion, argument="wait_for_completion")
        check_bool(self.end_from_trigger, argument="end_from_trigger")
        check_bool(self.deferrable, argument="deferrable")
        check_poll_schedule(
            self.poll_schedule,
            self.max_poll_interval,
            poll_interval=check_positive(self.poll_interval, argument="poll_interval"),
        )
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
            check_name_template(self.key_template)
        if self.max_output_bytes is not None:
            check_positive_int(self.max_output_bytes, argument="max_output_bytes")
        check_bool(self.check_catalog, argument="check_catalog")
        check_choice(self.input_mode, INPUT_MODES, argument="input_mode")
        if not isinstance(self.media_inputs, list) or not all(isinstance(n, str) and n for n in self.media_inputs):
            raise WaveSpeedInputError(f"media_inputs must be a list of input names, got {self.media_inputs!r}")

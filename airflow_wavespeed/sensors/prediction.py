"""WaveSpeedPredictionSensor: wait for a prediction submitted elsewhere and return its outputs.

As in the operators, what only running the sensor needs is imported in its methods, not at parse time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import (
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_wavespeed.exceptions import WaveSpeedError, WaveSpeedPredictionFailedError, WaveSpeedTimeoutError
from airflow_wavespeed.links import WaveSpeedPredictionLink, prediction_url, written_already
from airflow_wavespeed.tasks import WaveSpeedTaskMixin
from airflow_wavespeed.triggers.schedule import check_poll_schedule
from airflow_wavespeed.utils.validation import (
    NSFW_POLICIES,
    check_bool,
    check_choice,
    check_positive,
    is_templated,
    validate_prediction_id,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_wavespeed.prediction import Prediction


class WaveSpeedPredictionSensor(WaveSpeedTaskMixin, BaseSensorOperator):
    """
    Wait until a WaveSpeed prediction is terminal; return its output URLs (XCom ``return_value``).

    Typically fed by ``WaveSpeedImageEditOperator(wait_for_completion=False)``. A failed prediction
    raises with its id and the API's error, or skips the task with ``soft_fail=True``.

    :param prediction_id: the prediction to wait for (templated).
    :param deferrable: wait in the triggerer (default from ``[operators] default_deferrable``);
        otherwise poke with ``poke_interval`` in ``poke`` or ``reschedule`` mode.
    :param nsfw_policy: ``allow``, ``fail`` or ``drop`` flagged outputs.
    :param end_from_trigger: let a successful wait end the task in the triggerer (one task launch instead
        of two) unless it has outlets, an ``on_success_callback`` or a lineage listener; see the operator's
        argument of the same name.
    :param poll_schedule: how a deferred wait polls: ``backoff`` (default) grows the interval from
        ``poke_interval`` while the prediction keeps processing, ``fixed`` polls every ``poke_interval``
        (as poking does); see the operator's argument of the same name.
    :param max_poll_interval: the longest interval ``backoff`` grows to; None keeps its default.
    :param wavespeed_conn_id: the WaveSpeed connection.
    :param hook_params: keyword arguments for :class:`WaveSpeedHook` (timeouts, retry bounds).
    """

    template_fields: Sequence[str] = ("prediction_id",)
    operator_extra_links = (WaveSpeedPredictionLink(),)
    ui_color = "#e8e0ff"

    def __init__(
        self,
        *,
        prediction_id: str,
        wavespeed_conn_id: str = "wavespeed_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        nsfw_policy: str = "allow",
        hook_params: dict[str, Any] | None = None,
        end_from_trigger: bool = False,
        poll_schedule: str = "backoff",
        max_poll_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 5.0)
        kwargs.setdefault("timeout", 1800.0)
        # Checked before Airflow's own __init__, which fails on an absurd timeout with an OverflowError.
        check_poll_schedule(
            poll_schedule, max_poll_interval, poll_interval=check_positive(kwargs["poke_interval"], argument="poke_interval")
        )
        check_positive(kwargs["timeout"], argument="timeout")
        super().__init__(**kwargs)
        self.prediction_id = prediction_id
        self.deferrable = deferrable
        self.poll_schedule = poll_schedule
        self.max_poll_interval = max_poll_interval
        self.end_from_trigger = check_bool(end_from_trigger, argument="end_from_trigger")
        self._set_hook_arguments(wavespeed_conn_id, hook_params)
        self.nsfw_policy = check_choice(nsfw_policy, NSFW_POLICIES, argument="nsfw_policy")
        check_bool(deferrable, argument="deferrable")
        if not is_templated(prediction_id):
            validate_prediction_id(prediction_id)

    def execute(self, context: Context) -> Any:
        validate_prediction_id(self.prediction_id)
        self.prediction_link = prediction_url(self.hook.base_url, self.prediction_id)  # Airflow writes it
        if not self.deferrable:
            return super().execute(context)
        prediction = self.hook.get_prediction(self.prediction_id)
        if prediction.status.is_terminal():
            return self._outputs(context, prediction)
        from airflow_wavespeed.triggers.prediction import defer_to_trigger

        defer_to_trigger(
            self,
            self.prediction_id,
            wavespeed_conn_id=self.wavespeed_conn_id,
            poll_interval=check_positive(self.poke_interval, argument="poke_interval"),
            timeout=check_positive(self.timeout, argument="timeout"),
            hook_params=self.hook_params,
            end_from_trigger=self._may_end_in_triggerer(),
            nsfw_policy=self.nsfw_policy,
            poll_schedule=self.poll_schedule,
            max_poll_interval=self.max_poll_interval,
        )

    def _may_end_in_triggerer(self) -> bool:
        """As the operator's: asked for, and nothing left for a worker (:func:`work_left_for_a_worker`)."""
        from airflow_wavespeed.triggers.prediction import work_left_for_a_worker

        return self.end_from_trigger and not work_left_for_a_worker(self)

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_wavespeed.prediction import judge_poll

        try:
            answer: Prediction | WaveSpeedError = self.hook.get_prediction(self.prediction_id)
        except WaveSpeedError as error:
            answer = error
        verdict = judge_poll(self.prediction_id, answer)
        if verdict.warning:
            self.log.warning("%s", verdict.warning)
        if verdict.error is not None:
            raise verdict.error
        if not verdict.finished or verdict.prediction is None:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._outputs(context, verdict.prediction))

    def execute_complete(self, context: Context, event: dict[str, Any] | str | None = None) -> Any:
        from airflow_wavespeed.prediction import inline_outputs_error
        from airflow_wavespeed.triggers.event import PredictionEvent

        written_already(self)
        if event == "success" and self.end_from_trigger:
            # end_from_trigger under dag.test(): it resumes the task with the bare word instead of ending it.
            return self._outputs(context, self.hook.get_prediction(self.prediction_id))
        resumed = PredictionEvent.from_payload(event, expected_id=self.prediction_id)
        try:
            prediction = resumed.terminal_prediction()
        except WaveSpeedTimeoutError as error:
            self._fail_or_skip(error)
        if resumed.outputs_left_out:
            # The event's metadata, which counts the outputs it left out.
            context["ti"].xcom_push(key="prediction", value=resumed.prediction)
            raise inline_outputs_error(prediction.id)
        return self._outputs(context, prediction)

    def _outputs(self, context: Context, prediction: Prediction) -> list[str]:
        from airflow_wavespeed.prediction import accepted_outputs

        context["ti"].xcom_push(key="prediction", value=prediction.to_xcom())
        try:
            return accepted_outputs(prediction, self.nsfw_policy)
        except WaveSpeedPredictionFailedError as error:
            self._fail_or_skip(error)

    def _fail_or_skip(self, error: Exception) -> NoReturn:
        if self.soft_fail:
            raise AirflowSkipException(f"{error} (soft_fail=True)") from error
        raise error

"""WaveSpeedBudgetOperator: refuse a whole batch before its first submit when it would cost too much.

Put it upstream of mapped edits: it asks WaveSpeed to quote every edit (``POST /api/v3/model/price``,
which bills nothing), adds the quotes up, and fails without retries when the total is above the budget,
when any quote is unknown, or when the account balance is below the floor given. The mapped edits then
never run, so nothing of the batch is submitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_wavespeed.exceptions import WaveSpeedInputError
from airflow_wavespeed.tasks import WaveSpeedTaskMixin
from airflow_wavespeed.utils.validation import check_json, check_usd, is_templated, validate_model

if TYPE_CHECKING:
    from airflow.sdk import Context


class WaveSpeedBudgetOperator(WaveSpeedTaskMixin, BaseOperator):
    """
    Quote a batch of predictions and refuse it, before any is submitted, when it would cost too much.

    Returns ``{"total_usd", "quotes", "balance_usd"}`` (XCom ``return_value``).

    :param model: the model the batch runs, e.g. ``openai/gpt-image-2/edit``.
    :param inputs: the model inputs of each prediction in the batch (templated; an XComArg works).
    :param max_total_cost_usd: the batch's budget in USD.
    :param min_balance_usd: also refuse when the account balance is below this (None: not checked).
    :param wavespeed_conn_id: the WaveSpeed connection.
    :param hook_params: keyword arguments for :class:`WaveSpeedHook` (timeouts, retry bounds).
    """

    template_fields: Sequence[str] = ("model", "inputs")
    template_fields_renderers = {"inputs": "json"}
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        model: str,
        inputs: list[dict[str, Any]],
        max_total_cost_usd: float,
        min_balance_usd: float | None = None,
        wavespeed_conn_id: str = "wavespeed_default",
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.inputs = inputs
        self.max_total_cost_usd = check_usd(max_total_cost_usd, argument="max_total_cost_usd")
        self.min_balance_usd = None if min_balance_usd is None else check_usd(min_balance_usd, argument="min_balance_usd")
        self._set_hook_arguments(wavespeed_conn_id, hook_params)
        self._check(rendered=False)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_wavespeed.exceptions import WaveSpeedSpendLimitError

        self._check(rendered=True)
        quotes = [self.hook.get_price(self.model, inputs) for inputs in self.inputs]
        unknown = [n for n, quote in enumerate(quotes) if quote is None]
        if unknown:
            raise WaveSpeedSpendLimitError(
                f"WaveSpeed gave no price for {self.model} (inputs {unknown}), so the batch of {len(quotes)} "
                f"cannot be held to max_total_cost_usd={self.max_total_cost_usd:g}; nothing was submitted"
            )
        total = round(sum(q for q in quotes if q is not None), 6)
        self.log.info("Batch of %d %s predictions quoted at %.4f USD in all", len(quotes), self.model, total)
        if total > self.max_total_cost_usd:
            raise WaveSpeedSpendLimitError(
                f"The batch of {len(quotes)} {self.model} predictions is quoted at {total:.4f} USD, above "
                f"max_total_cost_usd={self.max_total_cost_usd:g}; nothing was submitted"
            )
        balance = None
        if self.min_balance_usd is not None:
            refused = f"the batch of {len(quotes)} {self.model} predictions was not submitted"
            balance = self.hook.require_balance(self.min_balance_usd, refused=refused)
        return {"total_usd": total, "quotes": quotes, "balance_usd": balance}

    def _check(self, *, rendered: bool) -> None:
        if rendered or not is_templated(self.model):
            validate_model(self.model)
        if rendered or not is_templated(self.inputs):
            if not isinstance(self.inputs, (list, tuple)) or not all(isinstance(i, dict) for i in self.inputs):
                raise WaveSpeedInputError(
                    f"inputs must be a list of model-input dicts, one per prediction, got {type(self.inputs).__name__}"
                )
            check_json(list(self.inputs), argument="inputs")

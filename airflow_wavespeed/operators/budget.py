"""WaveSpeedBudgetOperator: refuse a whole batch before its first submit when it would cost too much.

Put it upstream of mapped edits: it asks WaveSpeed to quote every edit (``POST /api/v3/model/price``,
which bills nothing), adds the quotes up, and fails without retries when the total is above the budget,
when any quote is unknown, or when the account balance is below the floor given. The mapped edits then
never run, so nothing of the batch is submitted.

Past the first submit, the budget is handed down: the batch's ``max_total_cost_usd`` is shared out among
its predictions in proportion to their quotes (its return value: each mapped task's keyword arguments
with its share as ``max_cost_usd``). A mapped task holds its own ``max_cost_usd`` over all its tries
(Airflow >= 3.3, :mod:`airflow_wavespeed.utils.spend`), so the shares hold the whole batch, retries
included, to the budget without a running total that every mapped task would have to update at once.
"""

from __future__ import annotations

import math
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

    Returns one dict per prediction (XCom ``return_value``): ``task_kwargs`` (by default
    ``{"inputs": ...}``) with its share of the budget as ``max_cost_usd``, to map the batch's task over
    with ``.expand_kwargs(check_budget.output)``. The figures are the XCom ``quote``: ``{"total_usd",
    "quotes", "shares_usd", "balance_usd"}``.

    :param model: the model the batch runs, e.g. ``openai/gpt-image-2/edit``.
    :param inputs: the model inputs of each prediction in the batch (templated; an XComArg works).
    :param task_kwargs: the mapped task's keyword arguments for each prediction, in the order of ``inputs``
        (templated); by default ``{"inputs": inputs[n]}``, what :class:`WaveSpeedRunModelOperator` takes.
    :param max_total_cost_usd: the batch's budget in USD.
    :param min_balance_usd: also refuse when the account balance is below this (None: not checked).
    :param wavespeed_conn_id: the WaveSpeed connection.
    :param hook_params: keyword arguments for :class:`WaveSpeedHook` (timeouts, retry bounds).
    """

    template_fields: Sequence[str] = ("model", "inputs", "task_kwargs")
    template_fields_renderers = {"inputs": "json"}
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        model: str,
        inputs: list[dict[str, Any]],
        max_total_cost_usd: float,
        min_balance_usd: float | None = None,
        task_kwargs: list[dict[str, Any]] | None = None,
        wavespeed_conn_id: str = "wavespeed_default",
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.inputs = inputs
        self.task_kwargs = task_kwargs
        self.max_total_cost_usd = check_usd(max_total_cost_usd, argument="max_total_cost_usd")
        self.min_balance_usd = None if min_balance_usd is None else check_usd(min_balance_usd, argument="min_balance_usd")
        self._set_hook_arguments(wavespeed_conn_id, hook_params)
        self._check(rendered=False)

    def execute(self, context: Context) -> list[dict[str, Any]]:
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
        shares = budget_shares([q for q in quotes if q is not None], self.max_total_cost_usd)
        kwargs_each = self.task_kwargs if self.task_kwargs is not None else [{"inputs": i} for i in self.inputs]
        batch = [{**kwargs, "max_cost_usd": share} for kwargs, share in zip(kwargs_each, shares, strict=True)]
        context["ti"].xcom_push(
            key="quote", value={"total_usd": total, "quotes": quotes, "shares_usd": shares, "balance_usd": balance}
        )
        return batch

    def _check(self, *, rendered: bool) -> None:
        if rendered or not is_templated(self.model):
            validate_model(self.model)
        if rendered or not is_templated(self.inputs):
            if not isinstance(self.inputs, (list, tuple)) or not all(isinstance(i, dict) for i in self.inputs):
                raise WaveSpeedInputError(
                    f"inputs must be a list of model-input dicts, one per prediction, got {type(self.inputs).__name__}"
                )
            check_json(list(self.inputs), argument="inputs")
        if self.task_kwargs is not None and (rendered or not is_templated(self.task_kwargs)):
            kwargs_each = self.task_kwargs
            if not isinstance(kwargs_each, (list, tuple)) or not all(isinstance(k, dict) for k in kwargs_each):
                raise WaveSpeedInputError(
                    f"task_kwargs must be a list of keyword-argument dicts, one per prediction, got "
                    f"{type(kwargs_each).__name__}"
                )
            if any("max_cost_usd" in k for k in kwargs_each):
                raise WaveSpeedInputError("task_kwargs must not set max_cost_usd: each task's share of the budget is its max_cost_usd")
            if not is_templated(self.inputs) and len(kwargs_each) != len(self.inputs):
                raise WaveSpeedInputError(
                    f"task_kwargs has {len(kwargs_each)} entries and inputs {len(self.inputs)}: one of each per prediction"
                )


def budget_shares(quotes: list[float], budget: float) -> list[float]:
    """``budget`` shared out in proportion to ``quotes`` (evenly when all are free), each rounded down to a
    millionth of a USD so the shares never add up to more than the budget. Each share is at least its quote
    when the quotes fit the budget, so a first try is never refused by its share."""
    if not quotes:
        return []
    total = sum(quotes)
    weights = [q / total for q in quotes] if total > 0 else [1 / len(quotes)] * len(quotes)
    # round() first: 0.18 shared by three is 0.0599999… in floats, which must not round down below 0.06;
    # and never below the quote itself (a quote finer than a millionth), which the exact share never is.
    floored = [math.floor(round(budget * weight * 1e6, 3)) / 1e6 for weight in weights]
    fits = round(total, 9) <= budget
    return [max(share, quote) if fits else share for share, quote in zip(floored, quotes, strict=True)]

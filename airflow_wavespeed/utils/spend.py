"""What a task instance has spent over all its tries, so ``max_cost_usd`` is one budget, not one per try.

Beside the prediction ledger (:mod:`airflow_wavespeed.utils.ledger`), in the same task state store
(Airflow 3.3): every prediction a try submits is recorded with its quote before the task waits. A later
try adds them up and is refused before it submits when its own quote would pass the budget. On Airflow
3.1 and 3.2 there is no such store: the budget holds per try (each try quotes and checks its own
prediction), and nothing counts what earlier tries spent.
"""

from __future__ import annotations

from typing import Any

from airflow_wavespeed.exceptions import WaveSpeedError, WaveSpeedResumeError, WaveSpeedSpendLimitError
from airflow_wavespeed.utils.ledger import TaskStateStore

#: The task state store key holding ``{"predictions": [{"id": ..., "usd": ...}, ...]}``.
SPEND_KEY = "wavespeed_spend"



class SpendLedger:
    """The predictions one task instance submitted, with their quotes, across its tries.

    :param store: the task's ``task_state_store``, or None where Airflow has none (3.1, 3.2).
    :param first_try: the first try reads nothing (no earlier try can have spent anything).
    """

    def __init__(self, store: TaskStateStore | None, *, first_try: bool = False) -> None:
        self.store = store
        self.first_try = first_try

    def spent(self) -> list[dict[str, Any]]:
        """``[{"id", "usd"}]`` of the earlier tries. A store that cannot be read fails the try before it
        submits: what earlier tries spent is unknown, so the budget cannot be held."""
        if self.store is None or self.first_try:
            return []
        try:
            value = self.store.get(SPEND_KEY)
        except Exception as error:
            raise WaveSpeedError(
                f"Cannot read the task state store ({error}), so what earlier tries of this task spent is "
                "unknown and max_cost_usd cannot be held; nothing was submitted. A retry reads it again."
            ) from error
        entries = value.get("predictions") if isinstance(value, dict) else None
        return [
            {"id": str(entry["id"]), "usd": float(entry["usd"])}
            for entry in entries or []
            if isinstance(entry, dict) and isinstance(entry.get("id"), str) and isinstance(entry.get("usd"), (int, float))
        ]

    def add(self, prediction_id: str, usd: float, earlier: list[dict[str, Any]]) -> None:
        """Record a submitted prediction and its quote; a failure fails the task without retries (a retry
        could not see what this one spent)."""
        if self.store is None:
            return
        entries = [*earlier, {"id": prediction_id, "usd": usd}]
        try:
            self.store.set(SPEND_KEY, {"predictions": entries})
        except Exception as error:
            raise WaveSpeedResumeError(
                prediction_id,
                f"Prediction {prediction_id} was submitted, but recording its cost in the task state store failed "
                f"({error}), so a retry could not hold max_cost_usd. The task fails without retries.",
            ) from error


def describe(entries: list[dict[str, Any]]) -> str:
    """``0.1200 USD on 2 predictions (a 0.0600, b 0.0600)``, for a refusal's message."""
    total = sum(entry["usd"] for entry in entries)
    listed = ", ".join(f"{entry['id']} {entry['usd']:.4f}" for entry in entries[:10])
    more = f" and {len(entries) - 10} more" if len(entries) > 10 else ""
    return f"{total:.4f} USD on {len(entries)} prediction(s) ({listed}{more})"


def check_across_tries(model: str, quote: float, max_cost_usd: float, earlier: list[dict[str, Any]]) -> None:
    """Refuse (:class:`WaveSpeedSpendLimitError`, no retries) a submit whose quote, added to what earlier
    tries spent, would pass ``max_cost_usd``; the message says what was spent and on which predictions."""
    spent = sum(entry["usd"] for entry in earlier)
    if earlier and round(spent + quote, 6) > max_cost_usd:
        raise WaveSpeedSpendLimitError(
            f"Earlier tries of this task spent {describe(earlier)}; another {model} prediction quoted at "
            f"{quote:.4f} USD would pass max_cost_usd={max_cost_usd:g} ({spent + quote:.4f} USD in all); "
            "nothing was submitted"
        )

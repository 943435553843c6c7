"""What every WaveSpeed task shares: the hook it builds from its connection and ``hook_params``.

The operators, the sensor and the transfer mix :class:`WaveSpeedTaskMixin` in, so the hook is built
one way everywhere (the same timeouts and retry bounds on the worker, in the task's trigger and for
output downloads), and ``hook_params`` is checked when the DAG is parsed, by the rules the hook
applies when the task runs.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_wavespeed.hooks.limits import RequestLimits
from airflow_wavespeed.utils.validation import check_bool, check_conn_id

if TYPE_CHECKING:
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_wavespeed.utils.storage import Download


class WaveSpeedTaskMixin:
    """The hook of a task with ``wavespeed_conn_id`` and ``hook_params`` attributes."""

    wavespeed_conn_id: str
    hook_params: dict[str, Any]
    allow_private_output_hosts: bool = False

    def _set_hook_arguments(
        self, wavespeed_conn_id: Any, hook_params: Any, allow_private_output_hosts: Any = False
    ) -> None:
        self.wavespeed_conn_id = str(check_conn_id(wavespeed_conn_id, argument="wavespeed_conn_id"))
        self.hook_params = dict(hook_params or {})
        RequestLimits.from_params(self.hook_params)
        self.allow_private_output_hosts = check_bool(allow_private_output_hosts, argument="allow_private_output_hosts")

    @cached_property
    def hook(self) -> WaveSpeedHook:
        from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook  # loads requests: only when a task runs

        return WaveSpeedHook(self.wavespeed_conn_id, **self.hook_params)

    def download(self) -> Download:
        """How this task fetches output files: the hook's downloader, under the output-host rules."""
        return self.hook.output_downloader(allow_private_hosts=self.allow_private_output_hosts).open

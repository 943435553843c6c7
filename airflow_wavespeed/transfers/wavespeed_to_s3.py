"""WaveSpeedToS3Operator: copy prediction outputs into S3 before WaveSpeed deletes them (after 7 days).

The copy itself is :func:`airflow_wavespeed.utils.storage.store_media`, the same path the edit
operator's ``output_uri="s3://…"`` takes, so key names, size caps, Content-Type and streaming agree
whichever way a DAG stores its outputs. This operator adds what a separate task needs: finding the
prediction id upstream, and an Asset outlet so other DAGs can be scheduled on what arrived.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSkipException, BaseOperator

from airflow_wavespeed.tasks import WaveSpeedTaskMixin
from airflow_wavespeed.utils.assets import emit_asset_events, with_default_outlet
from airflow_wavespeed.utils.validation import (
    check_bool,
    check_conn_id,
    check_name_template,
    check_outputs,
    check_positive_int,
    check_s3_prefix,
    is_templated,
    scheme_of,
    validate_prediction_id,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class WaveSpeedToS3Operator(WaveSpeedTaskMixin, BaseOperator):
    """
    Stream WaveSpeed outputs (URLs, or base64 strings) of any media into S3 and return their ``s3://`` URIs.

    Default keys are ``{dag_id}/{run_id}/{task_id}/{map_index}/{prediction_id}_{n}.{ext}`` under
    ``dest_s3_prefix``. The prediction id is ``prediction_id`` if given, else the XCom ``prediction_id``
    of the upstream WaveSpeed task (same map index), else a short hash of the outputs, so a re-run
    with the same outputs writes the same keys.

    The destination is declared as an Asset outlet (``s3://bucket/prefix``, its fixed part when
    templated) unless ``outlets=`` is given; each run's asset event carries the stored URIs in
    ``extra["uris"]``. When mapped, ``partial(dest_s3_prefix=...)`` declares the same outlet; a prefix
    given only in ``expand()`` is unknown when the DAG is parsed, so pass ``outlets=`` to ``partial()``.
    With no outputs to store, the task is skipped (no asset event).

    :param outputs: output URLs (http/https) or base64 strings; usually ``edit_task.output``. Templated.
    :param dest_s3_prefix: ``s3://bucket[/prefix]`` to store under. Templated.
    :param aws_conn_id: the Amazon connection used to write.
    :param key_template: ``str.format`` template of each key under the prefix; fields dag_id, run_id,
        task_id, map_index, prediction_id, n, ext. Keys cannot leave the prefix. Templated.
    :param replace: overwrite existing objects; when False an existing key fails the task.
    :param max_output_bytes: stop (keeping nothing of it) any output larger than this; by default the cap
        of the output's media, told from its bytes (README, "Video, audio and 3D").
    :param prediction_id: the id to name keys by, when it cannot be found upstream. Templated.
    :param allow_private_output_hosts: fetch outputs from private addresses too (a private deployment);
        by default outputs come only from public hosts and the WaveSpeed connection's own base URL.
    :param wavespeed_conn_id: the WaveSpeed connection whose base URL (and extra) the output-host rules read.
    :param hook_params: the hook's timeouts (``connect_timeout``, ``read_timeout``, ``transfer_timeout``)
        for the downloads.
    """

    template_fields: Sequence[str] = ("outputs", "dest_s3_prefix", "key_template", "prediction_id")
    template_fields_renderers = {"outputs": "json"}
    ui_color = "#f4e8ff"

    def __init__(
        self,
        *,
        outputs: Any,
        dest_s3_prefix: str,
        aws_conn_id: str | None = "aws_default",
        key_template: str | None = None,
        replace: bool = True,
        max_output_bytes: int | None = None,
        prediction_id: str | None = None,
        allow_private_output_hosts: bool = False,
        wavespeed_conn_id: str = "wavespeed_default",
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**with_default_outlet(kwargs, dest_s3_prefix))
        self._set_hook_arguments(wavespeed_conn_id, hook_params, allow_private_output_hosts)
        self.outputs = outputs
        self.dest_s3_prefix = dest_s3_prefix
        self.aws_conn_id = aws_conn_id
        self.key_template = key_template
        self.replace = replace
        self.max_output_bytes = max_output_bytes
        self.prediction_id = prediction_id
        # Remembered before rendering replaces the XComArg with its value: where to look for the id.
        self._source_task_ids = _referenced_task_ids(outputs)
        self._check_arguments(rendered=False)

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:  # type: ignore[override]
        """``partial()`` declares the ``s3://`` destination as the mapped task's outlet, as ``__init__`` does."""
        return super().partial(**with_default_outlet(kwargs, kwargs.get("dest_s3_prefix")))

    def execute(self, context: Context) -> list[str]:
        from airflow_wavespeed.utils.storage import describe, output_names, store_media

        self._check_arguments(rendered=True)
        outputs = check_outputs(self.outputs)
        if not outputs:
            # Skipped, not succeeded: a success would still send downstream DAGs an asset event.
            raise AirflowSkipException("No outputs to store (the upstream task returned none)")
        prediction_id = self.prediction_id or self._upstream_prediction_id(context) or _short_hash(outputs)
        copies = store_media(
            outputs,
            self.dest_s3_prefix,
            download=self.download(),
            names=output_names(context, prediction_id),
            name_template=self.key_template,
            replace=self.replace,
            max_output_bytes=self.max_output_bytes,
            aws_conn_id=self.aws_conn_id,
        )
        stored = [copy.location for copy in copies]
        emit_asset_events(context, self, stored)
        for output, copy in zip(outputs, copies, strict=True):
            self.log.info("Stored %s as %s (%s, %d bytes)", describe(output), copy.location, copy.content_type, copy.bytes)
        from airflow_wavespeed.utils.lineage import report_to_airflow

        self.lineage = ([o for o in outputs if scheme_of(o) in ("http", "https")], stored)
        report_to_airflow(self, inputs=self.lineage[0], outputs=stored)
        return stored

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the output URLs read and the S3 objects written."""
        from airflow_wavespeed.utils.lineage import openlineage_facets

        inputs, outputs = getattr(self, "lineage", ([], []))
        return openlineage_facets(inputs=inputs, outputs=outputs)

    def _upstream_prediction_id(self, context: Context) -> str | None:
        """The ``prediction_id`` XCom of the task the outputs came from, if exactly one task has one."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", None)
        own_index = [map_index] if isinstance(map_index, int) and map_index >= 0 else []
        found: dict[str, str] = {}
        for task_id in self._source_task_ids or tuple(sorted(self.upstream_task_ids)):
            # A mapped copy of a mapped edit pairs up by map index; else the upstream is not mapped.
            for map_indexes in (*own_index, None):
                try:
                    value = ti.xcom_pull(task_ids=task_id, key="prediction_id", map_indexes=map_indexes)
                except Exception as error:  # naming is best effort: a failed lookup must not stop the copy
                    self.log.debug("No prediction_id from %s[%s]: %s", task_id, map_indexes, error)
                    continue
                if isinstance(value, str) and value:
                    found[task_id] = value
                    break
        if len(found) == 1:
            return next(iter(found.values()))
        if found:
            self.log.info(
                "Several upstream tasks have a prediction_id (%s); naming keys by a hash", sorted(found)
            )
        return None

    def _check_arguments(self, *, rendered: bool) -> None:
        """Construction checks literal values; execute checks everything once templates are rendered."""

        def ready(value: Any) -> bool:
            return rendered or not is_templated(value)

        if ready(self.outputs):
            check_outputs(self.outputs)
        if ready(self.dest_s3_prefix):
            check_s3_prefix(self.dest_s3_prefix)
        check_conn_id(self.aws_conn_id, argument="aws_conn_id", allow_none=True)
        if self.key_template is not None and ready(self.key_template):
            check_name_template(self.key_template, argument="key_template")
        check_bool(self.replace, argument="replace")
        if self.max_output_bytes is not None:
            check_positive_int(self.max_output_bytes, argument="max_output_bytes")
        if self.prediction_id is not None and ready(self.prediction_id):
            validate_prediction_id(self.prediction_id)


def _referenced_task_ids(value: Any) -> tuple[str, ...]:
    """Task ids an XComArg (``task.output``, ``task.output["key"]``, …) reads from; () for literals."""
    references = getattr(value, "iter_references", None)
    if not callable(references):
        return ()
    return tuple(dict.fromkeys(operator.task_id for operator, _ in references()))


def _short_hash(outputs: list[str]) -> str:
    """A stable name when no prediction id is known: the same outputs give the same keys."""
    return hashlib.sha256("\n".join(outputs).encode()).hexdigest()[:12]

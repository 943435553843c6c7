"""What a run submits: the inputs as the user gave them, their media found, checked and resolved, and
the catalog check between the two, for :class:`~airflow_wavespeed.operators.run_model.WaveSpeedRunModelOperator`.

Imported when a DAG is parsed (the operator mixes it in), so it imports nothing heavy at module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_wavespeed.catalog.entry import ModelEntry
    from airflow_wavespeed.hooks.wavespeed import WaveSpeedHook
    from airflow_wavespeed.media.inputs import MediaInput


class ModelInputsMixin:
    """``build_inputs`` and the media and catalog steps after it, for an operator with a ``hook``."""

    if TYPE_CHECKING:
        hook: WaveSpeedHook
        model: str
        inputs: dict[str, Any]
        media_inputs: list[str]
        input_mode: str
        check_catalog: bool
        aws_conn_id: str | None
        media: str | None
        media_sources: list[str]

        @property
        def timeout_seconds(self) -> float: ...

    def build_inputs(self, context: Context) -> dict[str, Any]:
        """The inputs to submit as the user gave them, media still paths, ``s3://`` URIs or bytes
        (:meth:`_prepare_inputs` resolves them). Runs once per submit, after validation."""
        return dict(self.inputs)

    def media_fields(self, entry: ModelEntry | None) -> list[str]:
        """The inputs holding media: those named in ``media_inputs``, else those the catalog schema marks."""
        from airflow_wavespeed.catalog.check import named_media

        return named_media(self.media_inputs, entry)

    def find_media(self, inputs: dict[str, Any], entry: ModelEntry | None) -> list[MediaInput]:
        """The media sources of ``inputs``; a subclass may name and restrict them its own way."""
        from airflow_wavespeed.media.inputs import find_media

        return find_media(inputs, self.media_fields(entry))

    def lineage_inputs(self) -> list[str]:
        """The input locations lineage tools should see: the run's media sources."""
        return list(self.media_sources)

    def _prepare_inputs(self, context: Context) -> dict[str, Any]:
        """The inputs to submit: media checked where they are first (no request to WaveSpeed), then the
        catalog check, then the media uploaded or presigned. Nothing billed happens before all of it."""
        from airflow_wavespeed.catalog.check import check_inputs
        from airflow_wavespeed.catalog.entry import media_of_kind
        from airflow_wavespeed.catalog.lookup import model_entry
        from airflow_wavespeed.media.inputs import check_media

        inputs = self.build_inputs(context)
        found = self.find_media(inputs, None)
        plan = check_media(found, aws_conn_id=self.aws_conn_id)
        entry = model_entry(self.hook, self.model) if self.check_catalog else None
        if entry is not None:
            check_inputs(entry, inputs)
            known = {media.where for media in found}
            # Inputs only the schema names as media (plain local paths in them) are checked now.
            later = [media for media in self.find_media(inputs, entry) if media.where not in known]
            plan.add(check_media(later, aws_conn_id=self.aws_conn_id))
        self.media = entry.media if entry is not None else media_of_kind(self.model)
        self.media_sources = [m.source for m in plan.inputs if isinstance(m.source, str)]
        return plan.resolve(
            inputs,
            lambda source, name: self.hook.upload_media(source, filename=name),
            input_mode=self.input_mode,
            presign_seconds=self.timeout_seconds + 3600,
        )

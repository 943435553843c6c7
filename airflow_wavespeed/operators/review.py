"""Human review of WaveSpeed edits before anything is published.

:class:`WaveSpeedReviewOperator` is Airflow's ``ApprovalOperator`` (standard provider, Airflow 3.1+) whose
form shows the edits of an upstream task: every image inline, with the prompt, the quoted cost and the
NSFW flags. Approve and the downstream tasks run (a ``WaveSpeedToS3Operator`` that publishes, say);
reject and they are skipped, so nothing is published. :func:`review_markdown` builds the same body for
DAGs that use ``HITLOperator`` or ``ApprovalOperator`` directly.

The reviewer's browser loads the images itself, so they must be reachable from it: WaveSpeed's output
URLs are; outputs already copied to S3 are shown through presigned URLs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_wavespeed.utils.validation import check_positive, from_json_text, scheme_of

if TYPE_CHECKING:
    from airflow.sdk import Context

#: How much of a prompt the form's headline shows (the body shows it whole).
SUBJECT_PROMPT_CHARS = 80
#: How long presigned links to S3 outputs stay valid for the reviewer (S3 allows at most 7 days).
DEFAULT_PRESIGN_SECONDS = 7 * 24 * 3600


def review_markdown(edits: Iterable[tuple[Mapping[str, Any] | None, Sequence[str]]], *, title: str = "") -> str:
    """The Markdown a reviewer reads: per edit its prompt, cost, NSFW flags and every image inline.

    :param edits: ``(prediction metadata, image URLs)`` per edit: the ``prediction`` XCom of an edit
        task (or None) and URLs the reviewer's browser can load.
    :param title: an optional first line.
    """
    lines = [f"### {title}", ""] if title else []
    for n, (metadata, urls) in enumerate(edits, start=1):
        meta = dict(metadata or {})
        flags = [bool(flag) for flag in meta.get("has_nsfw_contents") or []]
        cost = meta.get("cost_usd")
        rows = [
            ("Prompt", _cell(meta.get("prompt") or "(not recorded)")),
            ("Prediction", f"`{meta.get('id', '?')}` ({meta.get('model', '?')}, {meta.get('status', '?')})"),
            ("Cost", f"{cost:.4f} USD (quoted)" if isinstance(cost, (int, float)) else "not quoted"),
            ("NSFW", ("**flagged**: " + ", ".join(f"image {i + 1}" for i, f in enumerate(flags) if f)) if any(flags) else "none flagged"),
        ]  # fmt: skip
        lines += [f"**Edit {n}**", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), ""]
        lines += [f"![edit {n}, image {i}]({_url(url)})" for i, url in enumerate(urls, start=1)] or ["(no images)"]
        lines.append("")
    return "\n".join(lines).strip() + "\n"


def review_subject(edits: Sequence[tuple[Mapping[str, Any] | None, Sequence[str]]], *, task: str) -> str:
    """The form's headline: what was edited, by its prompt (clipped), or by ``task`` when none was recorded.

    :param edits: as for :func:`review_markdown`.
    :param task: names the edit task when no prompt is known, e.g. ``"dag_id.task_id"``.
    """
    prompts = [" ".join(str(meta.get("prompt") or "").split()) for meta, _ in edits if meta]
    prompts = [prompt for prompt in prompts if prompt]
    if not prompts:
        return f"Review the WaveSpeed edits of {task}"
    first = prompts[0] if len(prompts[0]) <= SUBJECT_PROMPT_CHARS else prompts[0][: SUBJECT_PROMPT_CHARS - 1] + "…"
    if len(edits) == 1:
        return f'Review the WaveSpeed edit "{first}"'
    return f'Review {len(edits)} WaveSpeed edits: "{first}" and {len(edits) - 1} more'


class WaveSpeedReviewOperator(ApprovalOperator):
    """
    Ask a person to approve the edits of an upstream WaveSpeed task; the form shows every image.

    :param edit_task_id: the edit task (mapped or not) whose ``prediction`` XCom and outputs are shown.
    :param outputs_task_id: where the image locations come from when not the edit's ``return_value``,
        e.g. a ``WaveSpeedToS3Operator`` that staged them (``s3://`` outputs are presigned).
    :param aws_conn_id: the Amazon connection that presigns ``s3://`` outputs.
    :param presign_seconds: how long a presigned link stays valid (at most 7 days).
    :param subject: the form's headline; by default it quotes the edit's prompt (clipped), the first of
        several edits, or names the DAG and the edit task when no prompt was recorded.

    Every other argument is ``ApprovalOperator``'s (``response_timeout``, ``assigned_users``, ...).
    """

    def __init__(
        self,
        *,
        edit_task_id: str,
        outputs_task_id: str | None = None,
        aws_conn_id: str | None = "aws_default",
        presign_seconds: float = DEFAULT_PRESIGN_SECONDS,
        subject: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("body", "The edits are shown when this task runs.")
        super().__init__(subject=subject or f"Review the WaveSpeed edits of task {edit_task_id}", **kwargs)
        #: Without a subject of the user's own, the form's names what was edited, once the edits are known.
        self.subject_from_edits = subject is None
        self.edit_task_id = edit_task_id
        self.outputs_task_id = outputs_task_id
        self.aws_conn_id = aws_conn_id
        self.presign_seconds = check_positive(presign_seconds, argument="presign_seconds", maximum=DEFAULT_PRESIGN_SECONDS)

    def execute(self, context: Context) -> Any:
        edits = self.edits(context)
        self.body = self._markdown(edits)
        if self.subject_from_edits:
            self.subject = review_subject(edits, task=f"{self.dag_id}.{self.edit_task_id}")
        return super().execute(context)

    def review_body(self, context: Context) -> str:
        """The form's Markdown: every edit of the upstream task (see :meth:`edits`)."""
        return self._markdown(self.edits(context))

    def _markdown(self, edits: list[tuple[dict[str, Any] | None, list[str]]]) -> str:
        return review_markdown(edits, title=f"{len(edits)} edit(s) from task `{self.edit_task_id}`")

    def edits(self, context: Context) -> list[tuple[dict[str, Any] | None, list[str]]]:
        """``(prediction metadata, browser URLs)`` per edit, read from XCom (every map index of a mapped edit)."""
        ti = context["ti"]
        metadata = _per_map_index(ti.xcom_pull(task_ids=self.edit_task_id, key="prediction"))
        outputs = _per_map_index(ti.xcom_pull(task_ids=self.outputs_task_id or self.edit_task_id))
        edits: list[tuple[dict[str, Any] | None, list[str]]] = []
        for n, meta in enumerate(metadata or [None] * len(outputs)):
            urls = outputs[n] if n < len(outputs) else []
            edits.append((meta, [self._browser_url(url) for url in _as_list(urls)]))
        return edits

    def _browser_url(self, location: str) -> str:
        if scheme_of(location) != "s3":
            return location
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from airflow_wavespeed.utils.validation import parse_s3_uri

        bucket, key = parse_s3_uri(location)
        url: str = S3Hook(aws_conn_id=self.aws_conn_id).get_conn().generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(self.presign_seconds)
        )
        return url


def _per_map_index(value: Any) -> list[Any]:
    """An XCom pull as one entry per edit: a mapped task answers a sequence of per-index values.

    Values an edit left as JSON text (it ended in the triggerer) are read back first."""
    value = from_json_text(value)
    if isinstance(value, (list, tuple)):
        value = [from_json_text(item) for item in value]
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    items = list(value) if not isinstance(value, str) else [value]
    if items and all(isinstance(item, str) for item in items):
        return [items]  # one unmapped edit's list of outputs
    return items


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [item for item in value or [] if isinstance(item, str)]


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (the prompt is the user's own, but may hold pipes)."""
    return " ".join(str(text).split()).replace("|", "\\|")[:2000]


def _url(url: str) -> str:
    """A URL safe inside Markdown's ``(...)``."""
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")

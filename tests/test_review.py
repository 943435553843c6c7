"""Human review before publishing (issue 13): the form's Markdown from an edit's XCom. The approve and
reject paths run on the real Airflow of ``tests/e2e`` (``test_real_airflow.py``)."""

from __future__ import annotations

import json
from typing import Any

from airflow_wavespeed.operators.review import WaveSpeedReviewOperator, review_markdown, review_subject

pytest_plugins = ["tests.s3_fixtures"]

METADATA = {
    "id": "p1",
    "model": "openai/gpt-image-2/edit",
    "status": "completed",
    "has_nsfw_contents": [False, True],
    "cost_usd": 0.06,
    "prompt": "Put the | product on white",
}


class XComStandIn:
    """Answers ``xcom_pull`` as Airflow does for an unmapped or a mapped upstream task."""

    def __init__(self, values: dict[tuple[str, str], Any]) -> None:
        self.values = values

    def xcom_pull(self, task_ids: str, key: str = "return_value", **_: Any) -> Any:
        return self.values.get((task_ids, key))


def test_the_markdown_shows_every_image_with_prompt_cost_and_flags() -> None:
    body = review_markdown([(METADATA, ["https://cdn.example/a.png", "https://cdn.example/b (1).png"])], title="Edits")
    assert body.startswith("### Edits")
    assert "![edit 1, image 1](https://cdn.example/a.png)" in body
    assert "![edit 1, image 2](https://cdn.example/b%20%281%29.png)" in body
    assert "Put the \\| product on white" in body, "a pipe cannot break the table"
    assert "0.0600 USD (quoted)" in body and "**flagged**: image 2" in body
    unquoted = review_markdown([({"id": "p2", "has_nsfw_contents": [False]}, [])])
    assert "not quoted" in unquoted and "none flagged" in unquoted and "(no images)" in unquoted


def test_the_review_operator_reads_an_unmapped_and_a_mapped_edit() -> None:
    review = WaveSpeedReviewOperator(task_id="review", edit_task_id="edit")
    single = XComStandIn({("edit", "prediction"): METADATA, ("edit", "return_value"): ["https://cdn.example/a.png"]})
    body = review.review_body({"ti": single})  # type: ignore[arg-type]
    assert "1 edit(s)" in body and "https://cdn.example/a.png" in body

    second = {**METADATA, "id": "p2", "prompt": "Make it night"}
    mapped = XComStandIn(
        {
            ("edit", "prediction"): [METADATA, second],
            ("edit", "return_value"): [["https://cdn.example/a.png"], ["https://cdn.example/b.png"]],
        }
    )
    body = review.review_body({"ti": mapped})  # type: ignore[arg-type]
    assert "2 edit(s)" in body and "Make it night" in body and body.index("a.png") < body.index("b.png")


def test_the_review_reads_edits_that_ended_in_the_triggerer() -> None:
    """With end_from_trigger, Airflow stores the edit's XComs as JSON text (README, "Ending in the triggerer")."""
    review = WaveSpeedReviewOperator(task_id="review", edit_task_id="edit")
    single = XComStandIn(
        {("edit", "prediction"): json.dumps(METADATA), ("edit", "return_value"): '["https://cdn.example/a.png"]'}
    )
    body = review.review_body({"ti": single})  # type: ignore[arg-type]
    assert "1 edit(s)" in body and "![edit 1, image 1](https://cdn.example/a.png)" in body
    assert "0.0600 USD (quoted)" in body and "**flagged**: image 2" in body

    second = {**METADATA, "id": "p2", "prompt": "Make it night"}
    mapped = XComStandIn(
        {
            ("edit", "prediction"): [json.dumps(METADATA), json.dumps(second)],
            ("edit", "return_value"): ['["https://cdn.example/a.png"]', '["https://cdn.example/b.png"]'],
        }
    )
    body = review.review_body({"ti": mapped})  # type: ignore[arg-type]
    assert "2 edit(s)" in body and "Make it night" in body
    assert "![edit 1, image 1](https://cdn.example/a.png)" in body and "![edit 2, image 1](https://cdn.example/b.png)" in body


def test_outputs_already_in_s3_are_shown_through_presigned_urls(aws_conn: str, s3: Any, bucket: str) -> None:
    import requests

    s3.put_object(Bucket=bucket, Key="staged/p1_0.png", Body=b"\x89PNG\r\n\x1a\n" + b"0" * 32)
    review = WaveSpeedReviewOperator(task_id="review", edit_task_id="edit", outputs_task_id="stage")
    ti = XComStandIn({("edit", "prediction"): METADATA, ("stage", "return_value"): [f"s3://{bucket}/staged/p1_0.png"]})
    body = review.review_body({"ti": ti})  # type: ignore[arg-type]
    (url,) = [line.split("](", 1)[1][:-1] for line in body.splitlines() if line.startswith("![")]
    assert url.startswith("http") and ("X-Amz-Signature=" in url or "Signature=" in url)
    assert requests.get(url.replace("%20", " "), timeout=10).content.startswith(b"\x89PNG"), "the browser can load it"


def test_the_forms_headline_says_what_was_edited() -> None:
    """Issue 24: it read "Review the WaveSpeed edits of edit", the task id."""
    one = [(METADATA, ["https://cdn.example/a.png"])]
    assert review_subject(one, task="d.edit") == 'Review the WaveSpeed edit "Put the | product on white"'
    long_prompt = {**METADATA, "prompt": "Put the product\non a white studio background " + "x" * 200}
    mapped = [(long_prompt, []), ({**METADATA, "prompt": "Make it night"}, []), (None, [])]
    subject = review_subject(mapped, task="d.edit")
    assert subject.startswith('Review 3 WaveSpeed edits: "Put the product on a white studio background x')
    assert subject.endswith('…" and 2 more') and len(subject) < 130, subject
    assert review_subject([({"id": "p1"}, [])], task="wavespeed_review_and_publish.edit") == (
        "Review the WaveSpeed edits of wavespeed_review_and_publish.edit"
    )
    assert WaveSpeedReviewOperator(task_id="r", edit_task_id="edit", subject="Mine").subject_from_edits is False

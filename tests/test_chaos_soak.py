"""The chaos soak (bench/chaos_soak.py) at full size: 300 edits under every fault, nothing lost or doubled."""

from __future__ import annotations

from bench.chaos_soak import run_soak


def test_300_edits_under_faults_lose_nothing_and_bill_nothing_twice() -> None:
    report = run_soak(edits=300, seed=42)
    assert report.unclear_errors == []
    assert report.duplicate_submits == 0 and report.lost_predictions == 0
    assert report.uncertain_without_prediction == 0, "each uncertain edit's prediction is accounted for"
    assert report.ok(), report
    # The faults really happened: throttled submits, 5xx, dropped and malformed answers, failed predictions.
    assert report.submit_posts > report.created_predictions
    assert report.answers.get("429", 0) > 0 and report.answers.get("dropped", 0) > 0
    assert sum(report.answers.get(code, 0) for code in ("500", "502", "503", "504")) > 100
    assert report.failed_naming_prediction.get("WaveSpeedPredictionFailedError", 0) > 0
    assert report.completed >= 0.8 * report.edits

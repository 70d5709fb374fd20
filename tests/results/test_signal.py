"""The demo's signal criteria, computed from aggregated runs: pass, fail, and why."""

from __future__ import annotations

from results.export import report_for
from results.signal import signal_check, signal_markdown
from tests.conftest import make_record, write_record
from tests.results.conftest import classification_record


def _grid(tmp_path, linear: dict[str, list[float]], ap50: dict[str, float]):
    for method, values in linear.items():
        epochs = None if method == "random" else 3
        for seed, value in enumerate(values):
            write_record(tmp_path, f"lin-{method}-{seed}", classification_record(
                method, epochs, seed, task="toy-linear", top1=value))
    for method, value in ap50.items():
        write_record(tmp_path, f"voc-{method}", make_record(method, None if method == "random" else 3, 0,
                                                            task="toy-voc", ap50=value))
    return report_for([tmp_path], baseline="mocov2-3ep")


def test_the_criteria_are_met_when_every_method_clears_random_by_15_with_a_ci_above_0(tmp_path):
    report = _grid(tmp_path, {"random": [20.0, 21.0, 22.0], "mocov2": [40.0, 41.0, 42.0], "synco": [45.0, 44.0, 46.0]},
                   {"random": 5.0, "mocov2": 18.0, "synco": 25.0})
    verdicts = signal_check(report)
    assert [v.passed for v in verdicts] == [True, True, True]
    assert verdicts[0].detail.startswith("Δ +20.0 [") and verdicts[-1].detail == "best synco-3ep 25.00"


def test_a_gap_under_the_margin_a_missing_ci_or_a_weak_detector_fail_and_say_by_how_much(tmp_path):
    report = _grid(tmp_path, {"random": [20.0, 21.0, 22.0], "mocov2": [30.0, 31.0, 32.0], "synco": [50.0]},
                   {"random": 5.0, "mocov2": 18.0})
    by_method = {v.criterion.split(": ")[1].split(" ")[0]: v for v in signal_check(report)[:2]}
    assert not by_method["mocov2-3ep"].passed and by_method["mocov2-3ep"].detail.startswith("Δ +10.0 [")
    synco = by_method["synco-3ep"]  # +29 points, but one seed: no interval, so no claim
    assert not synco.passed and "no CI" in synco.detail
    detection = signal_check(report)[-1]
    assert not detection.passed and detection.detail == "best mocov2-3ep 18.00"
    assert "| not met |" in signal_markdown(signal_check(report))


def test_without_a_random_row_there_is_no_classification_claim(tmp_path):
    report = _grid(tmp_path, {"mocov2": [40.0, 41.0]}, {"mocov2": 30.0})
    verdicts = signal_check(report)
    assert not verdicts[0].passed and "random" in verdicts[0].detail
    assert verdicts[-1].passed

"""Each benchmark runs end to end in a subprocess at a tiny size and writes the rows it promises (the timings
themselves are never asserted: tests are not the place to measure speed)."""
import json

from tests.scripts import run_script

TINY = ("--device", "cpu", "--threads", "1")


def summary_rows(path):
    summary = json.loads(path.read_text())
    assert summary["kind"] == "quick" and summary["hardware"]
    return {row["metric"]: row for row in summary["rows"]}, summary["rows"]


def test_bench_image_times_both_phases(tmp_path):
    path = tmp_path / "image_speed.json"
    result = run_script("bench/bench_image.py", *TINY, "--batch_size", "2", "--repeats", "1", "--summary", str(path))
    _, rows = summary_rows(path)
    methods = {row["method"] for row in rows}
    assert {"elbo warm-up step (baseline)", "cygen jacnorm_x"} <= methods, methods
    assert all(row["ours"] > 0 for row in rows if isinstance(row["ours"], (int, float)))
    assert "ms/image" in result.stdout


def test_bench_cvae_times_an_epoch_and_the_evaluation(tmp_path):
    path = tmp_path / "cvae_speed.json"
    run_script("bench/bench_cvae.py", *TINY, "--steps", "1", "--eval_images", "2", "--summary", str(path))
    by_metric, _ = summary_rows(path)
    assert by_metric["s per training epoch (50k images)"]["ours"] > 0
    assert by_metric["s per 10k-image CLL evaluation (S = 100)"]["ours"] > 0


def test_bench_fid_reads_cached_statistics():
    result = run_script("bench/bench_fid.py", *TINY, "--dims", "64", "--n_images", "4", "--batch_size", "2")
    assert "images/s" in result.stdout and "cached" in result.stdout

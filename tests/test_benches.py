"""Each benchmark runs end to end in a subprocess at a tiny size and writes the rows it promises (the timings
themselves are never asserted: tests are not the place to measure speed)."""
import json

from tests.scripts import assert_speed_rows, run_script

TINY = ("--device", "cpu", "--threads", "1")


def summary_rows(path):
    summary = json.loads(path.read_text())
    assert summary["kind"] == "quick" and summary["hardware"]
    return {row["metric"]: row for row in summary["rows"]}, summary["rows"]


def test_bench_image_times_both_phases(tmp_path):
    path = tmp_path / "image_speed.json"
    result = run_script("bench/bench_image.py", *TINY, "--batch_size", "2", "--repeats", "1", "--breakdown",
                        "--summary", str(path))
    by_metric, rows = summary_rows(path)
    methods = {row["method"] for row in rows}
    assert {"elbo warm-up step (baseline)", "cygen jacnorm_x", "cygen part: encoder body + heads with x-tangent",
            "cygen part: decoder p-term, double backward", "cygen part: decoder fit term",
            "cygen parts: the three network passes together"} <= methods, methods
    assert by_metric["speed-up per image over the official code (spec)"]["paper"] == "5x (target)"
    assert_speed_rows(rows, ["elbo warm-up step (baseline)", "cygen jacnorm_x"])
    assert by_metric["estimated hours of Table 7's training steps (100 ELBO + 10 CyGen epochs)"]["ours"] > 0
    assert "ms/image" in result.stdout and "kernels" in result.stdout


# The interface bench_image.py uses from the official code's checkout, with a one-layer model behind it.
STUB_OFFICIAL_MODEL = """
import torch


class HouseholderSylvesterVAE(torch.nn.Module):
    def __init__(self, args):
        super().__init__()
        self.encoder = torch.nn.Linear(784, args.dim_z)

    def eval_logp(self, x, z):
        return -z.pow(2).sum(-1)

    def draw_q0(self, x, n_mc):
        return torch.randn(n_mc, x.shape[0], self.encoder.out_features)

    def eval_z1eps_logqt(self, x, eps, eval_jac=False):
        z = self.encoder(x.flatten(1)) + eps
        return z, -eps.pow(2).sum(-1)

    def eval_z1eps(self, x, eps):
        return self.eval_z1eps_logqt(x, eps)[0]
"""
STUB_OFFICIAL_METHOD = """
class CyGen_FlowqNoInv:
    def __init__(self, cmtype, pxtype, eval_logp, draw_q0, eval_z1eps_logqt, eval_z1eps, w_cm, w_px, n_mc_cm, n_mc_px):
        self.eval_logp, self.draw_q0, self.eval_z1eps_logqt = eval_logp, draw_q0, eval_z1eps_logqt

    def getlosses(self, x):
        z, log_q = self.eval_z1eps_logqt(x, self.draw_q0(x, 1)[0])
        return (log_q - self.eval_logp(x, z)).mean(),
"""


def test_bench_image_times_the_official_code_in_the_same_run(tmp_path):
    checkout = tmp_path / "cygen"
    for package, module, text in [("arch", "VAE", STUB_OFFICIAL_MODEL), ("methods", "cygen", STUB_OFFICIAL_METHOD)]:
        (checkout / package).mkdir(parents=True)
        (checkout / package / "__init__.py").write_text("")
        (checkout / package / f"{module}.py").write_text(text)
    path = tmp_path / "image_speed.json"
    run_script("bench/bench_image.py", *TINY, "--batch_size", "2", "--repeats", "1", "--official_code", str(checkout),
               "--summary", str(path))
    by_metric, rows = summary_rows(path)
    assert by_metric["speed-up per image over the official code, same run"]["paper"] == "5x (target)"
    official = [row for row in rows if row["method"] == "official code, cygen jacnorm_x"]
    assert {row["metric"] for row in official} == {"ms per image", "images per s", "kernels per step",
                                                   "host syncs per step", "peak memory (MB)"}
    assert all("batch 32" in row["scale"] for row in official)
    assert_speed_rows(official, ["official code, cygen jacnorm_x"])
    assert "speed-up per image over the official code (spec)" not in by_metric

    wrong = run_script("bench/bench_image.py", *TINY, "--official_code", str(tmp_path), check=False)
    assert wrong.returncode != 0 and "no methods/cygen.py" in wrong.stderr


def test_bench_cvae_times_an_epoch_and_the_evaluation(tmp_path):
    path = tmp_path / "cvae_speed.json"
    run_script("bench/bench_cvae.py", *TINY, "--steps", "1", "--eval_images", "2", "--summary", str(path))
    by_metric, rows = summary_rows(path)
    assert {"s per training epoch (50k images)", "s per 10k-image CLL evaluation (S = 100)", "images per s (training)",
            "estimated hours of a 101-epoch run with its evaluation"} <= set(by_metric)
    assert_speed_rows(rows, ["CVAE"])


def test_bench_fid_reads_cached_statistics(tmp_path):
    path = tmp_path / "fid_speed.json"
    result = run_script("bench/bench_fid.py", *TINY, "--dims", "64", "--n_images", "4", "--batch_size", "2",
                        "--summary", str(path))
    assert "images/s" in result.stdout and "cached" in result.stdout
    by_metric, rows = summary_rows(path)
    assert {"images per s", "estimated s for 10000 samples", "ms to read cached reference statistics"} <= set(by_metric)
    assert_speed_rows(rows, ["FID Inception, 64-d features"])


def test_dispatch_counter_sees_kernels_views_and_syncs():
    import torch
    from bench.counting import count_dispatches
    x = torch.randn(4, 3, requires_grad=True)

    def step():
        loss = (x.t() * 2).sum()  # t: a view; mul, sum and the backward's ops: kernels
        loss.backward()

    quiet = count_dispatches(step, calls=2)
    assert quiet.syncs == 0 and quiet.no_launch >= 2 and quiet.kernels >= 4
    assert quiet.per_call(2)["kernels"] == quiet.kernels / 2
    loud = count_dispatches(lambda: (step(), x.sum().item(), bool(torch.isfinite(x).all()), x.nonzero()))
    assert loud.syncs == 3, loud.by_op


def test_optimizer_step_counters_are_no_sync():
    import torch
    from bench.counting import count_dispatches
    weight = torch.nn.Parameter(torch.randn(3))
    optimizer = torch.optim.Adam([weight], foreach=False)  # the single-tensor loop reads its step counter

    def step():
        optimizer.zero_grad(set_to_none=True)
        weight.square().sum().backward()
        optimizer.step()

    step()
    assert count_dispatches(step).syncs > 0  # without the optimizer the counter read looks like a sync
    assert count_dispatches(step, optimizers=[optimizer]).syncs == 0

"""The GPU path, checked on the CPU: device strings, CUDA state only in CUDA runs, the --precision flag (bf16 against
fp32 within stated tolerances), and the throughput knobs (chunked sample files, FID transfers, foreach optimizers)."""
import argparse
import json
import subprocess
import sys

import pytest
import torch

import compute_gen_fid
import generate
import main_cvae
import main_image
import main_lagvae
import main_sym
import main_toy
from bench import bench_cvae, bench_fid, bench_image, bench_lagvae, bench_sym, bench_toy
from evaluation import fid
from evaluation import lagvae as lagvae_evaluation
from models.binary_hvae import build_model
from models.cvae import CVAE, BaselineNet
from models.lagvae import BernoulliMLPDecoder, GaussianMLPEncoder
from objectives.cvae import QuadrantTask, negative_elbo
from objectives.lagvae import consistency_terms
from objectives.symvae import decoder_step_loss, elbo_loss, encoder_step_loss
from tests.scripts import REPO
from training import RunFolder, apply_precision, capture_rng_state, resolve_device, restore_rng_state
from training.cli import device_name

# Every command line with a --device and a --precision: (parse function, the arguments it needs besides those).
PARSERS = {
    "main_toy.py": (main_toy.parse_args, []),
    "main_image.py": (main_image.parse_args, []),
    "main_sym.py": (lambda argv: main_sym.parse_args("symmetric", "", argv), []),
    "main_cvae.py": (main_cvae.parse_args, []),
    "main_lagvae.py": (main_lagvae.parse_args, []),
    "generate.py": (generate.parse_args, ["--run_dir", "r"]),
    "compute_gen_fid.py": (compute_gen_fid.parse_args, ["samples.pt"]),
    **{f"bench/{module.__name__.split('.')[-1]}.py": (module.main, []) for module in
       (bench_toy, bench_image, bench_sym, bench_cvae, bench_lagvae, bench_fid)},
}
BF16_REFUSED = ("main_toy.py", "main_image.py", "generate.py", "compute_gen_fid.py", "bench/bench_toy.py",
                "bench/bench_image.py", "bench/bench_fid.py")


def parse_error(parse, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# ---- devices ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("script", PARSERS)
def test_every_script_takes_device_strings_and_documents_precision(script, capsys):
    parse, needed = PARSERS[script]
    with pytest.raises(SystemExit) as exit_info:
        parse([*needed, "--help"])
    help_text = capsys.readouterr().out
    assert exit_info.value.code == 0 and "cuda:N" in help_text and "--precision" in help_text
    message = parse_error(parse, [*needed, "--device", "gpu"], capsys)
    assert "'gpu' is not a device; use auto, cpu, cuda or cuda:N" in message
    message = parse_error(parse, [*needed, "--precision", "fp16"], capsys)
    assert "'fp16' is not one of fp32, tf32, bf16" in message
    if script in BF16_REFUSED:
        assert "bf16 is refused here" in parse_error(parse, [*needed, "--precision", "bf16"], capsys)


def test_device_names():
    for good in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert device_name(good) == good
    for bad in ("gpu", "cuda:", "cuda:x", "cpu:0", "CUDA"):
        with pytest.raises(argparse.ArgumentTypeError):
            device_name(bad)


def pretend_gpus(monkeypatch, count):
    selected = []

    def set_device(device):  # as torch's: a device without an index is a ValueError
        if torch.device(device).index is None:
            raise ValueError(f"Expected a torch.device with a specified index or an integer, but got:{device}")
        selected.append(device)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: f"GPU {torch.device(device).index}")
    return selected


def test_resolve_device_checks_the_gpu_index(monkeypatch):
    selected = pretend_gpus(monkeypatch, 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1") and selected == [torch.device("cuda:1")]
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(SystemExit, match="--device cuda:2 was requested but this machine has 2 GPU.*cuda:0 to cuda:1"):
        resolve_device("cuda:2")
    with pytest.raises(SystemExit, match="'tpu' is not a device"):
        resolve_device("tpu")
    pretend_gpus(monkeypatch, 0)
    with pytest.raises(SystemExit, match="--device cuda:1 was requested but no GPU is usable.*--device cpu"):
        resolve_device("cuda:1")


def test_config_names_the_gpu_of_cuda_n(monkeypatch, tmp_path):
    pretend_gpus(monkeypatch, 2)
    RunFolder(tmp_path, {"device": "cuda:1"})
    assert json.loads((tmp_path / "config.json").read_text())["hardware"] == "GPU 1"


def test_cpu_runs_leave_cuda_rng_alone_and_cuda_runs_keep_their_gpus(monkeypatch):
    def untouchable(*args):
        raise AssertionError("a CPU run touched CUDA")
    monkeypatch.setattr(torch.cuda, "get_rng_state", untouchable)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", untouchable)
    monkeypatch.setattr(torch.cuda, "set_rng_state", untouchable)
    state = capture_rng_state("cpu")
    assert state["cuda"] == []
    restore_rng_state(state, "cpu")

    saved, restored = torch.tensor([1, 2], dtype=torch.uint8), []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: saved if device == torch.device("cuda:1") else None)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda value, device: restored.append((value, device)))
    state = capture_rng_state("cuda:1")
    assert state["cuda"] == [saved]
    restore_rng_state(state, "cuda:0")  # resumed on another GPU: the same draws there
    assert restored == [(saved, torch.device("cuda:0"))]


def test_run_scripts_read_the_device_from_any_spelling():
    script = 'source run_common.sh; for args in "" "--x 1" "--device cuda:1 --y" "--device=cuda" ' \
             '"--device cpu --device=cuda:2" "--device auto"; do device_flag $args; done'
    result = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["auto", "auto", "cuda:1", "cuda", "cuda:2", "auto"]
    summarize_step = (REPO / "run_common.sh").read_text().split("summarize_and_render() {")[1].split("\n}")[0]
    # every run script's summary step passes the runs' device (launch.py gives it to evaluation.summarize's --device)
    assert "--summary_device \"$(device_flag" in summarize_step


LAGVAE_TINY = ["--width", "16", "--z_dim", "4", "--n_train", "200", "--batch_size", "50", "--epochs", "1",
               "--eval_every", "4", "--n_eval", "50", "--eval_batch_size", "50", "--iwae_k", "2", "--lr", "1e-3",
               "--device", "cpu", "--method", "infovae", "--mi", "0", "--e1", "1", "--e2", "0"]


def test_bf16_run_records_its_precision_and_the_sweep_summary_takes_device_auto(tmp_path):
    """The crash of evaluation/lagvae.py (torch.device('auto')) after `sweep_lagvae.sh --device auto`."""
    main_lagvae.main([*LAGVAE_TINY, "--precision", "bf16", "--run_dir", str(tmp_path / "sweep" / "vae")])
    config = json.loads((tmp_path / "sweep" / "vae" / "config.json").read_text())
    assert config["flags"]["precision"] == "bf16"
    rows = lagvae_evaluation.summarize(tmp_path / "sweep", kind="quick", device="auto", results=tmp_path / "results",
                                       n_z_samples=1).rows
    assert rows and all(row["ours"] == row["ours"] for row in rows if isinstance(row["ours"], float))


# ---- precision ----------------------------------------------------------------------------------------------

def test_apply_precision_writes_every_setting():
    try:
        assert apply_precision("tf32", "cpu", cudnn_benchmark=True) is not None
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.benchmark
        with apply_precision("fp32", "cpu")():
            assert not torch.is_autocast_enabled("cpu")
        # cuDNN's own default is TF32: fp32 must switch it off, not leave it
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert not torch.backends.cudnn.benchmark and torch.get_float32_matmul_precision() == "highest"
        with apply_precision("bf16", "cpu")():
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    finally:
        apply_precision("fp32", "cpu")


def symmetric_case(arch, encoder, step):
    model = build_model("mnist", encoder, arch, 30, 100, conditional_width=64, encoder_width=64, conv_channels=8,
                        mlp_width=64)
    x = torch.bernoulli(torch.full((64, 1, 28, 28), 0.15))
    losses = {"decoder step": lambda: decoder_step_loss(model, x), "encoder step": lambda: encoder_step_loss(model, 64),
              "elbo": lambda: elbo_loss(model, x)}
    return losses[step], list(model.parameters())


def lagvae_case():
    encoder, decoder = GaussianMLPEncoder(16, 64), BernoulliMLPDecoder(16, 64)
    x = torch.bernoulli(torch.full((50, 1, 28, 28), 0.2))

    def loss():
        terms = consistency_terms(encoder, decoder, x)
        return terms["nll"] + terms["kl"] + terms["mmd"], terms
    return loss, [*encoder.parameters(), *decoder.parameters()]


def cvae_case():
    task, cvae, baseline = QuadrantTask(1), CVAE(8, 64, 64), BaselineNet(64, 64).requires_grad_(False)
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)

    def loss():
        total, reconstruction, kl = negative_elbo(cvae, baseline, task, *task.split(images))
        return total.mean(), {"reconstruction": reconstruction.mean(), "kl": kl.mean()}
    return loss, list(cvae.parameters())


BF16_CASES = {**{f"symmetric HVAE {arch} {encoder} {step}": (lambda a=arch, e=encoder, s=step: symmetric_case(a, e, s))
                 for arch in ("conv", "mlp") for encoder in ("ladder", "reverse")
                 for step in ("decoder step", "encoder step", "elbo")},
              "LagVAE": lagvae_case, "CVAE": cvae_case}
# Measured on the CPU: loss within 4e-4 (relative), gradients within 5.2% (relative L2 norm; the binary latents are
# drawn from bfloat16 probabilities, so a few bits differ from the fp32 draw).
BF16_LOSS_TOLERANCE, BF16_GRADIENT_TOLERANCE = 2e-3, 0.1


@pytest.mark.parametrize("case", BF16_CASES)
def test_bf16_autocast_matches_fp32(case):
    results = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        loss_fn, parameters = BF16_CASES[case]()
        torch.manual_seed(1)
        with apply_precision(precision, "cpu")():
            loss, terms = loss_fn()
        loss.backward()
        gradient = torch.cat([p.grad.flatten() for p in parameters if p.grad is not None])
        results[precision] = (loss.detach(), gradient, terms)
    apply_precision("fp32", "cpu")
    (loss32, gradient32, _), (loss16, gradient16, terms16) = results["fp32"], results["bf16"]
    assert torch.isclose(loss16, loss32, rtol=BF16_LOSS_TOLERANCE, atol=0)
    assert (gradient16 - gradient32).norm() <= BF16_GRADIENT_TOLERANCE * gradient32.norm()
    # logged terms stay float32: a bfloat16 moving average at rate 1e-3 would never move
    assert all(value.dtype == torch.float32 for value in terms16.values()), terms16


# ---- throughput knobs ---------------------------------------------------------------------------------------

def test_generate_draws_sample_files_in_batches(monkeypatch):
    sizes = []

    def fake_samples(model, n, mode, chain_steps):
        sizes.append(n)
        return torch.rand(n, 1, 28, 28)
    monkeypatch.setattr(generate, "samples", fake_samples)
    torch.manual_seed(0)
    batched = generate.batched_samples(None, 7, "limiting", 3, batch_size=3)
    assert sizes == [3, 3, 1] and batched.shape == (7, 1, 28, 28) and batched.dtype == torch.uint8
    torch.manual_seed(0)
    assert torch.equal(generate.batched_samples(None, 7, "limiting", 3, batch_size=100), batched)  # one stream


def test_fid_batches_reach_the_device_in_large_transfers():
    images = torch.arange(11 * 3, dtype=torch.uint8).reshape(11, 1, 1, 3)
    batches = list(fid.device_batches(images, batch_size=3, device="cpu", transfer_size=5))
    assert [len(batch) for batch in batches] == [3, 2, 3, 2, 1] and torch.equal(torch.cat(batches), images)


@pytest.mark.parametrize("optimizer", [torch.optim.Adam, torch.optim.Adamax])
def test_foreach_optimizers_are_the_same_math(optimizer):
    parameters = {}
    for foreach in (False, True):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
        opt = optimizer(net.parameters(), lr=1e-2, foreach=foreach)
        for _ in range(5):
            opt.zero_grad()
            net(torch.randn(8, 6)).square().mean().backward()
            opt.step()
        parameters[foreach] = [p.detach() for p in net.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(parameters[False], parameters[True]))


# ---- bench/gpu_check.sh -------------------------------------------------------------------------------------

def test_gpu_check_dry_run_runs_every_part_on_the_cpu(tmp_path):
    summary_path = tmp_path / "gpu_check.json"
    before = (REPO / "results" / "gpu_check.json").read_bytes()
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--dry-run", "--out", str(summary_path), "--work_dir",
                             str(tmp_path / "work")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (REPO / "results" / "gpu_check.json").read_bytes() == before, "a dry run never writes results/"
    summary = json.loads(summary_path.read_text())
    assert summary["kind"] == "quick" and summary["hardware"].startswith("CPU")
    parts = json.loads((tmp_path / "gpu_check_parts.json").read_text())
    assert all(part["outcome"].startswith("ok") for part in parts), parts
    rows = {(row["method"], row["metric"]): row["ours"] for row in summary["rows"]}
    smoked = {method.split(": ", 1)[1].split()[0] for method, metric in rows if method.startswith("smoke: ")}
    assert smoked == {path.name for path in REPO.glob("*.py") if path.name.startswith(("main_", "generate",
                                                                                      "compute_gen_fid"))}
    # the same noise on both sides: fp32 against float64 is round-off, not a different draw
    for device in ("CPU", "cpu"):
        for quantity in ("loss", "compatibility term", "gradient of the loss"):
            assert 0 <= rows[(f"CyGen image step, {device} fp32",
                              f"relative error of the {quantity} vs CPU float64")] < 1e-4
    assert rows[("Table 7 MNIST CyGen(PT) (main_image.py)",
                 "estimated hours of the training epochs (100 warm-up + 10 CyGen)")] > 0
    assert rows[("symmetric HVAE, 200k iterations (main_sym.py)", "estimated hours")] > 0
    for bench in ("bench_toy", "bench_image", "bench_sym", "bench_cvae", "bench_lagvae", "bench_fid",
                  "bench_sym --precision bf16"):
        assert any(method.startswith(f"{bench}: ") and metric == "kernels per step" for method, metric in rows), bench


def test_gpu_check_refuses_a_machine_without_gpu(monkeypatch):
    from bench import gpu_check
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no usable GPU.*--dry-run"):
        gpu_check.main([])


def test_results_hold_gpu_rows_only_from_a_gpu(tmp_path):
    """results/gpu_check.json is a GPU run's, or every row says it waits for one: never a CPU estimate."""
    from bench import gpu_check
    summary = json.loads((REPO / "results" / "gpu_check.json").read_text())
    assert summary["kind"] == "full"
    if summary["hardware"].startswith(("CPU", "none")):
        assert {row["ours"] for row in summary["rows"]} == {gpu_check.NOT_RUN}
        gpu_check.main(["--pending", "--out", str(tmp_path / "pending.json")])
        assert json.loads((tmp_path / "pending.json").read_text())["rows"] == summary["rows"]


def test_carried_wheels_are_unpacked_only_for_missing_packages(tmp_path):
    import zipfile
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for name, package in (("present-1.0-py3-none-any.whl", "json"), ("absent-1.0-py3-none-any.whl", "absent_pkg_x")):
        with zipfile.ZipFile(wheels / name, "w") as wheel:
            wheel.writestr(f"{package}/__init__.py", "CARRIED = True\n")
            wheel.writestr(f"{package}-1.0.dist-info/METADATA", "Name: x\n")
    result = subprocess.run([sys.executable, "bench/carried_wheels.py", str(wheels), str(tmp_path / "site")], cwd=REPO,
                            capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str(tmp_path / "site")
    assert (tmp_path / "site" / "absent_pkg_x" / "__init__.py").exists()
    assert not (tmp_path / "site" / "json").exists(), "a package the machine has must not be shadowed"

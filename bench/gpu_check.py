"""The device check behind bench/gpu_check.sh: one process, every part in turn, each part's failure recorded and
the next one run.

  (a) smoke: every script end to end at tiny sizes on the device (in this process: CUDA starts once)
  (b) numerics: one CyGen image loss, its compatibility term and its gradient on the CPU and on the device, in fp32
      and tf32, each against the CPU in float64, with the same noise (drawn on the CPU)
  (c) protocol chunks: a short chunk of the Table 7 MNIST CyGen(PT) run (main_image.py) and of the README's
      200k-iteration symmetric run (main_sym.py), extrapolated from the script's own metrics.csv
  (d) every bench on the device, then variants (precision, compiled flow) while the time budget lasts

    python -m bench.gpu_check [--dry-run] [--budget_s 420]   # via bash bench/gpu_check.sh
    python -m bench.gpu_check --pending                      # results/gpu_check.json before any GPU run
    python -m bench.gpu_check --prepare_data .gpu_carry/datasets   # MNIST as idx files for the GPU machine

Without --dry-run it needs CUDA and writes results/gpu_check.json (kind full, the GPU's name as hardware). --dry-run
runs the same parts on the CPU at tiny sizes and writes runs/gpu_check_dry/gpu_check.json, never results/: a CPU
figure is not a GPU measurement. A part whose dependency is missing on the machine is reported as skipped, with it.
"""
import argparse
import contextlib
import copy
import csv
import gzip
import importlib
import json
import os
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path
from unittest import mock

import torch

REPO = Path(__file__).resolve().parent.parent
CARRIED_DATA = REPO / ".gpu_carry" / "datasets"
NOT_RUN = "not yet run on a GPU"
PENDING_ROWS = [  # what a GPU run writes, one row per part (bench rows come per bench)
    ("smoke tests", "every script", "status with --device cuda"),
    ("CyGen image step, CUDA fp32", "mnist", "relative error vs CPU float64 (loss, compatibility, gradient)"),
    ("CyGen image step, CUDA tf32", "mnist", "relative error vs CPU float64 (loss, compatibility, gradient)"),
    ("Table 7 MNIST CyGen(PT) (main_image.py)", "mnist", "estimated hours of the training epochs"),
    ("symmetric HVAE, 200k iterations (main_sym.py)", "mnist", "estimated hours"),
    *((f"bench/{name}.py", "-", "step time, kernels, host syncs, peak memory, images/s, protocol hours")
      for name in ("bench_toy", "bench_image", "bench_sym", "bench_cvae", "bench_lagvae", "bench_fid")),
]


class Check:
    """The rows and the part log of one check; every part runs under part(), which records its outcome."""

    def __init__(self, device, dry_run, budget_s, work_dir, data_root):
        self.device, self.dry_run, self.budget_s = device, dry_run, budget_s
        self.work_dir, self.data_root = work_dir, data_root
        self.start = time.perf_counter()
        self.rows, self.parts = [], []

    def elapsed(self):
        return time.perf_counter() - self.start

    def row(self, method, dataset, metric, ours, scale):
        self.rows.append(dict(method=method, dataset=dataset, metric=metric, ours=ours, paper=None, scale=scale))

    def part(self, name, function):
        """Run function(); its outcome (ok, failed with the error, skipped for a missing module or the time budget)
        is returned and logged."""
        if self.elapsed() > self.budget_s:
            outcome = f"skipped: the {self.budget_s:.0f} s budget was spent"
        else:
            started = time.perf_counter()
            try:
                function()
                outcome = f"ok ({time.perf_counter() - started:.1f} s)"
            except ModuleNotFoundError as error:
                outcome = f"skipped: module {error.name} is not installed here"
            except BaseException as error:  # SystemExit of argparse / resolve_device included: record, go on
                if isinstance(error, KeyboardInterrupt):
                    raise
                message = str(error).strip().splitlines()
                outcome = f"failed: {type(error).__name__}: {message[-1] if message else ''}"[:300]
                traceback.print_exc()
        print(f"[gpu_check {self.elapsed():6.1f} s] {name}: {outcome}", flush=True)
        self.parts.append({"part": name, "outcome": outcome})
        return outcome


def script_main(module_name):
    """main(argv) of a script, imported only when its part runs (a missing dependency then skips that part)."""
    def run(argv):
        if module_name in ("main_sym", "main_elbo"):
            main_sym = importlib.import_module("main_sym")
            update = main_sym.SymmetricUpdate if module_name == "main_sym" else \
                importlib.import_module("main_elbo").ElboUpdate
            return main_sym.train("symmetric" if module_name == "main_sym" else "elbo", update, "", argv)
        return importlib.import_module(module_name).main(argv)
    return run


# ---- (a) smoke tests ----------------------------------------------------------------------------------------

def smoke_cases(check):
    device, data, work = ["--device", str(check.device)], ["--data_root", str(check.data_root)], check.work_dir
    toy = ["--niters", "4", "--eval_every", "2", "--plot_every", "4", "--batch_size", "32", "--n_flows", "2",
           "--n_mc_px", "2", "--eval_batch_size", "64", "--gen_batch_size", "64", "--gen_niter", "2"]
    image = ["--dataset", "mnist", "--n_train", "40", "--n_test", "20", "--batch_size", "20", "--compat_rows", "4",
             "--valid_size", "20", "--n_trials", "2", "--downstream_epochs", "1", "--downstream_draws", "2",
             "--gen_batch_size", "4", "--gen_niter", "2", "--gibbs_steps", "1", "--z_dim", "8", "--warm_up", "1",
             "--epochs", "1"]
    sym = ["--mlp_width", "32", "--conditional_width", "32", "--conv_channels", "8", "--encoder_width", "32",
           "--nz0", "6", "--nz1", "10", "--batch_size", "16", "--niters", "4", "--log_every", "2",
           "--checkpoint_every", "2", "--image_every", "4", "--display_chain_steps", "2", "--stats_batch_size", "16"]
    cvae = ["--n_train", "256", "--n_valid", "256", "--n_test", "64", "--hidden_1", "32", "--hidden_2", "32",
            "--z_dim", "4", "--batch_size", "64", "--n_samples", "5", "--n_figure_digits", "3", "--epochs", "1",
            "--model", "cvae", "--quadrants", "1"]
    lagvae = ["--width", "32", "--z_dim", "8", "--n_train", "500", "--batch_size", "50", "--epochs", "1",
              "--eval_every", "5", "--n_eval", "100", "--eval_batch_size", "50", "--iwae_k", "4", "--lr", "1e-3",
              "--method", "lagvae", "--mi", "1", "--e1", "400", "--e2", "5", "--lambda_lr", "0.01"]
    fid_metric = ["--dims", "64"] if inception_weights_present() else ["--metric", "domain"]
    return [
        ("main_toy.py cygen", "main_toy", [*toy, "--method", "cygen"]),
        ("main_toy.py elbo, tf32", "main_toy", [*toy, "--method", "elbo", "--precision", "tf32"]),
        ("main_image.py cygen(PT)", "main_image", [*image, *data, "--method", "cygen", "--save_samples", "6"]),
        ("main_image.py dae, tf32", "main_image", [*image, *data, "--method", "dae", "--precision", "tf32"]),
        ("main_sym.py conv", "main_sym", [*sym, *data, "--arch", "conv"]),
        ("main_sym.py mlp, bf16", "main_sym", [*sym, *data, "--arch", "mlp", "--precision", "bf16"]),
        ("main_elbo.py conv, bf16", "main_elbo", [*sym, *data, "--arch", "conv", "--precision", "bf16"]),
        ("generate.py", "generate", ["--run_dir", str(work / "main_sym.py conv"), "--chain_steps", "3",
                                     "--n_grid", "10", "--save_samples", "12", "--sample_batch_size", "5"]),
        ("main_cvae.py (trains its baseline)", "main_cvae", [*cvae, *data]),
        ("main_cvae.py bf16", "main_cvae", [*cvae, *data, "--precision", "bf16"]),
        ("main_lagvae.py", "main_lagvae", [*lagvae, *data]),
        ("main_lagvae.py bf16", "main_lagvae", [*lagvae, *data, "--precision", "bf16"]),
        ("compute_gen_fid.py", "compute_gen_fid", [str(work / "main_image.py cygen(PT)"), "--dataset", "mnist",
                                                   *fid_metric,
                                                   "--n_samples", "6", "--split", "test", "--batch_size", "3",
                                                   "--cache_dir", str(work / "cache"), *data]),
    ], device


def inception_weights_present():
    try:
        from evaluation.fid import inception_weights_path
    except ModuleNotFoundError:
        return False
    return inception_weights_path().is_file()


def run_smoke_tests(check):
    cases, device = smoke_cases(check)
    outcomes = {}
    for name, module, argv in cases:
        run_dir = [] if module in ("generate", "compute_gen_fid") else ["--run_dir", str(check.work_dir / name)]
        outcomes[name] = check.part(f"smoke {name}", lambda: script_main(module)([*argv, *run_dir, *device]))
    for name, outcome in outcomes.items():
        check.row(f"smoke: {name}", "tiny", f"status with --device {check.device}", outcome, "tiny sizes")


# ---- (b) numerics -------------------------------------------------------------------------------------------

@contextlib.contextmanager
def noise_from_the_cpu(seed):
    """torch.randn / randn_like draw float32 from one seeded CPU generator and move the draw to the requested device
    and dtype, so that the CPU (float32 and float64) and the device see the same noise."""
    generator, randn = torch.Generator().manual_seed(seed), torch.randn

    def cpu_randn(*size, device=None, dtype=None, **_):
        size = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
        return randn(*size, generator=generator).to(device or "cpu", dtype or torch.float32)

    def cpu_randn_like(tensor, **_):
        return cpu_randn(tensor.shape, device=tensor.device, dtype=tensor.dtype)
    with mock.patch.object(torch, "randn", cpu_randn), mock.patch.object(torch, "randn_like", cpu_randn_like):
        yield


def cygen_loss_and_gradient(encoder, decoder, x, precision, device, dtype):
    from objectives.cygen import cygen_loss
    from training import apply_precision
    encoder, decoder = copy.deepcopy(encoder).to(device, dtype), copy.deepcopy(decoder).to(device, dtype)
    apply_precision(precision, device)
    with noise_from_the_cpu(0):
        loss, _, compatibility = cygen_loss(encoder, decoder, x.to(device, dtype), 1, "jacnorm_x", 1e-3)
    loss.backward()
    gradient = torch.cat([p.grad.flatten() for p in [*encoder.parameters(), *decoder.parameters()]
                          if p.grad is not None])
    apply_precision("fp32", device)
    return [value.detach().double().cpu() for value in (loss, compatibility, gradient)]


def compare_numerics(check):
    from data.images import load_image_dataset, to_float
    from models.image import image_decoder, image_encoder
    batch = 4 if check.dry_run else 32
    x = to_float(load_image_dataset("mnist", str(check.data_root), n_valid=0).test_x[:batch])
    torch.manual_seed(0)
    encoder, decoder = image_encoder((1, 28, 28)), image_decoder((1, 28, 28))
    reference = cygen_loss_and_gradient(encoder, decoder, x, "fp32", "cpu", torch.float64)
    cases = [("CPU fp32", "fp32", "cpu"), (f"{check.device} fp32", "fp32", check.device),
             (f"{check.device} tf32", "tf32", check.device)]
    for name, precision, device in cases:
        values = cygen_loss_and_gradient(encoder, decoder, x, precision, device, torch.float32)
        errors = [((value - truth).norm() / truth.norm()).item() for value, truth in zip(values, reference)]
        for quantity, error in zip(("loss", "compatibility term", "gradient of the loss"), errors):
            check.row(f"CyGen image step, {name}", "mnist", f"relative error of the {quantity} vs CPU float64",
                      float(f"{error:.3g}"), f"batch {batch}, d_z 64, jacnorm_x, same noise")


# ---- (c) protocol chunks ------------------------------------------------------------------------------------

def elapsed_by_step(run_dir):
    with open(Path(run_dir) / "metrics.csv") as file:
        return {int(row["step"]): float(row["elapsed_s"]) for row in csv.DictReader(file)}


def table7_chunk(check):
    """Two warm-up epochs and two CyGen epochs of main_image.py at the paper's networks and batch on n_train images;
    the second epoch of each phase (the first absorbs cuDNN's autotuning and the allocator's growth) from
    metrics.csv scales to 100 + 10 epochs of 50,000 images (validation included, downstream evaluation and samples
    not: their sizes here are minimal)."""
    n_train, batch = (40, 20) if check.dry_run else (10000, 100)
    sizes = ["--z_dim", "8", "--valid_size", "20", "--compat_rows", "4"] if check.dry_run else []
    run_dir = check.work_dir / "table7_chunk"
    script_main("main_image")(["--dataset", "mnist", "--method", "cygen", "--warm_up", "2", "--epochs", "2",
                               "--n_train", str(n_train), "--batch_size", str(batch), "--n_test", "100",
                               "--n_trials", "1", "--downstream_epochs", "1", "--downstream_draws", "1",
                               "--gen_niter", "2", "--gibbs_steps", "1", *sizes, "--data_root", str(check.data_root),
                               "--device", str(check.device), "--run_dir", str(run_dir)])
    elapsed = elapsed_by_step(run_dir)
    warm_up_epoch, cygen_epoch = elapsed[2] - elapsed[1], elapsed[4] - elapsed[3]
    scale = 50000 / n_train
    hours = (100 * warm_up_epoch + 10 * cygen_epoch) * scale / 3600
    measured = f"the 2nd warm-up and 2nd CyGen epoch of {n_train} images at batch {batch}, scaled to 50,000 images"
    check.row("Table 7 MNIST CyGen(PT) (main_image.py)", "mnist", "ms per ELBO warm-up step",
              round(warm_up_epoch / (n_train // batch) * 1e3, 2), measured)
    check.row("Table 7 MNIST CyGen(PT) (main_image.py)", "mnist", "ms per CyGen step",
              round(cygen_epoch / (n_train // batch) * 1e3, 2), measured)
    check.row("Table 7 MNIST CyGen(PT) (main_image.py)", "mnist",
              "estimated hours of the training epochs (100 warm-up + 10 CyGen)", round(hours, 3), measured)


def symmetric_chunk(check):
    """main_sym.py at the README's configuration (conv nets, batch 1024, log every 100 iterations); the wall time
    between the first and the last log point scales to 200k iterations."""
    niters, log_every = (6, 2) if check.dry_run else (500, 100)
    sizes = ["--arch", "mlp", "--mlp_width", "32", "--conditional_width", "32", "--batch_size", "16",
             "--stats_batch_size", "16"] if check.dry_run else []
    run_dir = check.work_dir / "symmetric_chunk"
    script_main("main_sym")(["--niters", str(niters), "--log_every", str(log_every), "--checkpoint_every",
                             str(niters * 10), "--image_every", str(niters * 10), *sizes, "--data_root",
                             str(check.data_root), "--device", str(check.device), "--run_dir", str(run_dir)])
    elapsed = elapsed_by_step(run_dir)
    per_iteration = (elapsed[niters] - elapsed[log_every]) / (niters - log_every)
    measured = f"iterations {log_every}-{niters} of one run, logging included"
    method = "symmetric HVAE, 200k iterations (main_sym.py)"
    check.row(method, "mnist", "ms per iteration", round(per_iteration * 1e3, 2), measured)
    check.row(method, "mnist", "estimated hours", round(per_iteration * 200000 / 3600, 3), measured)


# ---- (d) benches --------------------------------------------------------------------------------------------

def bench_cases(check):
    device, data = ["--device", str(check.device)], ["--data_root", str(check.data_root)]
    if check.dry_run:
        tiny = {"bench_toy": ["--batch_size", "16", "--n_mc_px", "2", "--repeats", "1"],
                "bench_image": ["--batch_size", "2", "--repeats", "1"],
                "bench_sym": ["--arch", "mlp", "--batch_size", "8", "--repeats", "1", "--warmup", "0"],
                "bench_cvae": ["--steps", "1", "--eval_images", "2", *data],
                "bench_lagvae": ["--batch_size", "20", "--width", "16", "--repeats", "1"],
                "bench_fid": ["--dims", "64", "--n_images", "4", "--batch_size", "2"]}
    else:
        tiny = {"bench_toy": [], "bench_image": ["--breakdown"], "bench_sym": [], "bench_cvae": data,
                "bench_lagvae": [], "bench_fid": ["--n_images", "1000", "--batch_size", "100"]}
    cases = [(name, name, argv) for name, argv in tiny.items()]
    # variants last, so that the time budget cuts them first (the dry run keeps the cheap ones)
    variants = [("bench_sym", "bf16"), ("bench_lagvae", "bf16")]
    if not check.dry_run:
        variants += [("bench_image", "tf32"), ("bench_cvae", "bf16")]
    cases += [(f"{name} --precision {precision}", name, [*tiny[name], "--precision", precision])
              for name, precision in variants]
    if not check.dry_run:  # compiling takes minutes even at tiny sizes: GPU runs only, the image loss first
        cases += [("bench_image --compile_flow", "bench_image", ["--compile_flow"]),
                  ("bench_toy --compile_flow", "bench_toy", ["--compile_flow"])]
    return [(label, module, [*argv, *device]) for label, module, argv in cases]


def run_benches(check):
    for label, module, argv in bench_cases(check):
        if module == "bench_fid" and not inception_weights_present():
            check.parts.append({"part": label, "outcome": "skipped: the FID Inception weights are not here "
                                                          "(95 MB: over what the check can carry)"})
            continue
        summary = check.work_dir / f"{label.replace(' ', '_')}.json"

        def run():
            importlib.import_module(f"bench.{module}").main([*argv, "--summary", str(summary)])
            for row in json.loads(summary.read_text())["rows"]:
                check.rows.append({**row, "method": f"{label}: {row['method']}"})
        check.part(label, run)


# ---- MNIST for the GPU machine --------------------------------------------------------------------------------

def write_idx(path, array):
    """An unsigned-byte idx file (the MNIST format data/images.py reads), gzipped."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(size.to_bytes(4, "big") for size in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes(), mtime=0))


def prepare_data(root):
    from data.images import load_image_dataset
    splits = load_image_dataset("mnist", n_valid=0)
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, images, labels in (("train", splits.train_x, splits.train_y), ("t10k", splits.test_x, splits.test_y)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images[:, 0].numpy())
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", labels.to(torch.uint8).numpy())
    print(f"wrote MNIST ({len(splits.train_x)} + {len(splits.test_x)} images) to {raw} from {splits.source}")


# ---- the check ----------------------------------------------------------------------------------------------

def write(path, check_or_none, command):
    from evaluation.summary import hardware_description, write_summary
    if check_or_none is None:
        rows = [dict(method=method, dataset=dataset, metric=metric, ours=NOT_RUN, paper=None,
                     scale="bash bench/gpu_check.sh on a CUDA machine") for method, dataset, metric in PENDING_ROWS]
        write_summary(path, experiment="GPU check (bench/gpu_check.sh)", rows=rows, command=command, kind="full",
                      hardware="none: no GPU was lent yet", notes="Every row waits for a run on a GPU.")
        return
    check = check_or_none
    skipped = [f"{part['part']} ({part['outcome']})" for part in check.parts if not part["outcome"].startswith("ok")]
    notes = (f"torch {torch.__version__} (CUDA {torch.version.cuda}), {len(check.parts)} parts in "
             f"{check.elapsed():.0f} s. Not ok: {'; '.join(skipped) if skipped else 'none'}.")
    write_summary(path, experiment="GPU check (bench/gpu_check.sh)", rows=check.rows, command=command,
                  kind="quick" if check.dry_run else "full", hardware=hardware_description(check.device), notes=notes)
    (Path(path).with_name("gpu_check_parts.json")).write_text(json.dumps(check.parts, indent=2))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", dest="dry_run", action="store_true", help="the CPU at tiny sizes")
    parser.add_argument("--pending", action="store_true", help="write the not-yet-run summary and stop")
    parser.add_argument("--prepare_data", type=Path, metavar="DIR", help="write MNIST as idx files into DIR")
    parser.add_argument("--budget_s", type=float, default=420.0, help="parts start only before this (default: 420)")
    parser.add_argument("--out", type=Path, help="summary to write (default: results/gpu_check.json, with "
                                                 "--dry-run runs/gpu_check_dry/gpu_check.json)")
    parser.add_argument("--work_dir", type=Path, help="run folders of the parts (default: runs/gpu_check, with "
                                                      "--dry-run runs/gpu_check_dry)")
    parser.add_argument("--data_root", type=Path,
                        help=f"image data (default: {CARRIED_DATA.relative_to(REPO)} when present, else datasets)")
    args = parser.parse_args(argv)
    command = "bash bench/gpu_check.sh" + (" --dry-run" if args.dry_run else "")
    if args.prepare_data:
        return prepare_data(args.prepare_data)
    if args.pending:
        return write(args.out or REPO / "results" / "gpu_check.json", None, command)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit(f"error: no usable GPU (torch {torch.__version__}, CUDA {torch.version.cuda}); this check "
                         "measures a GPU: run it where one is, or pass --dry-run for the CPU rehearsal")
    work_dir = args.work_dir or REPO / "runs" / ("gpu_check_dry" if args.dry_run else "gpu_check")
    out = args.out or (work_dir / "gpu_check.json" if args.dry_run else REPO / "results" / "gpu_check.json")
    data_root = args.data_root or (CARRIED_DATA if CARRIED_DATA.is_dir() else Path("datasets"))
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in work_dir.iterdir():  # each check starts from empty run folders
        if stale.is_dir():
            shutil.rmtree(stale)
    device = torch.device("cpu" if args.dry_run else "cuda")
    check = Check(device, args.dry_run, args.budget_s, work_dir, data_root)
    print(f"gpu_check on {device}: torch {torch.__version__}, python {sys.version.split()[0]}, data {data_root}, "
          f"budget {args.budget_s:.0f} s; command {shlex.join(sys.argv)}", flush=True)
    run_smoke_tests(check)
    check.part("CyGen loss and gradient, CPU vs device, fp32 and tf32", lambda: compare_numerics(check))
    check.part("Table 7 MNIST chunk", lambda: table7_chunk(check))
    check.part("symmetric 200k chunk", lambda: symmetric_chunk(check))
    run_benches(check)
    write(out, check, command)
    print(f"wrote {out} ({len(check.rows)} rows)")
    failed = [part for part in check.parts if part["outcome"].startswith("failed")]
    return 1 if failed else 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())

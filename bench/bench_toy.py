"""Time one training step of main_toy.py (forward, backward, Adam) at the paper's configuration.

    python bench/bench_toy.py [--device auto|cpu|cuda|cuda:N] [--precision fp32|tf32] [--threads 1]
                              [--batch_size 1000] [--repeats 20] [--compile_flow] [--summary results/toy_speed.json]

CyGen's step (harmonic-mean fit with M=16 + compatibility term, F=32 flows) is reported beside the ELBO step of
the same networks measured in the same run, so the ratio survives a noisy, shared machine; each eager step also with
its kernels, host syncs and peak memory (bench/counting.py), points per second and the minutes of the paper's
30,000-iteration run. The official code's step, measured on this project's 2-core CPU with one thread and no other
load, took ~0.47 s (spec). With --compile_flow the lite step is timed once more with main_toy.py's --compile_flow
true (the flow's per-step functions through torch.compile), its kernels counted inside the compiled graphs
(bench/counting.py), and the seconds its first step took to compile, from an empty compile cache. All cases are timed
in the same interleaved rounds.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from bench.timing import (bench_device, bench_parser, first_call_seconds, interleaved_median_seconds,  # noqa: E402
                          profile_line, profile_rows, profile_step, training_step, compile_cache, add_compile_cache_arg,
                          write_bench_summary)

from models import compiled_steps  # noqa: E402
from models.toy import toy_decoder, toy_encoder  # noqa: E402
from objectives.cygen import cygen_loss  # noqa: E402
from objectives.vae import elbo_loss  # noqa: E402
from training.precision import CYGEN_BF16_REFUSAL  # noqa: E402

OFFICIAL_SECONDS_PER_STEP = 0.47
PAPER_ITERATIONS = 30000
BASELINE, LITE, COMPILED = "elbo (baseline)", "cygen jacnorm_lite_x", "cygen lite, compiled flow"
LABELS = {BASELINE: "ELBO (baseline, same networks)", "cygen fit only (w_cm=0)": "CyGen, fit only (w_cm = 0)",
          LITE: "CyGen, jacnorm_lite_x (toy default)", "cygen jacnorm_x": "CyGen, jacnorm_x",
          COMPILED: "CyGen, jacnorm_lite_x, --compile_flow true"}


def write_speed_summary(args, device, seconds, profiles, compile_seconds=None):
    """Milliseconds per step and the ratio to the ELBO step; in the setting where the spec timed the official code
    (this project's CPU, one thread, batch 1000, M=16) also the speed-up over it. compile_seconds: the seconds of
    the compiled case's first step and the compile cache it used."""
    as_official = device.type == "cpu" and args.threads == 1 and args.batch_size == 1000 and args.n_mc_px == 16
    scale = f"batch {args.batch_size}, F=32, M={args.n_mc_px}, median of {args.repeats} interleaved steps"
    rows = []
    for name, s in seconds.items():
        method = LABELS[name]
        official = (f"official code ~{OFFICIAL_SECONDS_PER_STEP * 1e3:.0f} (unloaded)"
                    if as_official and name in (LITE, COMPILED) else None)
        rows.append(dict(method=method, dataset="toy", metric="ms per step", ours=s * 1e3, paper=official,
                         scale=scale))
        rows.append(dict(method=method, dataset="toy", metric="points per s", ours=round(args.batch_size / s),
                         paper=None, scale=scale))
        rows.append(dict(method=method, dataset="toy", metric=f"estimated minutes of {PAPER_ITERATIONS} iterations",
                         ours=round(PAPER_ITERATIONS * s / 60, 1), paper=None, scale=scale))
        if name in profiles:
            rows += profile_rows(method, "toy", f"batch {args.batch_size}, F=32, M={args.n_mc_px}, one step",
                                 profiles[name])
        if name != BASELINE:
            rows.append(dict(method=method, dataset="toy", metric="x the ELBO step", ours=s / seconds[BASELINE],
                             paper=None, scale=scale))
    if compile_seconds is not None:
        first_step, cache = compile_seconds
        rows.append(dict(method=LABELS[COMPILED], dataset="toy", metric=f"compile s (first step, {cache})",
                         ours=round(first_step, 1), paper=None, scale=f"batch {args.batch_size}, F=32"))
    for name in (LITE, COMPILED):
        if as_official and name in seconds:
            rows.append(dict(method=LABELS[name], dataset="toy", metric="speed-up over the official code",
                             ours=OFFICIAL_SECONDS_PER_STEP / seconds[name], paper="10x (target)", scale=scale))
    write_bench_summary(args.summary, device, "Speed of one toy training step (forward, backward, Adam)", rows,
                        note="Other processes slow every step, the ratio to the ELBO step much less.")


def main(argv=None):
    parser = bench_parser(__doc__, threads=1, summary_example="results/toy_speed.json",
                          bf16_refused_because=CYGEN_BF16_REFUSAL)
    parser.add_argument("--batch_size", type=int, default=1000, help="points per timed step (default: %(default)s)")
    parser.add_argument("--n_mc_px", type=int, default=16,
                        help="Monte Carlo samples per point, as main_toy.py --n_mc_px (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=20, help="timed steps; the median is reported (default: %(default)s)")
    parser.add_argument("--compile_flow", action="store_true",
                        help="also time the lite step with the flow's per-step functions compiled")
    add_compile_cache_arg(parser)
    args = parser.parse_args(argv)
    device, _ = bench_device(args)  # fp32 or tf32: no autocast
    torch.manual_seed(0)
    encoder, decoder = toy_encoder().to(device), toy_decoder(0.01).to(device)
    parameters = list(encoder.parameters()) + list(decoder.parameters())
    x = torch.randn(args.batch_size, 2, device=device)

    cases = {
        BASELINE: lambda: elbo_loss(encoder, decoder, x, args.n_mc_px)[0],
        "cygen fit only (w_cm=0)": lambda: cygen_loss(encoder, decoder, x, args.n_mc_px, "jacnorm_lite_x", 0.0)[0],
        LITE: lambda: cygen_loss(encoder, decoder, x, args.n_mc_px, "jacnorm_lite_x", 1e-5)[0],
        "cygen jacnorm_x": lambda: cygen_loss(encoder, decoder, x, args.n_mc_px, "jacnorm_x", 1e-5)[0],
    }
    print(f"device {device}, threads {args.threads}, batch {args.batch_size}, F=32 flows, M={args.n_mc_px}")
    optimizers = {name: torch.optim.Adam(parameters, lr=1e-3, foreach=True) for name in cases}
    steps = {name: eager_step(training_step(loss, optimizers[name])) for name, loss in cases.items()}
    compile_seconds = None
    if args.compile_flow:
        optimizers[COMPILED] = torch.optim.Adam(parameters, lr=1e-3, foreach=True)
        steps[COMPILED] = compiled_step(training_step(cases[LITE], optimizers[COMPILED]))
        cache = compile_cache(args)
        compile_seconds = first_call_seconds(steps[COMPILED], device), cache
        print(f"{COMPILED}: first step (compile, {cache}) took {compile_seconds[0]:.1f} s")
    seconds = interleaved_median_seconds(steps, device, args.repeats)
    profiles = {name: profile_step(step, device, [optimizers[name]]) for name, step in steps.items()}
    baseline = seconds[BASELINE]
    for name, s in seconds.items():
        print(f"{name:26s} {s * 1e3:8.1f} ms/step  {1 / s:7.1f} steps/s  {s / baseline:5.2f}x the ELBO step  "
              f"{PAPER_ITERATIONS} iterations ~ {PAPER_ITERATIONS * s / 60:.0f} min")
        if name in profiles:
            print(f"{'':26s} {profile_line(profiles[name])}")
    for name in (LITE, COMPILED):
        if device.type == "cpu" and name in seconds:
            print(f"{name}: vs the official code's {OFFICIAL_SECONDS_PER_STEP} s/step (1 thread, spec): "
                  f"{OFFICIAL_SECONDS_PER_STEP / seconds[name]:.1f}x faster")
    if args.summary:
        write_speed_summary(args, device, seconds, profiles, compile_seconds)


def eager_step(step):
    def run():
        with compiled_steps.enabled(False):
            step()
    return run


def compiled_step(step):
    def run():
        with compiled_steps.enabled(True):
            step()
    return run


if __name__ == "__main__":
    main()

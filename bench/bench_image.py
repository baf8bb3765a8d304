"""Time one training step of main_image.py (forward, backward, Adamax) at the MNIST configuration.

    python bench/bench_image.py [--device auto|cpu|cuda|cuda:N] [--precision fp32|tf32] [--threads 2]
                                [--batch_size 100] [--repeats 5] [--official_code PATH] [--breakdown] [--compile_flow]
                                [--summary results/image_speed.json]

The CyGen step (d_z = 64, 4 flows x 8 reflections, jacnorm_x, M = 1) is reported beside the ELBO warm-up step of the
same networks measured in the same run, as ms per image and images/s, with the kernels, host syncs and peak memory of
one step (bench/counting.py) and the hours the training steps of Table 7's MNIST protocol would take at that speed
(100 ELBO warm-up epochs + 10 CyGen epochs of 50,000 images; evaluation and sampling not included). The official code's
CyGen step, measured on this project's CPU with 2 threads and no other load, took ~1.9 s at batch 32, ~59 ms per
image (spec).
A shared machine's speed drifts by tens of percent within minutes, so for the ratio pass a checkout of the official
code (github.com/changliu00/cygen) as --official_code: its step is then timed in this run, at its batch of 32, with
the same configuration, and the speed-up is computed against that. --breakdown also times, in the same rounds, the
network passes inside the CyGen step (the encoder body and heads with their x-tangent, the decoder's p-term with its
double backward, the decoder's fit term, each forward and backward): what is left of the step is the flow algebra.
--compile_flow also times, in the same rounds, the CyGen step of main_image.py --compile_flow true (the whole loss as
one torch.compile graph, models/compiled_steps.py) with its kernels and host syncs counted inside the compiled graphs
(bench/counting.py), and the seconds its first step took to compile, from an empty compile cache.
"""
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import compat  # noqa: E402,F401

import torch  # noqa: E402

from bench.timing import (bench_device, bench_parser, first_call_seconds, interleaved_median_seconds,  # noqa: E402
                          profile_line, profile_rows, profile_step, training_step, compile_cache, add_compile_cache_arg,
                          write_bench_summary)
from models import compiled_steps  # noqa: E402
from models.image import image_decoder, image_encoder  # noqa: E402
from objectives.cygen import cygen_loss, decoder_mixed_score  # noqa: E402
from objectives.vae import elbo_loss  # noqa: E402
from training.precision import CYGEN_BF16_REFUSAL  # noqa: E402

OFFICIAL_MS_PER_IMAGE = 1900 / 32
OFFICIAL_BATCH_SIZE = 32
BASELINE, CYGEN, OFFICIAL = "elbo warm-up step (baseline)", "cygen jacnorm_x", "official code, cygen jacnorm_x"
COMPILED = "cygen jacnorm_x, --compile_flow true"
BODY, P_TERM, FIT = ("cygen part: encoder body + heads with x-tangent", "cygen part: decoder p-term, double backward",
                     "cygen part: decoder fit term")
TABLE7_IMAGES, TABLE7_WARM_UP_EPOCHS, TABLE7_CYGEN_EPOCHS = 50000, 100, 10  # MNIST, run_image.sh's full protocol


def official_cygen_loss(checkout, device, batch_size):
    """A loss closure and the parameters of the official code's CyGen model in the same configuration (MNIST conv
    networks, d_z = 64, 4 flows x 8 reflections, jacnorm_x, w_cm = 1e-3, M = 1), imported from its checkout."""
    sys.path.insert(0, os.path.abspath(checkout))
    # PyTorch removed torch.solve, which the official solve_vec calls: the same solve in today's API.
    torch.solve = lambda b, a: (torch.linalg.solve(a, b),)
    from arch import VAE
    from methods import cygen
    config = types.SimpleNamespace(arch_type="cnn", dim_z=64, input_size=[1, 28, 28], input_type="binary",
                                   set_p_var=0.01, num_flows=4, num_householder=8, cuda=device.type == "cuda",
                                   vae_clamp=100.0)
    model = VAE.HouseholderSylvesterVAE(config).to(device)
    frame = cygen.CyGen_FlowqNoInv("jacnorm_x", "nllhmarg", model.eval_logp, model.draw_q0,
                                   lambda x, eps: model.eval_z1eps_logqt(x, eps, eval_jac=True), model.eval_z1eps,
                                   w_cm=1e-3, w_px=1.0, n_mc_cm=1, n_mc_px=1)
    x = torch.rand(batch_size, 1, 28, 28, device=device)
    return lambda: frame.getlosses(x)[0], list(model.parameters())


def network_passes(encoder, decoder, x):
    """Backward-pass closures of the network work inside one CyGen step (at the step's shapes, without the flow)."""
    eta, z = torch.randn_like(x), torch.randn(x.shape[0], encoder.z_dim, device=x.device)

    def body():
        heads, heads_tangent = encoder.head_outputs_with_tangent(x, eta)
        (heads.sum() + heads_tangent.square().sum()).backward()

    def p_term():
        decoder_mixed_score(decoder, x, z.clone().requires_grad_(), eta).square().sum().backward()

    def fit():
        decoder.log_prob(x, z.clone().requires_grad_()).sum().backward()
    return {BODY: body, P_TERM: p_term, FIT: fit}


def main(argv=None):
    parser = bench_parser(__doc__, threads=2, summary_example="results/image_speed.json",
                          bf16_refused_because=CYGEN_BF16_REFUSAL)
    parser.add_argument("--batch_size", type=int, default=100, help="images per timed step (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed steps per case, interleaved; the median is reported (default: %(default)s)")
    parser.add_argument("--official_code", help="a checkout of github.com/changliu00/cygen: time its step too")
    parser.add_argument("--breakdown", action="store_true", help="also time the network passes inside the step")
    parser.add_argument("--compile_flow", action="store_true",
                        help="also time the CyGen step of main_image.py --compile_flow true (compiled, cold cache)")
    add_compile_cache_arg(parser)
    args = parser.parse_args(argv)
    if args.compile_flow and not compiled_steps.compiler_available():
        parser.error("--compile_flow needs a C/C++ compiler for torch.compile: install g++ or leave the flag off")
    if args.official_code and not os.path.isfile(os.path.join(args.official_code, "methods", "cygen.py")):
        parser.error(f"--official_code {args.official_code}: no methods/cygen.py there; pass the root of a checkout "
                     "of github.com/changliu00/cygen")
    device, _ = bench_device(args, cudnn_benchmark=True)  # fp32 or tf32: no autocast
    torch.manual_seed(0)
    encoder, decoder = image_encoder((1, 28, 28)).to(device), image_decoder((1, 28, 28)).to(device)
    x = torch.rand(args.batch_size, 1, 28, 28, device=device)
    ours = list(encoder.parameters()) + list(decoder.parameters())
    cases = {BASELINE: (lambda: elbo_loss(encoder, decoder, x)[0], ours, args.batch_size),
             CYGEN: (lambda: cygen_loss(encoder, decoder, x, 1, "jacnorm_x", 1e-3)[0], ours, args.batch_size)}
    if args.compile_flow:
        cases[COMPILED] = (lambda: cygen_loss(encoder, decoder, x, 1, "jacnorm_x", 1e-3, compiled=True)[0], ours,
                           args.batch_size)
    if args.official_code:
        cases[OFFICIAL] = (*official_cygen_loss(args.official_code, device, OFFICIAL_BATCH_SIZE), OFFICIAL_BATCH_SIZE)
    print(f"device {device}, threads {args.threads}, batch {args.batch_size}, d_z 64, 4 flows x 8 reflections")
    optimizers = {name: torch.optim.Adamax(parameters, lr=1e-4, eps=1e-7, foreach=True)
                  for name, (_, parameters, _) in cases.items()}
    training_steps = {name: training_step(loss, optimizers[name]) for name, (loss, _, _) in cases.items()}
    steps = dict(training_steps)
    compile_seconds = None
    if args.compile_flow:
        cache = compile_cache(args)
        compile_seconds = first_call_seconds(training_steps[COMPILED], device)
        print(f"{COMPILED}: first step (compile, {cache}) took {compile_seconds:.1f} s")
    if args.breakdown:
        steps.update(network_passes(encoder, decoder, x))
    seconds = interleaved_median_seconds(steps, device, args.repeats)
    profiles = {name: profile_step(step, device, [optimizers[name]]) for name, step in training_steps.items()}
    rows, ms_per_image = [], {}
    for name, s in seconds.items():
        batch_size = cases[name][2] if name in cases else args.batch_size
        scale = f"batch {batch_size}, {args.threads} threads, median of {args.repeats} interleaved steps"
        ms_per_image[name] = s * 1e3 / batch_size
        print(f"{name:48s} {s:7.3f} s/step  {ms_per_image[name]:6.2f} ms/image  {batch_size / s:7.1f} images/s")
        paper = (f"official code ~{OFFICIAL_MS_PER_IMAGE:.0f} (spec: CPU, unloaded)"
                 if name == CYGEN and device.type == "cpu" else None)
        rows += [dict(method=name, dataset="mnist", metric="ms per image", ours=round(ms_per_image[name], 2),
                      paper=paper, scale=scale),
                 dict(method=name, dataset="mnist", metric="images per s", ours=round(batch_size / s, 1),
                      paper=None, scale=scale)]
        if name in profiles:
            print(f"{'':48s} {profile_line(profiles[name])}")
            rows += profile_rows(name, "mnist", f"batch {batch_size}, one step", profiles[name])
    scale = f"batch {args.batch_size}, {args.threads} threads, median of {args.repeats} interleaved steps"
    hours = TABLE7_IMAGES / 3.6e6 * (TABLE7_WARM_UP_EPOCHS * ms_per_image[BASELINE]
                                     + TABLE7_CYGEN_EPOCHS * ms_per_image[CYGEN])
    print(f"Table 7 MNIST protocol ({TABLE7_WARM_UP_EPOCHS} warm-up + {TABLE7_CYGEN_EPOCHS} CyGen epochs of "
          f"{TABLE7_IMAGES} images), training steps only: ~{hours:.2f} h at these speeds")
    rows.append(dict(method=CYGEN, dataset="mnist",
                     metric=f"estimated hours of Table 7's training steps ({TABLE7_WARM_UP_EPOCHS} ELBO + "
                            f"{TABLE7_CYGEN_EPOCHS} CyGen epochs)", ours=round(hours, 3), paper=None, scale=scale))
    if args.compile_flow:
        speed_up = ms_per_image[CYGEN] / ms_per_image[COMPILED]
        print(f"{COMPILED}: {speed_up:.2f}x the speed of the eager CyGen step, compiled in {compile_seconds:.0f} s")
        rows += [dict(method=COMPILED, dataset="mnist", metric="speed-up over the eager CyGen step, same run",
                      ours=round(speed_up, 2), paper=None, scale=scale),
                 dict(method=COMPILED, dataset="mnist", metric=f"compile s (first step, {cache})",
                      ours=round(compile_seconds, 1), paper=None,
                      scale=f"batch {args.batch_size}, {args.threads} threads")]
    ratio = ms_per_image[CYGEN] / ms_per_image[BASELINE]
    print(f"cygen step: {ratio:.2f}x the ELBO step per image")
    rows.append(dict(method=CYGEN, dataset="mnist", metric="x the ELBO step", ours=round(ratio, 2), paper=None,
                     scale=scale))
    if args.breakdown:
        network = sum(ms_per_image[name] for name in (BODY, P_TERM, FIT))
        print(f"network passes together {network:.2f} ms/image, the rest of the step (flow algebra) "
              f"{ms_per_image[CYGEN] - network:.2f} ms/image")
        rows.append(dict(method="cygen parts: the three network passes together", dataset="mnist",
                         metric="ms per image", ours=round(network, 2), paper=None, scale=scale))
        if OFFICIAL in ms_per_image:
            rows.append(dict(method=CYGEN, dataset="mnist",
                             metric="speed-up over the official code if the flow algebra took no time",
                             ours=round(ms_per_image[OFFICIAL] / network, 2), paper=None, scale=scale))
    if OFFICIAL in ms_per_image:
        speed_up = ms_per_image[OFFICIAL] / ms_per_image[CYGEN]
        print(f"vs the official code timed in this run: {speed_up:.2f}x faster per image")
        rows.append(dict(method=CYGEN, dataset="mnist", metric="speed-up per image over the official code, same run",
                         ours=round(speed_up, 2), paper="5x (target)" if device.type == "cpu" else None, scale=scale))
        if COMPILED in ms_per_image:
            speed_up = ms_per_image[OFFICIAL] / ms_per_image[COMPILED]
            print(f"{COMPILED} vs the official code timed in this run: {speed_up:.2f}x faster per image")
            rows.append(dict(method=COMPILED, dataset="mnist",
                             metric="speed-up per image over the official code, same run", ours=round(speed_up, 2),
                             paper="5x (target)" if device.type == "cpu" else None, scale=scale))
    elif device.type == "cpu":
        speed_up = OFFICIAL_MS_PER_IMAGE / ms_per_image[CYGEN]
        print(f"vs the official code's ~{OFFICIAL_MS_PER_IMAGE:.0f} ms per image (spec): {speed_up:.2f}x")
        rows.append(dict(method=CYGEN, dataset="mnist", metric="speed-up per image over the official code (spec)",
                         ours=round(speed_up, 2), paper="5x (target)", scale=scale))
    if args.summary:
        write_bench_summary(args.summary, device, "Speed of one CyGen image training step (MNIST configuration)", rows)


if __name__ == "__main__":
    main()

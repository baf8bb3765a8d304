"""Wall time of a table of toy runs through launch.py's local executor at --jobs 1 and --jobs 2, in one run.

    python bench/bench_launch.py [--runs 4] [--niters 500] [--repeats 2] [--summary results/launch_speed.json]

Each round launches the same table (pinwheel / 8gaussians x VAE / DAE at run_toy.sh --quick's batch, each run one
thread) into a fresh folder once per --jobs value, in turn (bench.timing.interleaved_median_seconds), so that the
other load of a shared machine slows both alike; on 2 free cores --jobs 2 should take about half the time.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import launch  # noqa: E402
from bench.timing import bench_parser, interleaved_median_seconds, write_bench_summary  # noqa: E402

RUNS = [("pinwheel", "vae", "--method elbo"), ("8gaussians", "vae", "--method elbo"),
        ("pinwheel", "dae", "--method dae --lr 1e-4"), ("8gaussians", "dae", "--method dae --lr 1e-4")]


def table(n_runs, niters):
    quick = f"--batch_size 200 --niters {niters} --eval_every {niters // 2} --eval_batch_size 500 --plot_every {niters}"
    return [f"{data}-{name} main_toy.py --data {data} {flags} {quick} --device cpu"
            for data, name, flags in (RUNS * n_runs)[:n_runs]]


def launch_in_fresh_folder(lines, jobs):
    with tempfile.TemporaryDirectory() as root:
        if launch.run_table(["--root", root, "--jobs", str(jobs)], lines) != 0:
            raise SystemExit(f"a run of the table failed; see {root}/launch/launch.log")


def main():
    parser = bench_parser(__doc__, summary_example="results/launch_speed.json")
    parser.add_argument("--runs", type=int, default=4, help="runs in the table (default: %(default)s)")
    parser.add_argument("--niters", type=int, default=500, help="iterations of each run (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds (default: %(default)s)")
    args = parser.parse_args()
    lines = table(args.runs, args.niters)
    load_before = os.getloadavg()
    seconds = interleaved_median_seconds({jobs: lambda jobs=jobs: launch_in_fresh_folder(lines, jobs)
                                          for jobs in (1, 2)}, "cpu", args.repeats, warmup=0)
    load_after = os.getloadavg()
    ratio = seconds[1] / seconds[2]
    print(f"{args.runs} toy runs of {args.niters} iterations: --jobs 1 {seconds[1]:.1f} s, --jobs 2 "
          f"{seconds[2]:.1f} s, ratio {ratio:.2f}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} "
          f"after, {os.cpu_count()} cores")
    if args.summary:
        scale = (f"{args.runs} runs of main_toy.py ({args.niters} iterations, batch 200, 1 thread each), median of "
                 f"{args.repeats} interleaved rounds")
        rows = [dict(method=f"launch.py, --jobs {jobs}", dataset="toy", metric="s per table",
                     ours=round(seconds[jobs], 1), paper=None, scale=scale) for jobs in (1, 2)]
        rows.append(dict(method="launch.py, --jobs 2", dataset="toy", metric="x faster than --jobs 1",
                         ours=round(ratio, 2), paper=None, scale=scale))
        write_bench_summary(args.summary, "cpu", "Tables of runs through launch.py (submitit's local executor)", rows,
                            note=f"Load average before the first round {load_before[0]:.1f}, after the last "
                                 f"{load_after[0]:.1f}.")


if __name__ == "__main__":
    main()

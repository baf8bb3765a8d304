"""RESULTS.md, its appendix and the README's headline table are the rendering of results/ (staleness, length,
links); the renderer's layout and placeholders; the one summarize entry point, used by every run script, merging a
subset run into the committed summary; labelled figures; the speed summaries; the training-curve tools, run headless
on a tiny run. The claims' verdicts are tested in tests/test_claims.py."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import launch
from evaluation import render_results, summarize, summarize_toy
from evaluation.figures import rows_of, save_labelled_grid
from evaluation.render_results import APPENDIX, README_END, README_START, render_all, renderings
from evaluation.result_rows import load_summaries
from evaluation.summary import merge_summary, write_summary
from models import compiled_steps
from plot_curves import read_curves, run_labels
from tests.scripts import REPO, assert_speed_rows, read_metrics, run_script
from tests.test_examples import TINY_TOY

NOTEBOOK = REPO / "notebooks" / "training_curves.ipynb"
RUN_SCRIPTS = {"run_toy.sh": "toy", "run_image.sh": "image", "run_cvae.sh": "cvae", "run_sym.sh": "sym",
               "sweep_lagvae.sh": "lagvae"}
README_BLOCK = f"# Readme\n\n{README_START}\nold\n{README_END}\n\nmore\n"


def test_renderings_are_up_to_date():
    for path, text in renderings(REPO / "results", REPO / "RESULTS.md", REPO / "README.md").items():
        assert path.read_text() == text, (
            f"{path.name} is stale: run python -m evaluation.render_results (and commit results/ with it)")


def test_results_md_opens_with_every_claim_and_stays_short():
    text = (REPO / "RESULTS.md").read_text()
    tables = [line for line in text.splitlines() if line.startswith("| ")]
    assert tables[0] == "| claim | metric | paper | ours (quick) | ours (full) | verdict | how to reproduce |"
    claims = json.loads((REPO / "results" / "claims.json").read_text())["claims"]
    assert len(claims) >= 20 and all(f"| {claim['claim']} (" in text for claim in claims)
    assert len(text.splitlines()) <= 250, "RESULTS.md is for a glance: move long notes below <!-- appendix -->"


def test_every_link_of_the_renderings_exists():
    for name in ("RESULTS.md", APPENDIX, "README.md"):
        for target in re.findall(r"\]\(([^)#\s]+)\)", (REPO / name).read_text()):
            if not target.startswith("http"):
                assert (REPO / target).exists(), f"{name} links {target}, which does not exist"


def summary_row(method, ours, paper=None, **extra):
    return {"method": method, "dataset": "mnist", "metric": "FID", "ours": ours, "paper": paper,
            "scale": "1k samples", **extra}


def minimal_claims(results, claims=()):
    (results / "claims.json").write_text(json.dumps({"papers": {"Alpha": "A. Author, 2020"}, "reproduce": {},
                                                     "claims": list(claims), "speed": []}))


@pytest.fixture
def results_dir(tmp_path):
    """Summaries written in unsorted order, a notes file with a placeholder, a table and an appendix part covering
    two of them, one summary without notes, a claim, figures, and a README with the headline markers."""
    results = tmp_path / "results"
    write_summary(results / "zeta_full.json", experiment="Zeta at scale", kind="full", command="bash zeta.sh",
                  hardware="GPU X", rows=[summary_row("Zeta", 12.5, paper=11.0)])
    write_summary(results / "alpha_quick.json", experiment="Alpha, quick", kind="quick", hardware="CPU Y",
                  command="python a.py | tee log", rows=[summary_row("Alpha", 0.123456789, paper="0.2 ± 0.01"),
                                                         summary_row("Beta", "n/a", command="python b.py")])
    write_summary(results / "alpha_full.json", experiment="Alpha, full", kind="full", command="bash alpha.sh",
                  hardware="GPU X", rows=[summary_row("Alpha", 0.5)])
    (results / "alpha_notes.md").write_text(
        "## Alpha section\n\nAlpha reached {{alpha_quick | Alpha | mnist | FID | .2f}}; its claim: "
        "{{verdict | alpha-fid}}.\n\n```table\nsummary: alpha\nmetric: FID\nrows: method = Alpha | Beta -> B\n"
        "columns: dataset = mnist -> MNIST\n```\n\n<!-- appendix -->\n\nProse about alpha at length.\n")
    minimal_claims(results, [{"id": "alpha-fid", "source": "Alpha, Table 1", "claim": "Alpha is good",
                              "metric": "FID", "family": "alpha", "measure": "value",
                              "rows": [{"method": "Alpha", "dataset": "mnist", "metric": "FID"}], "paper": [0.2, 0.01],
                              "rule": {"kind": "match", "tolerance": 0.05}, "headline": "Alpha's FID"}])
    for figure in ("alpha_quick/curve.png", "alpha/b.png", "zeta/z.png"):
        (results / "figures" / figure).parent.mkdir(parents=True, exist_ok=True)
        (results / "figures" / figure).write_bytes(b"png")
    (tmp_path / "README.md").write_text(README_BLOCK)
    return results


def test_render_puts_claims_first_compact_notes_in_results_md_and_the_rest_in_the_appendix(results_dir):
    main, appendix, headline = render_all(results_dir, results_dir.parent)
    assert main.index("## Claims of the papers") < main.index("## Speed") < main.index("## Alpha section")
    # the full-scale Alpha row decides the claim: 0.5 is not within 0.05 of 0.2
    assert ("| Alpha is good (Alpha, Table 1) | FID | 0.2 ± 0.01 | 0.1235 | 0.5 | not reproduced (full) "
            "| `bash alpha.sh` |") in main
    assert "Alpha reached 0.12; its claim: not reproduced (full)." in main
    assert "| method (cells: quick / full (paper)) | MNIST |" in main
    assert "| Alpha | 0.1235 / 0.5 (0.2 ± 0.01) |" in main and "| B | n/a / - |" in main
    assert "Prose about alpha" not in main and "Prose about alpha at length." in appendix
    # provenance once per summary the section used; a row's own command stays with it
    assert "- `results/alpha_quick.json` (quick): `python a.py | tee log`; CPU Y;" in main
    assert "Rows kept from `python b.py` (CPU Y)." in main
    assert "| Zeta | mnist | FID | 12.5 | 11 | 1k samples |" in appendix and "## Zeta at scale" in main
    assert appendix.index("## Alpha section") < appendix.index("[alpha/b](results/figures/alpha/b.png)")
    assert "[zeta/z](results/figures/zeta/z.png)" in appendix and "figures/" not in main
    assert "| Alpha's FID | 0.2 ± 0.01 | 0.5 | not reproduced (full) |" in headline
    assert render_all(results_dir, results_dir.parent) == (main, appendix, headline)


@pytest.mark.parametrize("notes,message", [
    ("{{alpha_quick | Alpha | mnist | KID}}", "names 0 rows of results/alpha_quick.json"),
    ("{{omega | Alpha | mnist | FID}}", "with SUMMARY the name of a results/*.json"),
    ("{{verdict | no-such-claim}}", "with an ID of claims.json"),
    ("```table\nsummary: alpha\nmetric: FID\nrows: method = Gamma\ncolumns: dataset = mnist\n```",
     "names none of its"),
    ("```table\nsummary: alpha\nrows: method = ~(\ncolumns: dataset = mnist\n```", "has a bad regex"),
])
def test_notes_that_name_no_row_fail_the_rendering_with_their_file(results_dir, notes, message):
    (results_dir / "alpha_notes.md").write_text(f"## Alpha\n\n{notes}\n")
    with pytest.raises(ValueError, match=re.escape("results/alpha_notes.md")) as error:
        render_all(results_dir, results_dir.parent)
    assert message in str(error.value)


def test_render_refuses_a_summary_not_written_by_write_summary(results_dir):
    (results_dir / "broken.json").write_text(json.dumps({"experiment": "x", "rows": [{"method": "m"}]}))
    with pytest.raises(ValueError, match=r"broken.json lacks .*'kind'.*rows\[0\].dataset.*write_summary"):
        load_summaries(results_dir)


def run_main_in_process(module, monkeypatch, *args):
    """module.main() with these command-line arguments; the exit message, or None when it returned."""
    monkeypatch.setattr(sys, "argv", [module.__name__, *map(str, args)])
    try:
        module.main()
    except SystemExit as exit:
        return str(exit.code)
    return None


def test_render_cli_checks_staleness_of_all_three_files(results_dir, monkeypatch):
    output, readme = results_dir.parent / "RESULTS.md", results_dir.parent / "README.md"
    arguments = ("--results", results_dir, "--output", output, "--readme", readme)
    assert "stale" in run_main_in_process(render_results, monkeypatch, *arguments, "--check")
    assert run_main_in_process(render_results, monkeypatch, *arguments) is None
    assert readme.read_text().startswith("# Readme") and readme.read_text().endswith("\n\nmore\n")
    assert "| Alpha's FID |" in readme.read_text() and (results_dir.parent / APPENDIX).exists()
    assert run_main_in_process(render_results, monkeypatch, *arguments, "--check") is None
    readme.write_text(readme.read_text().replace("Alpha's FID", "edited by hand"))
    assert "README.md stale" in run_main_in_process(render_results, monkeypatch, *arguments, "--check")
    readme.write_text("# Readme without markers\n")
    assert "lacks the headline markers" in run_main_in_process(render_results, monkeypatch, *arguments)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A finished CyGen(PT) run and a VAE run of main_toy.py, laid out as run_toy.sh does (<data>-<name>)."""
    root = tmp_path_factory.mktemp("runs") / "toy_quick"
    run_script("main_toy.py", *TINY_TOY, "--method", "cygen", "--pretr_method", "elbo", "--pretr_niter", "2",
               "--run_dir", str(root / "pinwheel-cygen_pt"))
    run_script("main_toy.py", *TINY_TOY, "--method", "elbo", "--niters", "2", "--run_dir", str(root / "pinwheel-vae"))
    return root


def summarize_into(tmp_path, root, command):
    """python -m evaluation.summarize toy ROOT into tmp_path/results (with the repo's claims), rendering there."""
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    shutil.copy(REPO / "results" / "claims.json", results)
    if not (tmp_path / "README.md").exists():
        (tmp_path / "README.md").write_text(README_BLOCK)
    try:
        summarize.main(["toy", str(root), "--kind", "quick", "--command", command, "--device", "cpu",
                        "--results", str(results), "--output", str(tmp_path / "RESULTS.md"),
                        "--readme", str(tmp_path / "README.md")])
    except SystemExit as exit:
        return str(exit.code)
    return json.loads((results / "toy_quick.json").read_text())


def test_summarize_writes_the_toy_rows_with_the_pretraining_values_and_renders(tiny_runs, tmp_path):
    summary = summarize_into(tmp_path, tiny_runs, "bash run_toy.sh --quick")
    assert summary["kind"] == "quick" and summary["command"] == "bash run_toy.sh --quick"
    rows = {(row["method"], row["metric"]): row for row in summary["rows"]}
    assert len(rows) == 5 + 3
    pretrained = rows["CyGen(PT)", "compatibility, lite (J-weighted), after ELBO pretraining (step 2)"]
    assert pretrained["paper"].startswith("~1.6e4") and pretrained["scale"] == "4 iterations, batch 32"
    assert pretrained["ours"] == float(read_metrics(tiny_runs / "pinwheel-cygen_pt")[0]["compatibility_lite"])
    assert rows["VAE (ELBO)", "harmonic-mean NLL"]["paper"] is None
    assert sorted(summary["run_seconds"]) == ["pinwheel-cygen_pt", "pinwheel-vae"]
    assert sorted(path.name for path in (tmp_path / "results" / "figures" / "toy_quick").iterdir()) == [
        "pinwheel-cygen_pt.png", "pinwheel-vae.png"]
    rendered = (tmp_path / "RESULTS.md").read_text()
    assert "without the prior CyGen(PT) fits the data better than the VAE, pinwheel" in rendered
    assert "min over 2 runs" in (tmp_path / "README.md").read_text()


def test_a_subset_run_keeps_the_other_runs_rows(tiny_runs, tmp_path):
    """TOY_RUNS=vae bash run_toy.sh --quick on a machine holding only the VAE run: its rows are replaced, the
    CyGen(PT) rows of the earlier full table stay, with the command they were made by."""
    everything = summarize_into(tmp_path, tiny_runs, "bash run_toy.sh --quick")
    only_vae = shutil.copytree(tiny_runs / "pinwheel-vae", tmp_path / "fresh" / "toy_quick" / "pinwheel-vae")
    subset = summarize_into(tmp_path, only_vae.parent, "TOY_RUNS='vae' bash run_toy.sh --quick")
    assert [(row["method"], row["metric"]) for row in subset["rows"]] == [
        (row["method"], row["metric"]) for row in everything["rows"]]
    kept = [row for row in subset["rows"] if row["method"] == "CyGen(PT)"]
    assert len(kept) == 5 and all(row["command"] == "bash run_toy.sh --quick" for row in kept)
    assert all("command" not in row for row in subset["rows"] if row["method"] == "VAE (ELBO)")
    assert subset["command"] == "TOY_RUNS='vae' bash run_toy.sh --quick"
    assert sorted(subset["run_seconds"]) == ["pinwheel-cygen_pt", "pinwheel-vae"]
    assert "Rows kept from `bash run_toy.sh --quick`" in (tmp_path / "RESULTS.md").read_text()


def test_summarize_refuses_an_unfinished_run_and_a_missing_root(tiny_runs, tmp_path):
    unfinished = shutil.copytree(tiny_runs / "pinwheel-vae", tmp_path / "toy" / "pinwheel-vae")
    config = json.loads((unfinished / "config.json").read_text())
    config["flags"]["niters"] = 8
    (unfinished / "config.json").write_text(json.dumps(config))
    message = summarize_into(tmp_path, unfinished.parent, "bash run_toy.sh --quick")
    assert "pinwheel-vae stopped at step 2 of 8: finish it first" in message
    assert not (tmp_path / "results" / "toy_quick.json").exists()
    assert "is not a folder of run folders" in summarize_into(tmp_path, tmp_path / "nowhere", "bash run_toy.sh")


def test_merge_summary_refuses_another_kind_and_repeated_rows(tmp_path):
    path = tmp_path / "x_quick.json"
    merge_summary(path, experiment="x", rows=[summary_row("A", 1.0)], command="c", kind="quick", hardware="h")
    with pytest.raises(ValueError, match="holds quick rows, not full ones"):
        merge_summary(path, experiment="x", rows=[], command="c", kind="full", hardware="h")
    with pytest.raises(ValueError, match="repeat a"):
        merge_summary(path, experiment="x", rows=[summary_row("A", 1.0)] * 2, command="c", kind="quick", hardware="h")
    merged = merge_summary(path, experiment="x", rows=[summary_row("B", 2.0)], command="c", kind="quick", hardware="h")
    assert [row["method"] for row in merged["rows"]] == ["A", "B"] and "command" not in merged["rows"][0]


def test_every_run_script_ends_with_the_one_summarize_step():
    """Each script's table goes to launch.py (run_common.sh), which, once every run is done, makes the summary."""
    common = (REPO / "run_common.sh").read_text()
    summarize_step = common.split("summarize_and_render() {")[1].split("\n}")[0]
    assert 'launch_table --summarize "$1"' in summarize_step
    assert launch.summary_command("toy", "runs/toy_quick", "quick", "bash run_toy.sh --quick", "cpu")[1:] == [
        "-m", "evaluation.summarize", "toy", "runs/toy_quick", "--kind", "quick", "--command",
        "bash run_toy.sh --quick", "--device", "cpu"]
    assert set(launch.FAMILIES) == set(summarize.FAMILIES)
    for script, family in RUN_SCRIPTS.items():
        lines = [line for line in (REPO / script).read_text().splitlines() if line.strip()]
        assert lines[-1] == f"summarize_and_render {family}", script
        assert family in summarize.FAMILIES
        assert not re.search(r"evaluation\.(summarize_|symvae|lagvae summarize)", "\n".join(lines)), script
    assert set(RUN_SCRIPTS.values()) == set(summarize.FAMILIES)
    assert (REPO / "run_fid.sh").read_text().rstrip().splitlines()[-1].startswith(
        '"$PYTHON" -m evaluation.render_results')


def run_script_table(tmp_path, script, *args, **environment):
    """The run names of the table a run script hands to launch.py, and the command it records, with PYTHON a
    stand-in that keeps its standard input and arguments instead of launching anything."""
    capture = tmp_path / "python"
    capture.write_text(f'#!/bin/sh\ncat > {tmp_path}/table\nprintf "%s\\n" "$@" > {tmp_path}/arguments\n')
    capture.chmod(0o755)
    subprocess.run(["bash", script, *args], cwd=REPO, check=True, env=dict(os.environ, PYTHON=str(capture),
                                                                             **environment))
    names = [line.split()[0] for line in (tmp_path / "table").read_text().splitlines()]
    arguments = (tmp_path / "arguments").read_text().splitlines()
    return names, arguments[arguments.index("--command") + 1]


def test_run_script_subsets_hand_launch_only_their_runs(tmp_path):
    """TOY_RUNS, SYM_SETTINGS and IMAGE_RUNS pick runs of the table (the summary then keeps the others' rows), and
    the recorded command says which."""
    assert run_script_table(tmp_path, "run_toy.sh", "--quick", TOY_RUNS="vae dae") == (
        ["pinwheel-vae", "pinwheel-dae", "8gaussians-vae", "8gaussians-dae"],
        "TOY_RUNS='vae dae' bash run_toy.sh --quick")
    assert run_script_table(tmp_path, "run_sym.sh", "--quick", SYM_SETTINGS="fmnist-ladder") == (
        ["fmnist-ladder-sym", "fmnist-ladder-elbo"], "SYM_SETTINGS='fmnist-ladder' bash run_sym.sh --quick")
    assert len(run_script_table(tmp_path, "run_toy.sh", "--quick")[0]) == 14
    image = "mnist-vae_pvar05 mnist-cygen_pt_pvar05_e5"
    assert run_script_table(tmp_path, "run_image.sh", "--quick", IMAGE_RUNS=image) == (
        image.split(), f"IMAGE_RUNS='{image}' bash run_image.sh --quick")
    quick_image, _ = run_script_table(tmp_path, "run_image.sh", "--quick")
    assert len(quick_image) == 10 and {"mnist-vae_pvar05_e5", "mnist-cygen_pt_pvar05_e5"} < set(quick_image)


def test_labelled_grid_keeps_every_pixel_and_labels_each_row(tmp_path):
    images = torch.rand(7, 1, 28, 28)
    rows = [("data", images[:3]), *rows_of("prior sample", images[3:], 2)]
    assert [(label, len(row)) for label, row in rows] == [("data", 3), ("prior sample", 2), ("prior sample", 2)]
    path = save_labelled_grid(tmp_path / "grid.png", rows, "VAE, MNIST, quick", column_labels=["a", "b", "c"])
    from PIL import Image
    width, height = Image.open(path).size
    assert width >= 3 * 30 and height >= 3 * 30  # one screen pixel per image pixel, labels beside


def test_bench_summary_renders(tmp_path):
    results = tmp_path / "results"
    compiled = compiled_steps.compiler_available()  # --compile_flow times one more case
    run_script("bench/bench_toy.py", "--device", "cpu", "--batch_size", "8", "--n_mc_px", "2", "--repeats", "1",
               *(["--compile_flow", "--warm_compile_cache"] if compiled else []),  # a rerun's compile
               "--summary", str(results / "toy_speed.json"))
    summary = json.loads((results / "toy_speed.json").read_text())
    metrics = [row["metric"] for row in summary["rows"]]
    assert metrics.count("ms per step") == 4 + compiled and metrics.count("x the ELBO step") == 3 + compiled
    assert "speed-up over the official code" not in metrics, "the official code was timed at batch 1000 only"
    assert summary["kind"] == "quick" and metrics.count("estimated minutes of 30000 iterations") == 4 + compiled
    assert_speed_rows(summary["rows"], ["ELBO (baseline, same networks)", "CyGen, jacnorm_lite_x (toy default)"])
    shutil.copy(REPO / "results" / "claims.json", results)
    main, appendix, _ = render_all(results, tmp_path)
    assert "| CyGen, jacnorm_x | toy | x the ELBO step |" in appendix
    assert re.search(r"\| toy CyGen step, eager \(lite compatibility\) \(batch 8, [^|]+\) \| [0-9.]+ ms "
                     r"\| not timed \|", main)


def test_read_curves_keeps_numeric_columns_and_blank_cells_as_nan(tmp_path):
    (tmp_path / "metrics.csv").write_text("step,phase,loss,accuracy\n1,elbo,2.5,\n2,cygen,nan,0.5\n")
    curves = read_curves(tmp_path)
    assert list(curves) == ["step", "loss", "accuracy"] and curves["step"] == [1.0, 2.0]
    assert curves["accuracy"][0] != curves["accuracy"][0] and curves["accuracy"][1] == 0.5


def test_run_labels_tell_runs_apart(tmp_path):
    assert run_labels([tmp_path / "a" / "run", tmp_path / "b" / "run"]) == ["a/run", "b/run"]
    assert run_labels([tmp_path / "only"]) == ["only"]


def test_plot_curves_script(tiny_runs, tmp_path):
    out = tmp_path / "curves.png"
    result = run_script("plot_curves.py", str(tiny_runs), "--out", str(out), "--metrics", "compatibility,nll_hm")
    assert out.stat().st_size > 0
    assert "| pinwheel-cygen_pt | 4 |" in result.stdout and "| pinwheel-vae | 2 |" in result.stdout
    wrong = run_script("plot_curves.py", str(tiny_runs), "--out", str(out), "--metrics", "nope", check=False)
    assert wrong.returncode == 1 and "no run logged ['nope']" in wrong.stderr
    empty = run_script("plot_curves.py", str(tmp_path), check=False)
    assert empty.returncode == 1 and "holds no metrics.csv" in empty.stderr
    several = run_script("plot_curves.py", str(tiny_runs), str(tiny_runs), check=False)
    assert several.returncode == 2 and "--out" in several.stderr


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def figures_shown(cells):
    return sum("image/png" in output.get("data", {}) for cell in cells for output in cell.outputs)


def test_committed_notebook_was_executed_clean():
    nbformat = pytest.importorskip("nbformat", reason="nbformat is in requirements.txt; pip install it")
    cells = code_cells(nbformat.read(NOTEBOOK, as_version=4))
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), "run all cells in order"
    assert not [output for cell in cells for output in cell.outputs if output.output_type == "error"]
    assert figures_shown(cells) == 2


def test_notebook_executes_headless_on_a_tiny_run(tiny_runs):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is in requirements.txt; pip install it")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is in requirements.txt; pip install it")
    pytest.importorskip("ipykernel", reason="ipykernel is in requirements.txt; pip install it")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    parameters.source = (f"RUN_PATHS = [{str(tiny_runs)!r}]\nMETRICS = None\nFOCUS = ['cygen_pt']\n"
                         "FOCUS_METRICS = ['compatibility', 'nll_hm']")
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    cells = code_cells(notebook)
    table = next(output["data"]["text/markdown"] for cell in cells for output in cell.outputs
                 if "text/markdown" in output.get("data", {}))
    assert "| pinwheel-cygen_pt | 4 |" in table and "| pinwheel-vae | 2 |" in table
    assert figures_shown(cells) == 2


def test_summarize_reports_mean_and_std_over_seed_folders(tiny_runs, tmp_path):
    """launch.py --seeds lays a run out as <data>-<name>/seed<S>: its rows become mean ± std over the seeds."""
    root = tmp_path / "toy_quick"
    for seed, offset in ((0, 0.0), (1, 2.0)):
        seed_dir = shutil.copytree(tiny_runs / "pinwheel-vae", root / "pinwheel-vae" / f"seed{seed}")
        rows = read_metrics(seed_dir, drop=())
        with open(seed_dir / "metrics.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({**row, "nll_hm": float(row["nll_hm"]) + offset} for row in rows)
    summary = summarize_into(tmp_path, root, "bash run_toy.sh --quick --seeds 0,1")
    rows = {row["metric"]: row["ours"] for row in summary["rows"]}
    nll = float(read_metrics(tiny_runs / "pinwheel-vae")[-1]["nll_hm"])
    assert rows["harmonic-mean NLL"] == f"{nll + 1:.4g} ± {2 ** 0.5:.2g} (2 seeds)"  # std of (x, x + 2)
    assert rows["compatibility, full norm"].endswith(" ± 0 (2 seeds)")
    assert sorted(summary["run_seconds"]) == ["pinwheel-vae/seed0", "pinwheel-vae/seed1"]
    assert [path.name for path in (tmp_path / "results" / "figures" / "toy_quick").iterdir()] == ["pinwheel-vae.png"]

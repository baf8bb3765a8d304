"""RESULTS.md is the rendering of results/ (staleness), the renderer's layout, the toy and speed summaries, and the
training-curve tools: plot_curves.py and the notebook, executed headless on a tiny run."""
import json
import shutil
import sys

import pytest

from evaluation import render_results, summarize_toy
from evaluation.render_results import load_summaries, render
from evaluation.summary import write_summary
from models import compiled_steps
from plot_curves import read_curves, run_labels
from tests.scripts import REPO, assert_speed_rows, read_metrics, run_script
from tests.test_examples import TINY_TOY

NOTEBOOK = REPO / "notebooks" / "training_curves.ipynb"


def test_results_md_is_the_rendering_of_results():
    assert (REPO / "RESULTS.md").read_text() == render(REPO / "results", REPO), (
        "RESULTS.md is stale: run python -m evaluation.render_results (and commit results/ with it)")


def summary_row(method, ours, paper=None, **extra):
    return {"method": method, "dataset": "mnist", "metric": "FID", "ours": ours, "paper": paper,
            "scale": "1k samples", **extra}


@pytest.fixture
def results_dir(tmp_path):
    """Summaries written in unsorted order, a notes file covering two of them, one summary without notes."""
    results = tmp_path / "results"
    write_summary(results / "zeta_full.json", experiment="Zeta at scale", kind="full", command="bash zeta.sh",
                  hardware="GPU X", rows=[summary_row("Zeta", 12.5, paper=11.0)])
    write_summary(results / "alpha_quick.json", experiment="Alpha, quick", kind="quick", hardware="CPU Y",
                  command="python a.py | tee log", rows=[summary_row("Alpha", 0.123456789),
                                                         summary_row("Alpha", "n/a", command="python b.py")])
    write_summary(results / "alpha.json", experiment="Alpha, speed", kind="quick", command="bench", hardware="CPU Y",
                  rows=[summary_row("Alpha step", 3)], notes="Timed under load.")
    (results / "alpha_notes.md").write_text("## Alpha section\n\nProse about alpha.\n")
    for figure in ("alpha_quick/curve.png", "alpha/b.png", "alpha/sub/a.png", "zeta/z.png"):
        (results / "figures" / figure).parent.mkdir(parents=True, exist_ok=True)
        (results / "figures" / figure).write_bytes(b"png")
    return results


def test_render_puts_quick_and_full_rows_apart_and_notes_with_their_summaries(results_dir):
    text = render(results_dir, results_dir.parent)
    quick, full = text.index("### Quick rows"), text.index("### Full-scale rows")
    table_rows = [line for line in text.splitlines() if line.startswith("| Alpha") or line.startswith("| Zeta")]
    assert table_rows == [
        "| Alpha step | mnist | FID | 3 | - | 1k samples | CPU Y | `bench` |",
        "| Alpha | mnist | FID | 0.1235 | - | 1k samples | CPU Y | `python a.py \\| tee log` |",
        "| Alpha | mnist | FID | n/a | - | 1k samples | CPU Y | `python b.py` |",
        "| Zeta | mnist | FID | 12.5 | 11 | 1k samples | GPU X | `bash zeta.sh` |"]
    assert quick < text.index("| Alpha step") < full < text.index("| Zeta")
    # alpha.json and alpha_quick.json share the section of alpha_notes.md; zeta_full.json gets its family's section.
    alpha, zeta = text.index("## Alpha section"), text.index("## Zeta at scale")
    assert alpha < text.index("`results/alpha.json` (quick): Alpha, speed") < text.index("Timed under load.") < zeta
    assert alpha < text.index("Figures: [alpha/b](results/figures/alpha/b.png), [alpha/sub/a](results/figures/alpha/"
                              "sub/a.png), [alpha_quick/curve](results/figures/alpha_quick/curve.png).") < zeta
    assert zeta < text.index("Figures: [zeta/z](results/figures/zeta/z.png).")
    assert text.count("Prose about alpha.") == 1
    assert render(results_dir, results_dir.parent) == text


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


def test_render_cli_checks_staleness(results_dir, monkeypatch):
    output = results_dir.parent / "RESULTS.md"
    arguments = ("--results", results_dir, "--output", output)
    assert "is stale" in run_main_in_process(render_results, monkeypatch, *arguments, "--check")
    assert run_main_in_process(render_results, monkeypatch, *arguments) is None
    assert output.read_text() == render(results_dir, output.parent)
    assert run_main_in_process(render_results, monkeypatch, *arguments, "--check") is None


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """A finished CyGen(PT) run and a VAE run of main_toy.py, laid out as run_toy.sh does (<data>-<name>)."""
    root = tmp_path_factory.mktemp("runs") / "toy_quick"
    run_script("main_toy.py", *TINY_TOY, "--method", "cygen", "--pretr_method", "elbo", "--pretr_niter", "2",
               "--run_dir", str(root / "pinwheel-cygen_pt"))
    run_script("main_toy.py", *TINY_TOY, "--method", "elbo", "--niters", "2", "--run_dir", str(root / "pinwheel-vae"))
    return root


def test_summarize_toy_writes_rows_with_the_pretraining_values(tiny_runs, tmp_path, monkeypatch):
    results = tmp_path / "results"
    assert run_main_in_process(summarize_toy, monkeypatch, tiny_runs, "--results", results, "--copy_figures") is None
    summary = json.loads((results / "toy_quick.json").read_text())  # the root's name ends in _quick
    assert summary["kind"] == "quick" and summary["command"] == "bash run_toy.sh --quick"
    rows = {(row["method"], row["metric"]): row for row in summary["rows"]}
    assert len(rows) == 5 + 3
    pretrained = rows["CyGen(PT)", "compatibility, lite (J-weighted), after ELBO pretraining (step 2)"]
    assert pretrained["paper"].startswith("~1.6e4") and pretrained["scale"] == "4 iterations, batch 32"
    assert pretrained["ours"] == float(read_metrics(tiny_runs / "pinwheel-cygen_pt")[0]["compatibility_lite"])
    assert rows["VAE (ELBO)", "harmonic-mean NLL"]["paper"] is None
    assert sorted(path.name for path in (results / "figures" / "toy_quick").iterdir()) == [
        "pinwheel-cygen_pt.png", "pinwheel-vae.png"]
    command = "TOY_RUNS='cygen_pt vae' bash run_toy.sh --compile_flow true"  # run_toy.sh passes what it was run as
    run_main_in_process(summarize_toy, monkeypatch, tiny_runs, "--results", results, "--command", command)
    assert json.loads((results / "toy_quick.json").read_text())["command"] == command


def test_summarize_toy_refuses_an_unfinished_run(tiny_runs, tmp_path, monkeypatch):
    unfinished = shutil.copytree(tiny_runs / "pinwheel-vae", tmp_path / "toy" / "pinwheel-vae")
    config = json.loads((unfinished / "config.json").read_text())
    config["flags"]["niters"] = 8
    (unfinished / "config.json").write_text(json.dumps(config))
    message = run_main_in_process(summarize_toy, monkeypatch, unfinished.parent, "--results", tmp_path / "results")
    assert "pinwheel-vae stopped at step 2 of 8: finish it first" in message


def test_bench_summary_renders(tmp_path):
    results = tmp_path / "results"
    compiled = compiled_steps.compiler_available()  # --compile_flow times one more case
    run_script("bench/bench_toy.py", "--device", "cpu", "--batch_size", "8", "--n_mc_px", "2", "--repeats", "1",
               *(["--compile_flow"] if compiled else []), "--summary", str(results / "toy_speed.json"))
    summary = json.loads((results / "toy_speed.json").read_text())
    metrics = [row["metric"] for row in summary["rows"]]
    assert metrics.count("ms per step") == 4 + compiled and metrics.count("x the ELBO step") == 3 + compiled
    assert "speed-up over the official code" not in metrics, "the official code was timed at batch 1000 only"
    assert summary["kind"] == "quick" and metrics.count("estimated minutes of 30000 iterations") == 4 + compiled
    assert_speed_rows(summary["rows"], ["ELBO (baseline, same networks)", "CyGen, jacnorm_lite_x (toy default)"])
    assert "| CyGen, jacnorm_x | toy | x the ELBO step |" in render(results, tmp_path)


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

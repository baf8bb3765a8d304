"""Package basics: `pip install -e .` in a fresh venv, offline (nothing downloaded: --no-deps, --no-build-isolation,
the venv sees this interpreter's packages); pyproject's pins are requirements.txt's; LICENSE and CITATION.cff."""
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from tests.scripts import REPO

PACKAGES = ("data", "evaluation", "models", "objectives", "sampling", "training")


def pins(lines):
    return dict(re.match(r"([A-Za-z0-9_.-]+)==(\S+)$", line.strip()).groups() for line in lines
                if line.strip() and not line.strip().startswith("#"))


def test_pyproject_pins_are_requirements_txt(tmp_path):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *(dependency for group in project["optional-dependencies"].values()
                                            for dependency in group)]
    assert pins(declared) == pins((REPO / "requirements.txt").read_text().splitlines())
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(setuptools["packages"]) == set(PACKAGES)
    assert all((REPO / name / "__init__.py").is_file() for name in setuptools["packages"])
    scripts = {path.stem for path in REPO.glob("*.py")}
    assert set(setuptools["py-modules"]) == scripts  # every top-level module, so `import main_toy` works too


def test_editable_install_in_a_fresh_venv_offline(tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(".git", "runs", "datasets", "__pycache__", "build",
                                                                  "*.egg-info", "results", "notebooks"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=60)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                              "--no-index", "--disable-pip-version-check", "--quiet", "-e", str(checkout)],
                             capture_output=True, text=True, timeout=120)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = ("import compat, importlib; "
             f"print('\\n'.join(importlib.import_module(name).__file__ for name in {[*PACKAGES, 'compat']!r}))")
    found = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr[-3000:]
    assert all(line.startswith(str(checkout)) for line in found.stdout.split()), found.stdout
    # the interpreter of the tests does not see the venv's install
    assert not any(str(checkout) in path for path in sys.path)


def test_license_and_citation():
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n\nCopyright (c) 2026 the contributors of this "
                                                     "repository")
    yaml = pytest.importorskip("yaml")
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    titles = {reference["title"]: reference["year"] for reference in citation["references"]}
    assert titles == {"On the Generative Utility of Cyclic Conditionals": 2021,
                      "Symmetric Equilibrium Learning of VAEs": 2024,
                      "Auto-Encoding Variational Bayes": 2014,
                      "Learning Structured Output Representation using Deep Conditional Generative Models": 2015,
                      "The Information Autoencoding Family: A Lagrangian Perspective on Latent Variable Generative "
                      "Models": 2018}
    assert all(reference["authors"] and reference["collection-title"] for reference in citation["references"])

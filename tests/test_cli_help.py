"""Every flag of every script explains itself in --help: a one-line help beyond its default, the fixed sets of values
shown as choices, and the docstrings' example lines kept apart (tests/walk_parsers.py walks the parsers)."""
import ast
import json
import re
import subprocess
import sys

import pytest

from tests.scripts import REPO
from tests.walk_parsers import scripts

# Scripts whose CHOICES dict names the flags with a fixed set of values
FIXED_SETS = ("main_image.py", "main_toy.py", "main_cvae.py", "main_sym.py")


@pytest.fixture(scope="module")
def walked():
    result = subprocess.run([sys.executable, str(REPO / "tests" / "walk_parsers.py")], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout)
    return found.pop("CHOICES"), found


@pytest.fixture(scope="module")
def parsers(walked):
    return walked[1]


def explanation(help_text):
    """What a help text says beyond its default."""
    text = (help_text or "").replace("%(default)s", "D")
    return re.sub(r"\(default: [^)]*\)", "", text).strip(" ()")


def test_every_script_is_walked(parsers):
    expected = {"compute_gen_fid.py", "generate.py", "launch.py", "plot_curves.py", "main_image.py", "main_toy.py",
                "main_sym.py", "main_elbo.py", "main_cvae.py", "main_lagvae.py", "evaluation/fid.py",
                "evaluation/render_results.py", "evaluation/summarize.py", "evaluation/lagvae.py",
                "bench/bench_toy.py", "bench/bench_image.py", "bench/gpu_check.py"}
    assert expected <= set(parsers) and set(parsers) == set(scripts())
    assert "launch.py run" in [parser["prog"] for parser in parsers["launch.py"]]  # built after the first parse
    assert "lagvae.py elbo" in [parser["prog"] for parser in parsers["evaluation/lagvae.py"]]  # a subcommand


def test_every_flag_has_a_help_line(parsers):
    missing = [f"{script} ({parser['prog']}): {option['flags'][0]}" for script, found in parsers.items()
               for parser in found for option in parser["options"] if not explanation(option["help"])]
    assert not missing, "flags without a help text:\n" + "\n".join(missing)
    long_lines = [f"{script}: {option['flags'][0]}" for script, found in parsers.items() for parser in found
                  for option in parser["options"] if "\n" in (option["help"] or "")]
    assert not long_lines


def test_fixed_sets_are_choices_shown_in_help(walked):
    choices, parsers = walked
    assert set(FIXED_SETS) <= set(choices)
    for script, fixed in choices.items():
        options = {option["flags"][0]: option for option in parsers[script][0]["options"]}
        for name, allowed in fixed.items():
            assert options[f"--{name}"]["choices"] == allowed, (script, name)
            assert "{" + ",".join(allowed) + "}" in parsers[script][0]["help"], (script, name)
        assert options["--precision"]["choices"], script
    lagvae = {option["flags"][0]: option for option in parsers["main_lagvae.py"][0]["options"]}
    assert lagvae["--method"]["choices"] == ["infovae", "lagvae"]


def test_docstring_examples_keep_their_lines(parsers):
    """A backslash at the end of a docstring line (a shell continuation in an example) must be written \\\\: a
    single one joins the two lines, and --help then runs two examples together (main_sym.py did)."""
    joined = []
    for script in parsers:
        source = (REPO / script).read_text()
        docstring = ast.parse(source).body[0].value
        text = ast.get_source_segment(source, docstring)
        if text[:1] in "rR":
            continue
        joined += [f"{script}: {line.strip()}" for line in text.splitlines()
                   if (len(line) - len(line.rstrip("\\"))) % 2 == 1]
    assert not joined, "docstring lines that join the next one:\n" + "\n".join(joined)
    for script, found in parsers.items():
        top = found[0]
        if top["description"] and "\n" in top["description"].strip():
            assert top["formatter"] in ("RawDescriptionHelpFormatter", "RawTextHelpFormatter"), script
            for line in top["description"].strip().splitlines():
                assert line.rstrip() in top["help"], (script, line)
    sym_help = next(parser["help"] for parser in parsers["main_sym.py"])
    assert not any(line.count("python main_sym.py") > 1 for line in sym_help.splitlines())

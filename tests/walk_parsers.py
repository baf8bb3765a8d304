"""Every argparse parser of every script, as JSON on stdout: python tests/walk_parsers.py [SCRIPT ...].

Each script (a .py of the repo root, bench/ or evaluation/ that runs as __main__) is run in this process with --help
(launch.py also with `run --help`), ArgumentParser.parse_known_args recording each parser it is called on; the
subcommand parsers of those are walked too. Per parser: its prog, formatter class, description, formatted help and
every option's flags, help and choices; under "CHOICES", the CHOICES dict (fixed sets of values) of every root
script that has one. tests/test_cli_help.py runs it in a subprocess (the scripts' module-level
code stays out of the test process).
"""
import argparse
import importlib
import json
import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Extra argument lists a script is run with, beside --help, to reach parsers built later (launch.py run's).
EXTRA_ARGV = {"launch.py": [["run", "--help"]]}


def scripts():
    """The repo's command-line scripts: every .py at the root, in bench/ and in evaluation/ with a __main__ block
    that parses arguments with argparse."""
    found = []
    for folder in (REPO, REPO / "bench", REPO / "evaluation"):
        for path in sorted(folder.glob("*.py")):
            text = path.read_text()
            if '__name__ == "__main__"' in text and "argparse" in text + _imported_parsers(text):
                found.append(str(path.relative_to(REPO)))
    return found


def _imported_parsers(text):
    # bench scripts build their parser with bench.timing.bench_parser; main_elbo.py with main_sym's train()
    return "argparse" if "bench_parser" in text or "from main_sym import" in text else ""


def describe(parser):
    options = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            continue
        options.append({"flags": action.option_strings or [action.dest], "help": action.help,
                        "choices": list(map(str, action.choices)) if action.choices is not None else None,
                        "takes_value": action.nargs != 0})
    return {"prog": parser.prog, "formatter": parser.formatter_class.__name__, "description": parser.description,
            "help": parser.format_help(), "options": options}


def subparsers(parser):
    return [sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for sub in dict.fromkeys(action.choices.values())]


def walk(script):
    seen = []
    original = argparse.ArgumentParser.parse_known_args

    def recording(self, args=None, namespace=None):
        if self not in seen:
            seen.append(self)
        return original(self, args, namespace)

    argparse.ArgumentParser.parse_known_args = recording
    try:
        for argv in [["--help"], *EXTRA_ARGV.get(script, [])]:
            sys.argv = [str(REPO / script), *argv]
            try:
                runpy.run_path(str(REPO / script), run_name="__main__")
            except SystemExit:
                pass
    finally:
        argparse.ArgumentParser.parse_known_args = original
    parsers, queue = [], list(seen)
    while queue:
        parser = queue.pop(0)
        if parser not in parsers:
            parsers.append(parser)
            queue += subparsers(parser)
    return [describe(parser) for parser in parsers]


def main():
    sys.path.insert(0, str(REPO))
    import compat  # noqa: F401  (before torchvision)
    chosen = sys.argv[1:] or scripts()
    result = {}
    real_stdout = sys.stdout
    for script in chosen:
        sys.stdout = open("/dev/null", "w")  # --help prints
        try:
            result[script] = walk(script)
        finally:
            sys.stdout.close()
            sys.stdout = real_stdout
    result["CHOICES"] = {}
    for script in chosen:
        if "/" not in script:
            module = importlib.import_module(script.removesuffix(".py"))
            if isinstance(getattr(module, "CHOICES", None), dict):
                result["CHOICES"][script] = {name: list(map(str, values)) for name, values in module.CHOICES.items()}
    json.dump(result, real_stdout)


if __name__ == "__main__":
    main()

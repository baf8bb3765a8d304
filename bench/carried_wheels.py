"""Unpack the carried pure-Python wheels whose packages this Python lacks; print the folder to put on PYTHONPATH.

    python bench/carried_wheels.py WHEEL_DIR SITE_DIR

For bench/gpu_check.sh on a machine without a package registry: standard library only (it runs before any
dependency is importable), and a package the machine already has is never shadowed by a carried one.
"""
import importlib.util
import sys
import zipfile
from pathlib import Path


def top_level_packages(wheel):
    """The importable names a wheel installs: its first path components, less metadata and data folders."""
    names = {Path(name).parts[0] for name in wheel.namelist()}
    return sorted(name.removesuffix(".py") for name in names if not name.endswith((".dist-info", ".data")))


def unpack_missing(wheel_dir, site_dir):
    site_dir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(site_dir))  # a package unpacked on an earlier run counts as present
    for path in sorted(wheel_dir.glob("*.whl")):
        with zipfile.ZipFile(path) as wheel:
            missing = [name for name in top_level_packages(wheel) if importlib.util.find_spec(name) is None]
            if missing:
                wheel.extractall(site_dir)
                print(f"carried_wheels: {path.name} unpacked for {', '.join(missing)}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    wheels, site = Path(sys.argv[1]), Path(sys.argv[2]).resolve()
    if wheels.is_dir():
        unpack_missing(wheels, site)
    print(site)

"""The package's layering (DESIGN "Layout"): import-linter's contracts in pyproject.toml, with
function-level imports included, and no import cycle between any two modules."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_linter_contracts_are_kept():
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("lint-imports")),
            "--config",
            str(ROOT / "pyproject.toml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "1 kept, 0 broken" in out.stdout


def test_no_module_imports_a_module_that_imports_it_back():
    import grimp

    graph = grimp.build_graph("tailgraph")
    cycles = sorted(
        {
            tuple(sorted((m, n)))
            for m in graph.modules
            for n in graph.find_modules_directly_imported_by(m)
            if graph.find_shortest_chain(n, m)
        }
    )
    assert cycles == []


def test_the_layers_contract_can_fail(tmp_path):
    """A module of a lower layer that imports a higher one breaks the contract."""
    import shutil

    pkg = tmp_path / "tailgraph"
    shutil.copytree(ROOT / "tailgraph", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    bad = pkg / "data" / "vg.py"
    bad.write_text(
        bad.read_text() + "\n\ndef _up():\n    from tailgraph.engine import module  # noqa: F401\n"
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("lint-imports")),
            "--config",
            str(tmp_path / "pyproject.toml"),
            "--no-cache",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode != 0 and "tailgraph.data.vg -> tailgraph.engine.module" in out.stdout, (
        out.stdout[-2000:]
    )

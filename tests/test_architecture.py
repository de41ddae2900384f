"""The layers hold: the import contract (.importlinter) is live, and `nst --help` stays light."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT), "--no-cache", str(tree / ".importlinter")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )


def _copy_tree(tmp_path: Path) -> Path:
    """The package and the hosts under their installed names, beside the contract file."""
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.safetensors", "*-samples")
    shutil.copytree(ROOT / "nst_plugin", tree / "nst_plugin", ignore=ignore)
    shutil.copytree(ROOT / "hosts", tree / "nst_plugin_hosts", ignore=ignore)
    shutil.copy(ROOT / ".importlinter", tree / ".importlinter")
    return tree


def test_the_contract_holds_and_catches_a_back_arrow(tmp_path):
    tree = _copy_tree(tmp_path)
    clean = _lint(tree)
    assert clean.returncode == 0, clean.stdout
    # one import pointing the wrong way: the engine reaching up into the task layer
    losses = tree / "nst_plugin" / "engine" / "losses.py"
    losses.write_text(losses.read_text() + "\nfrom ..task import Task  # noqa\n")
    broken = _lint(tree)
    assert broken.returncode != 0
    assert "nst_plugin.engine.losses -> nst_plugin.task" in broken.stdout


def test_a_host_reaching_past_the_public_api_is_caught(tmp_path):
    tree = _copy_tree(tmp_path)
    app = tree / "nst_plugin_hosts" / "gradio_app" / "commands.py"
    app.write_text(app.read_text() + "\nfrom nst_plugin.engine import fast  # noqa\n")
    broken = _lint(tree)
    assert broken.returncode != 0 and "not allowed to import nst_plugin.engine" in broken.stdout


def test_nst_help_imports_no_torch():
    code = (
        "import sys\n"
        "from nst_plugin.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules, 'gradio' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pipeline" in done.stdout and "demo" in done.stdout  # the hosts' commands are there
    assert done.stdout.strip().splitlines()[-1] == "False False"


def test_no_import_cycle_in_the_package():
    import grimp

    graph = grimp.build_graph("nst_plugin", cache_dir=None)
    cycles = [
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if graph.chain_exists(importer=b, imported=a)
    ]
    assert cycles == []

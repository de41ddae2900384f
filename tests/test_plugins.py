"""The plugin layer as hosts and third-party plugin authors use it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import nst_plugin as nst
from nst_plugin import plugins
from nst_plugin.manifest import build_manifest, render_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_builtins_register_tasks_methods_and_encoders():
    assert "nst.style_transfer" in nst.list_tasks()
    assert {"optimization", "adain", "fast"} <= set(nst.list_methods())
    assert "vgg19" in plugins.encoders()
    plugins.manager().check_pending()


def test_hooks_called_as_a_host_would():
    seen = []
    plugins.manager().hook.register_methods(register=seen.append)
    assert {spec.name for spec in seen} >= {"optimization", "adain", "fast"}


def test_three_lines_for_a_host(photo, art, random_decoder_file):
    task = nst.create_task(
        "nst.style_transfer", method="adain", size=0, decoder=str(random_decoder_file)
    )
    result = task.run({"content": photo, "styles": [art]})
    assert result["image"].rgb.shape == photo.rgb.shape


def test_third_party_method_by_entry_point(third_party_plugin, photo, art):
    assert "invert" in nst.list_methods()
    params = {p["name"]: p for p in nst.list_tasks()["nst.style_transfer"]["params"]}
    assert params["invert_strength"]["methods"] == ["invert"]
    assert "invert" in params["method"]["choices"]
    task = nst.create_task("nst.style_transfer", method="invert", size=0)
    out = task.run({"content": photo, "styles": [art]})["image"]
    assert (out.rgb - (1 - photo.rgb)).abs().max() < 1e-6


def test_nst_plugin_list_shows_third_party_method(third_party_plugin):
    env = {
        **os.environ,
        "PYTHONPATH": f"{third_party_plugin}{os.pathsep}{ROOT}",
        plugins.ENV_VAR: "invert",
    }
    out = subprocess.run(
        [sys.executable, "-m", "nst_plugin.cli", "plugin", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "invert: test method: inverts the content" in out
    assert "nst.style_transfer" in out


def test_broken_plugin_is_reported_by_name_not_crashing(tmp_path, monkeypatch):
    (tmp_path / "nst_broken.py").write_text("raise ImportError('missing dependency foo')\n")
    dist = tmp_path / "nst_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nst-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nst_plugin]\nbroken = nst_broken\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV_VAR, "broken")
    plugins.reset()
    with pytest.warns(UserWarning, match="plugin 'broken'.*missing dependency foo"):
        methods = plugins.methods()
    assert "adain" in methods
    assert any("broken" in p for p in plugins.load_problems())


def test_plugin_registering_garbage_is_rejected(tmp_path, monkeypatch):
    (tmp_path / "nst_garbage.py").write_text(
        "import nst_plugin as nst\n@nst.hookimpl\ndef register_methods(register):\n"
        "    register('not a spec')\n"
    )
    dist = tmp_path / "nst_garbage-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nst-garbage\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nst_plugin]\ngarbage = nst_garbage\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV_VAR, "garbage")
    plugins.reset()
    with pytest.warns(UserWarning, match="plugin 'garbage'.*not a MethodSpec"):
        assert set(plugins.methods()) == {"optimization", "adain", "fast"}


def test_plugin_yaml_matches_the_code():
    assert (ROOT / "plugin.yaml").read_text() == render_manifest()


def test_manifest_round_trip_and_hosts_read_it_without_the_package():
    text = render_manifest()
    data = yaml.safe_load(text)
    assert data == build_manifest()
    task = data["tasks"][0]
    assert task["id"] == "nst.style_transfer"
    assert [p["name"] for p in task["inputs"]] == [
        "content",
        "styles",
        "mask",
        "init",
        "previous",
        "previous_weight",
    ]
    assert task["inputs"][1]["multiple"] is True
    params = {p["name"]: p for p in task["params"]}
    assert params["alpha"]["min"] == 0.0 and params["alpha"]["methods"] == ["adain"]
    # A host reads plugin.yaml with neither torch nor this package importable: the file must be
    # plain data (no Python tags, no tensors) that says everything a host builds controls from.
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None
        sys.modules["nst_plugin"] = None
        import yaml
        data = yaml.safe_load(open(sys.argv[1]))
        types = {"int", "float", "bool", "str", "choice", "floats"}
        for task in data["tasks"]:
            for param in task["params"]:
                assert param["type"] in types, param
                assert param["type"] != "choice" or isinstance(param["choices"], list), param
        print(len(data["tasks"]), len(data["methods"]))
    """)
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "plugin.yaml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(len(data["tasks"])), str(len(data["methods"]))]

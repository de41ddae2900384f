"""scripts/train_presets.py: a preset's recipe runs phase by phase, keyed by its training time."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

import nst_plugin.train_fast
from nst_plugin.engine import fast
from nst_plugin.engine.style_models import load_style_model
from nst_plugin.engine.training import FastSettings
from nst_plugin.images import Picture, save_image
from tests.conftest import make_image

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_presets.py"
TINY = {"crop": 64, "batch_size": 2, "width": 4, "blocks": 1, "margin": 0}


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_presets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = _load_script()
    # the first phase ends after its first step; the second runs to --steps
    recipe = [(1e-9, {**TINY, "style_weight": 1.0}), (1.0, {**TINY, "style_weight": 2.0})]
    monkeypatch.setattr(module, "RECIPES", {"composition_vii": recipe})
    monkeypatch.setattr(module, "FROM_ADAIN", set())
    monkeypatch.setattr(nst_plugin.train_fast, "DEFAULT_STYLE_SIZE", 64)
    return module


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    styles, photos = tmp_path / "styles", tmp_path / "photos"
    styles.mkdir()
    photos.mkdir()
    save_image(Picture(make_image(64, 64, "art", seed=3)), styles / "kandinsky_composition_vii.jpg")
    for i in range(2):
        save_image(Picture(make_image(72, 80, "photo", seed=i)), photos / f"p{i}.png")
    return styles, photos


def _main(script: ModuleType, monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.setattr("sys.argv", ["train_presets.py", *args])
    script.main()


def test_a_recipe_trains_phase_by_phase_and_picks_up_where_the_model_is(
    script, folders, tmp_path, monkeypatch, capsys
):
    styles, photos = folders
    work = tmp_path / "work"
    args = ["--styles", str(styles), "--content-dir", str(photos), "--work", str(work)]
    _main(script, monkeypatch, *args, "--only", "composition_vii", "--recipe", "--steps", "3")
    model = work / "composition_vii.safetensors"
    _, _, info, _ = load_style_model(model)
    assert info.state["step"] == 3 and info.settings["style_weight"] == 2.0
    log = [json.loads(line) for line in model.with_suffix(".log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 1 and log[-1]["step"] == 3  # the first phase stopped after a step
    before = model.read_bytes()
    _main(script, monkeypatch, *args, "--only", "composition_vii", "--recipe", "--steps", "4")
    _, _, info, _ = load_style_model(model)
    assert info.state["step"] == 4 and info.settings["style_weight"] == 2.0
    assert model.read_bytes() != before
    monkeypatch.setitem(script.RECIPES, "composition_vii", [(1e-9, {**TINY})])
    _main(script, monkeypatch, *args, "--only", "composition_vii", "--recipe")
    assert "composition_vii: recipe done" in capsys.readouterr().out
    assert load_style_model(model)[2].state["step"] == 4  # nothing left to train


def test_a_recipe_refuses_setting_flags_and_presets_without_one(
    script, folders, tmp_path, monkeypatch, capsys
):
    styles, photos = folders
    args = ["--styles", str(styles), "--content-dir", str(photos), "--work", str(tmp_path)]
    with pytest.raises(SystemExit):
        _main(script, monkeypatch, *args, "--recipe", "--only", "composition_vii", "--crop", "64")
    assert "--recipe sets the settings itself: drop ['crop']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _main(script, monkeypatch, *args, "--recipe", "--only", "the_wave")
    assert "no recipe for the_wave" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.safetensors"))


def test_the_shipped_recipes_fit_the_budget_and_name_real_settings():
    recipes = _load_script().RECIPES
    assert recipes
    for name, phases in recipes.items():
        ends = [until for until, _ in phases]
        assert ends == sorted(set(ends)) and ends[-1] <= 2.0, name  # a preset's 2-hour budget
        for _, settings in phases:
            FastSettings(**settings)  # a misspelt setting would fail here, not hours into a run


def test_a_recipe_from_our_adain_starts_there_and_tunes_the_moments(
    script, folders, tmp_path, monkeypatch
):
    styles, photos = folders
    udnie = _load_script().RECIPES["udnie"][-1][1]  # the shipped recipe, moments only
    tuned = {**udnie, "crop": 64, "batch_size": 2, "margin": 0}
    monkeypatch.setattr(script, "RECIPES", {"composition_vii": [(1.0, tuned)]})
    monkeypatch.setattr(script, "FROM_ADAIN", {"composition_vii"})
    work = tmp_path / "work"
    args = ["--styles", str(styles), "--content-dir", str(photos), "--work", str(work)]
    _main(script, monkeypatch, *args, "--only", "composition_vii", "--recipe", "--steps", "2")
    net, config, info, _ = load_style_model(work / "composition_vii.safetensors")
    assert isinstance(net, fast.AdaINPreset) and config.lite_widths
    assert info.state["step"] == 2 and info.settings["moments_only"] is True


def test_the_first_preset_warm_starts_only_presets_of_its_shape(
    script, folders, tmp_path, monkeypatch, capsys
):
    """A preset of another width starts from scratch instead of failing on the first one's
    weights; one of the same shape starts from them."""
    styles, photos = folders
    for painting in ("van_gogh_starry_night.jpg", "munch_the_scream.jpg"):
        save_image(Picture(make_image(64, 64, "art", seed=4)), styles / painting)
    work = tmp_path / "work"
    args = ["--styles", str(styles), "--content-dir", str(photos), "--work", str(work)]
    _main(script, monkeypatch, *args, "--only", "the_scream", "--steps", "1",
          *_flags(TINY))  # fmt: skip
    _main(script, monkeypatch, *args, "--only", "starry_night", "--steps", "1",
          *_flags({**TINY, "width": 2}))  # fmt: skip
    _main(script, monkeypatch, *args, "--only", "composition_vii", "--steps", "1",
          *_flags(TINY))  # fmt: skip
    out = capsys.readouterr().out
    assert "== the_scream: init None" in out and "== starry_night: init None" in out
    assert f"== composition_vii: init {work / 'the_scream.safetensors'}" in out
    assert load_style_model(work / "starry_night.safetensors")[1].width == 2


def _flags(settings: dict[str, int]) -> list[str]:
    return [a for k, v in settings.items() for a in (f"--{k.replace('_', '-')}", str(v))]

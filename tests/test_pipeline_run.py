"""Running pipelines as users do: batches with bad files, resuming, skipping, plugins, the CLI."""

from __future__ import annotations

import io
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from nst_plugin import plugins
from nst_plugin.cli import main
from nst_plugin.default_plugins import image_tasks
from nst_plugin.images import Picture, load_image, save_image
from nst_plugin_hosts.pipeline import TqdmReporter, describe_plan, load_pipeline, run_pipeline
from tests.conftest import make_image

ROOT = Path(__file__).resolve().parents[1]

PIPELINE = """
    vars:
      photos: photos
      decoder: ""
    steps:
      - id: stylize
        task: nst.style_transfer
        params: {method: adain, size: 0, decoder: "${decoder}"}
        inputs:
          content: ${photos}
          styles: style.png
      - id: save
        task: image.save
        params: {name: "{stem}_adain.{ext}"}
        inputs: {image: stylize.image}
      - id: sheet
        task: image.compare
        inputs: {images: [style.png, stylize.image]}
      - id: save_sheet
        task: image.save
        params: {folder: sheets, name: "{stem}.jpg", format: jpg}
        inputs: {image: sheet.image}
"""


@pytest.fixture
def ws(tmp_path: Path, random_decoder_file: Path) -> Path:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, name in enumerate(("a", "b", "c")):
        save_image(Picture(make_image(24 + 8 * i, 32, "photo", i)), photos / f"{name}.png")
    save_image(Picture(make_image(32, 32, "art", 5)), tmp_path / "style.png")
    text = textwrap.dedent(PIPELINE).replace('decoder: ""', f"decoder: {random_decoder_file}")
    (tmp_path / "p.yaml").write_text(text)
    return tmp_path


def mtimes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()
    }


def test_batch_with_a_corrupt_input_keeps_going_and_overwrites_nothing(ws):
    (ws / "photos" / "c.png").unlink()
    (ws / "photos" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n but truncated")
    out = ws / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    summary = run_pipeline(load_pipeline(ws / "p.yaml"))
    assert summary.exit_code == 1
    assert summary.count("done") == 1
    (failure,) = summary.failures
    assert failure.item.stem == "b" and "step 'stylize'" in failure.error
    assert "cannot read image" in failure.error
    assert sorted(mtimes(out)) == ["a_adain.png", "notes.txt", "sheets/a.jpg"]
    assert (out / "notes.txt").read_text() == "mine"
    assert load_image(out / "a_adain.png").size == (32, 24)
    assert "failed: b.png: step 'stylize'" in summary.text()
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]

    # Run again: the good item is up to date and left alone, the bad one is reported again.
    before = mtimes(out)
    summary = run_pipeline(load_pipeline(ws / "p.yaml"))
    assert (summary.count("skipped"), len(summary.failures)) == (1, 1)
    assert mtimes(out) == before


def test_interrupted_batch_resumes_without_redoing_work(ws):
    out = ws / "out"

    def stop_after_first_item() -> bool:
        return (out / "sheets" / "a.jpg").exists()

    summary = run_pipeline(load_pipeline(ws / "p.yaml"), should_stop=stop_after_first_item)
    assert summary.interrupted and summary.exit_code == 130
    assert sorted(mtimes(out)) == ["a_adain.png", "sheets/a.jpg"]
    assert "run again to resume" in summary.text()
    first = mtimes(out)

    summary = run_pipeline(load_pipeline(ws / "p.yaml"))
    assert (summary.count("skipped"), summary.count("done"), summary.exit_code) == (1, 2, 0)
    after = mtimes(out)
    assert len(after) == 6
    assert {k: after[k] for k in first} == first


def test_half_written_item_finishes_only_what_is_missing(ws):
    pipeline = load_pipeline(ws / "p.yaml", overrides=["photos=photos/a.png"])
    assert run_pipeline(pipeline).count("done") == 1
    (ws / "out" / "sheets" / "a.jpg").unlink()
    kept = (ws / "out" / "a_adain.png").stat().st_mtime_ns
    summary = run_pipeline(load_pipeline(ws / "p.yaml", overrides=["photos=photos/a.png"]))
    assert summary.results[0].written == [(ws / "out" / "sheets" / "a.jpg").resolve()]
    assert (ws / "out" / "a_adain.png").stat().st_mtime_ns == kept


def test_outputs_older_than_inputs_are_kept_unless_overwrite_and_force_redoes(ws):
    for name in ("b.png", "c.png"):
        (ws / "photos" / name).unlink()
    assert run_pipeline(load_pipeline(ws / "p.yaml")).exit_code == 0
    out = ws / "out" / "a_adain.png"
    old = out.stat().st_mtime_ns - 10_000_000_000
    os.utime(out, ns=(old, old))  # the photo is now newer than its result
    summary = run_pipeline(load_pipeline(ws / "p.yaml"))
    assert "older than its inputs; pass --overwrite" in summary.failures[0].error
    assert out.stat().st_mtime_ns == old
    summary = run_pipeline(load_pipeline(ws / "p.yaml"), overwrite=True)
    assert summary.count("done") == 1 and out.stat().st_mtime_ns > old
    before = mtimes(ws / "out")
    summary = run_pipeline(load_pipeline(ws / "p.yaml"), force=True)
    assert summary.count("done") == 1
    assert all(mtimes(ws / "out")[k] >= v for k, v in before.items())


def test_fail_fast_stops_at_the_first_failure(ws):
    (ws / "photos" / "a.png").write_text("not an image")
    summary = run_pipeline(load_pipeline(ws / "p.yaml"), fail_fast=True)
    assert [r.status for r in summary.results] == ["failed"]
    assert "1 failed, 2 not run" in summary.text() and "--fail-fast" in summary.text()


def test_shared_inputs_are_loaded_once_and_tasks_built_once(ws, monkeypatch):
    calls: list[str] = []
    original = image_tasks.LoadImageTask._run

    def counting(self, inputs, on_progress, should_stop):
        calls.append(Path(inputs["path"]).name)
        return original(self, inputs, on_progress, should_stop)

    monkeypatch.setattr(image_tasks.LoadImageTask, "_run", counting)
    pipeline = load_pipeline(ws / "p.yaml")
    task = pipeline.steps["stylize"].task
    summary = run_pipeline(pipeline)
    assert summary.count("done") == 3
    assert sorted(calls) == ["a.png", "b.png", "c.png", "style.png"]
    assert pipeline.steps["stylize"].task is task


def test_dry_run_prints_the_plan_and_writes_nothing(ws, capsys):
    assert main(["pipeline", "run", str(ws / "p.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1. stylize: nst.style_transfer method='adain'" in out
    assert "content <- photos (batch, 3 files)" in out
    assert "save_sheet -> sheets/c.jpg (write)" in out
    assert not (ws / "out").exists()
    assert "(write)" in describe_plan(load_pipeline(ws / "p.yaml"))


def test_cli_run_with_set_and_out_and_progress(ws, capsys, random_decoder_file):
    results = ws / "results"
    sets = ["--set", "photos=photos/c.png", "--set", "stylize.alpha=0.5"]
    code = main(["pipeline", "run", str(ws / "p.yaml"), "--out", str(results), "--quiet", *sets])
    assert code == 0
    assert sorted(mtimes(results)) == ["c_adain.png", "sheets/c.jpg"]
    assert "1 done" in capsys.readouterr().out
    stream = io.StringIO()
    summary = run_pipeline(
        load_pipeline(ws / "p.yaml", out=results), force=True, reporter=TqdmReporter(stream)
    )
    assert summary.exit_code == 0
    assert "items" in stream.getvalue() and "3/3" in stream.getvalue()


def test_cli_reports_bad_input_without_traceback(ws, capsys):
    (ws / "photos" / "a.png").write_text("broken")
    code = main(["pipeline", "run", str(ws / "p.yaml"), "--quiet", "--fail-fast"])
    err = capsys.readouterr().err
    assert code == 1 and "failed: a.png" in err and "Traceback" not in err


@pytest.fixture
def third_party_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task installed as users install one: a module plus a dist-info with an entry point."""
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "nst_posterize.py").write_text(
        textwrap.dedent("""
        import nst_plugin as nst

        class Posterize(nst.Task):
            id = "acme.posterize"
            title = "Posterize"
            description = "test task: fewer grey levels per channel"
            inputs = (nst.Port("image", "image", "the image"),)
            outputs = (nst.Port("image", "image", "the posterized image"),)

            @classmethod
            def schema(cls):
                return [nst.Param("levels", "int", 4, "levels per channel", min=2, max=256)]

            def _run(self, inputs, on_progress, should_stop):
                n = self.params["levels"] - 1
                pic = inputs["image"]
                return {"image": nst.Picture((pic.rgb * n).round() / n, pic.alpha)}

        @nst.hookimpl
        def register_tasks(register):
            register(Posterize)
    """)
    )
    dist = pkg / "nst_posterize-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nst-posterize\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nst_plugin]\nposterize = nst_posterize\n")
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setenv(plugins.ENV_VAR, "posterize")
    plugins.reset()


def test_third_party_task_from_an_entry_point_in_a_pipeline(ws, third_party_task):
    (ws / "post.yaml").write_text(
        textwrap.dedent("""
        steps:
          - id: poster
            task: acme.posterize
            params: {levels: 2}
            inputs: {image: photos}
          - id: save
            task: image.save
            inputs: {image: poster.image}
    """)
    )
    summary = run_pipeline(load_pipeline(ws / "post.yaml"))
    assert summary.count("done") == 3
    levels = load_image(ws / "out" / "a.png").rgb.unique()
    assert set(levels.tolist()) <= {0.0, 1.0}
    bad = (ws / "post.yaml").read_text().replace("levels: 2", "levels: 1")
    (ws / "bad.yaml").write_text(bad)
    assert main(["pipeline", "validate", str(ws / "bad.yaml")]) == 2


@pytest.mark.parametrize(
    "name", ["adain_folder.yaml", "optimization_two_scales.yaml", "fast_folder.yaml"]
)
def test_examples_validate_against_generated_images(tmp_path, name):
    """The shipped examples, with images named as `write_examples` names them."""
    images = tmp_path / "images"
    images.mkdir()
    for stem, kind in (("astronaut", "photo"), ("coffee", "photo"), ("swirls", "art")):
        save_image(Picture(make_image(24, 32, kind)), images / f"{stem}.png")
    shutil.copy(ROOT / "examples" / name, tmp_path / name)
    pipeline = load_pipeline(tmp_path / name)
    assert pipeline.out_dir == (tmp_path / "out").resolve()
    assert "(write)" in describe_plan(pipeline)


def test_adain_example_runs(tmp_path, random_decoder_file):
    images = tmp_path / "images"
    images.mkdir()
    for stem, kind in (("astronaut", "photo"), ("coffee", "photo"), ("swirls", "art")):
        save_image(Picture(make_image(24, 32, kind)), images / f"{stem}.png")
    shutil.copy(ROOT / "examples" / "adain_folder.yaml", tmp_path)
    overrides = ["size=32", f"stylize.decoder={random_decoder_file}"]
    summary = run_pipeline(load_pipeline(tmp_path / "adain_folder.yaml", overrides=overrides))
    assert summary.exit_code == 0 and summary.count("done") == 2
    assert sorted(mtimes(tmp_path / "out")) == [
        "astronaut_adain.jpg",
        "coffee_adain.jpg",
        "compare/astronaut_before_after.png",
        "compare/coffee_before_after.png",
    ]


def test_fast_example_runs_with_the_shipped_preset(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for stem in ("astronaut", "coffee"):
        save_image(Picture(make_image(24, 32, "photo")), images / f"{stem}.png")
    shutil.copy(ROOT / "examples" / "fast_folder.yaml", tmp_path)
    summary = run_pipeline(load_pipeline(tmp_path / "fast_folder.yaml", overrides=["size=32"]))
    assert summary.exit_code == 0 and summary.count("done") == 2
    assert load_image(tmp_path / "out" / "coffee_fast.jpg").size == (32, 24)
    sheet = load_image(tmp_path / "out" / "compare" / "coffee_fast_sheet.png")
    assert sheet.size[0] > 3 * 32  # photo, the preset's painting, the result


def test_ctrl_c_stops_the_batch_and_keeps_finished_items(ws, monkeypatch):
    original = image_tasks.LoadImageTask._run

    def interrupt_on_b(self, inputs, on_progress, should_stop):
        if Path(inputs["path"]).name == "b.png":
            raise KeyboardInterrupt
        return original(self, inputs, on_progress, should_stop)

    monkeypatch.setattr(image_tasks.LoadImageTask, "_run", interrupt_on_b)
    summary = run_pipeline(load_pipeline(ws / "p.yaml"))
    assert summary.interrupted and summary.exit_code == 130
    assert [r.item.stem for r in summary.results] == ["a"]
    assert sorted(mtimes(ws / "out")) == ["a_adain.png", "sheets/a.jpg"]
    assert "2 not run" in summary.text()


def test_fast_method_with_a_named_model_and_its_painting(ws: Path, style_model_package: Path):
    (ws / "fast.yaml").write_text(
        textwrap.dedent("""
        steps:
          - id: stylize
            task: nst.style_transfer
            params: {method: fast, model: waves, size: 0}
            inputs: {content: photos}
          - id: save
            task: image.save
            params: {name: "{stem}_waves.{ext}"}
            inputs: {image: stylize.image}
          - id: save_painting
            task: image.save
            params: {name: "{stem}_painting.{ext}"}
            inputs: {image: stylize.reference}
    """)
    )
    assert main(["pipeline", "run", str(ws / "fast.yaml"), "--out", str(ws / "o")]) == 0
    for name in ("a", "b", "c"):
        out = load_image(ws / "o" / f"{name}_waves.png")
        assert out.size == load_image(ws / "photos" / f"{name}.png").size
        assert load_image(ws / "o" / f"{name}_painting.png").size == (16, 16)

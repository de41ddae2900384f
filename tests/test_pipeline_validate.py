"""The pipeline file as users write it: every mistake reported at once, with file, line and step."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from nst_plugin import api
from nst_plugin.cli import main
from nst_plugin.engine.errors import InputError
from nst_plugin.images import Picture, save_image
from nst_plugin_hosts.pipeline import PipelineError, Problem, describe_plan, load_pipeline
from tests.conftest import make_image


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A folder with a pipeline's images: two photos in photos/, a painting beside them."""
    photos = tmp_path / "images" / "photos"
    photos.mkdir(parents=True)
    save_image(Picture(make_image(32, 40, "photo", 0)), photos / "a.png")
    save_image(Picture(make_image(40, 32, "photo", 1)), photos / "b.png")
    save_image(Picture(make_image(32, 32, "art", 2)), tmp_path / "images" / "style.png")
    (tmp_path / "images" / "empty").mkdir()
    return tmp_path


def write(ws: Path, text: str, name: str = "p.yaml") -> Path:
    path = ws / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(path: Path, **kwargs) -> list[Problem]:
    with pytest.raises(PipelineError) as info:
        load_pipeline(path, **kwargs)
    return info.value.problems


def only(found: list[Problem], text: str) -> Problem:
    hits = [p for p in found if text in p.message]
    assert len(hits) == 1, f"{text!r} in {[str(p) for p in found]}"
    return hits[0]


GOOD = """
    version: 1
    vars:
      images: images
    steps:
      - id: stylize
        task: nst.style_transfer
        params: {method: adain, alpha: 0.5, size: 0}
        inputs:
          content: ${images}/photos
          styles: ${images}/style.png
      - id: save
        task: image.save
        params: {name: "{stem}_out.{ext}"}
        inputs:
          image: stylize.image
"""


def test_a_good_pipeline_is_planned_in_order_with_one_item_per_file(ws):
    pipeline = load_pipeline(write(ws, GOOD))
    assert list(pipeline.steps) == ["stylize", "save"]
    assert [i.stem for i in pipeline.items] == ["a", "b"]
    assert pipeline.out_dir == (ws / "out").resolve()
    assert pipeline.steps["stylize"].task.params["alpha"] == 0.5
    assert pipeline.per_item == {"stylize", "save"}


def test_unknown_task_names_file_line_step_and_suggests(ws):
    path = write(ws, GOOD.replace("task: image.save", "task: image.sav"))
    p = only(problems(path), "unknown task 'image.sav'")
    assert p.where == f"{path}:12" and p.step == "save"
    assert "did you mean 'image.save'" in p.message
    assert str(p).startswith(f"{path}:12: step 'save': unknown task")


def test_unknown_and_missing_ports(ws):
    path = write(ws, GOOD.replace("content: ${images}/photos", "contents: ${images}/photos"))
    found = problems(path)
    unknown = only(found, "unknown input port 'contents'")
    assert unknown.where == f"{path}:9" and "did you mean 'content'" in unknown.message
    missing = only(found, "missing input 'content'")
    assert missing.where == f"{path}:5" and missing.step == "stylize"


def test_reference_to_unknown_output_port(ws):
    path = write(ws, GOOD.replace("image: stylize.image", "image: stylize.picture"))
    p = only(problems(path), "has no output 'picture'")
    assert p.where == f"{path}:15" and p.step == "save"


def test_type_mismatch_between_connected_ports(ws):
    path = write(ws, GOOD.replace("image: stylize.image", "image: stylize.history"))
    p = only(problems(path), "type mismatch")
    assert p.where == f"{path}:15"
    assert "'history'" in p.message and "takes 'image'" in p.message


def test_cycles_are_reported_with_the_loop(ws):
    path = write(
        ws,
        """
        steps:
          - id: a
            task: image.resize
            inputs: {image: b.image}
          - id: b
            task: image.resize
            inputs: {image: a.image}
          - id: loop
            task: image.resize
            inputs: {image: loop.image}
    """,
    )
    found = problems(path)
    assert any(
        "cycle: a -> b -> a" in p.message or "cycle: b -> a -> b" in p.message for p in found
    )
    assert only(found, "cycle: loop -> loop").where == f"{path}:8"


def test_a_loop_blocks_what_it_feeds_and_each_loop_is_reported(ws):
    path = write(
        ws,
        """
        steps:
          - id: src
            task: image.load
            inputs: {path: images/style.png}
          - id: a
            task: image.compare
            inputs: {images: [src.image, b.image]}
          - id: b
            task: image.resize
            inputs: {image: a.image}
          - id: fed
            task: image.resize
            inputs: {image: b.image}
          - id: c
            task: image.resize
            inputs: {image: d.image}
          - id: d
            task: image.resize
            inputs: {image: c.image}
    """,
    )
    found = problems(path)
    assert [p.message.split(";")[0] for p in found] == ["cycle: a -> b -> a", "cycle: c -> d -> c"]
    assert [p.where for p in found] == [f"{path}:5", f"{path}:14"]


def test_validating_leaves_each_step_task_as_its_parameters_made_it(ws):
    """Per-item values (stem, index, folder) go to copies of a task, never into the shared one."""
    pipeline = load_pipeline(write(ws, GOOD))
    save = pipeline.steps["save"].task
    as_made = api.create_task("image.save", name="{stem}_out.{ext}").params
    assert save.params == as_made
    assert "a_out.png (write)" in describe_plan(pipeline)  # every item's files, worked out
    assert pipeline.steps["save"].task is save and save.params == as_made


def test_bad_and_unknown_parameter_values(ws):
    path = write(
        ws, GOOD.replace("method: adain, alpha: 0.5, size: 0", "alpha: 2, sise: 0, method: quick")
    )
    found = problems(path)
    assert only(found, "'alpha' must be within 0..1").where == f"{path}:7"
    assert "did you mean 'size'" in only(found, "unknown parameter 'sise'").message
    assert "'method' must be one of" in only(found, "'method'").message


def test_parameter_of_another_method_is_rejected(ws):
    path = write(ws, GOOD.replace("method: adain", "method: optimization"))
    p = only(problems(path), "applies to method adain")
    assert p.where == f"{path}:7" and p.step == "stylize"


def test_missing_input_files_glob_and_empty_folder(ws):
    path = write(
        ws,
        """
        steps:
          - id: stylize
            task: nst.style_transfer
            inputs:
              content: images/nothing.png
              styles: ["images/*.jpg", images/empty]
    """,
    )
    found = problems(path)
    assert only(found, "input file not found: images/nothing.png").where == f"{path}:5"
    assert only(found, "no image files match 'images/*.jpg'").where == f"{path}:6"
    assert "holds no images" in only(found, "folder 'images/empty'").message


def test_every_problem_is_reported_at_once(ws):
    path = write(
        ws,
        """
        steps:
          - id: stylize
            task: nst.style_transfer
            params: {alpha: 7, method: adain}
            inputs:
              content: images/missing.png
              styles: images/style.png
          - id: blur
            task: image.blur
          - id: save
            task: image.save
            inputs: {image: stylize.history}
    """,
    )
    found = problems(path)
    assert len(found) == 4
    lines = [int(p.where.rsplit(":", 1)[1]) for p in found]
    assert lines == sorted(lines), "problems are listed in file order"


def test_cli_validate_prints_every_problem_and_exits_2(ws, capsys):
    path = write(ws, GOOD.replace("alpha: 0.5", "alpha: 5").replace("image.save", "image.nope"))
    assert main(["pipeline", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert f"{path}:7: step 'stylize': parameter 'alpha'" in err
    assert f"{path}:12: step 'save': unknown task 'image.nope'" in err
    assert "Traceback" not in err
    assert main(["pipeline", "validate", str(write(ws, GOOD, "ok.yaml"))]) == 0
    assert "ok: 2 steps, 2 items" in capsys.readouterr().out


def test_yaml_syntax_error_has_a_line(ws):
    path = write(ws, "steps:\n  - id: a\n    task: [image.load\n")
    (p,) = problems(path)
    assert p.where == f"{path}:4" and "not valid YAML" in p.message


def test_safe_loader_refuses_python_objects(ws, tmp_path):
    marker = tmp_path / "pwned"
    path = write(ws, f"steps: !!python/object/apply:os.system ['touch {marker}']\n")
    (p,) = problems(path)
    assert "could not determine a constructor" in p.message
    assert not marker.exists()


def test_structure_mistakes(ws):
    path = write(
        ws,
        """
        steps:
          - id: 1bad
            task: image.load
          - task: image.load
          - id: a
            task: image.resize
            colour: red
            inputs: {image: "images/style.png"}
          - id: a
            task: image.resize
        extra: 1
    """,
    )
    found = problems(path)
    assert only(found, "step id '1bad'").where == f"{path}:2"
    assert only(found, "step has no 'id'").where == f"{path}:4"
    assert only(found, "unknown key 'colour'").where == f"{path}:7"
    assert only(found, "duplicate step id").where == f"{path}:9"
    assert only(found, "unknown key 'extra'").where == f"{path}:11"


def test_paths_are_relative_to_the_pipeline_file_not_the_cwd(ws, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    pipeline = load_pipeline(write(ws, GOOD))
    assert [i.file for i in pipeline.items] == [
        ws / "images/photos/a.png",
        ws / "images/photos/b.png",
    ]
    assert pipeline.out_dir == (ws / "out").resolve()


def test_outputs_may_not_escape_the_output_folder(ws):
    for params in ('{name: "../{stem}.png"}', "{folder: ../elsewhere}", "{folder: /tmp}"):
        path = write(ws, GOOD.replace('{name: "{stem}_out.{ext}"}', params))
        p = only(problems(path, out=ws / "results"), "outside the output folder")
        assert p.where == f"{path}:13" and p.step == "save"


def test_two_items_writing_one_file_is_caught(ws):
    path = write(ws, GOOD.replace("{stem}_out.{ext}", "result.png"))
    p = only(problems(path), "would write")
    assert "put {index} in 'name'" in p.message
    assert load_pipeline(write(ws, GOOD.replace("{stem}_out", "result_{index}"), "ok.yaml"))


def test_variables_and_set_overrides(ws):
    (ws / "other" / "photos").mkdir(parents=True)
    save_image(Picture(make_image(20, 20)), ws / "other" / "photos" / "z.png")
    path = write(ws, GOOD)
    pipeline = load_pipeline(
        path, overrides=["images=other", "stylize.alpha=0.25", "stylize.styles=images/style.png"]
    )
    # `images` changed the photos folder; the styles input was pointed back at the painting.
    assert [i.stem for i in pipeline.items] == ["z"]
    assert pipeline.steps["stylize"].task.params["alpha"] == 0.25
    found = problems(path, overrides=["stylize.alpha=9", "imgs=x", "ghost.a=1", "novalue"])
    by_option = {p.where: p.message for p in found}
    assert set(by_option) == {
        "--set stylize.alpha=9",
        "--set imgs=x",
        "--set novalue",
        "--set ghost.a=1",
    }
    assert "did you mean 'images'" in by_option["--set imgs=x"]
    assert "expected KEY=VALUE" in by_option["--set novalue"]


def test_unknown_variable(ws):
    path = write(ws, GOOD.replace("${images}/style.png", "${imgs}/style.png"))
    p = only(problems(path), "unknown variable ${imgs}")
    assert p.where == f"{path}:10" and len(problems(path)) == 1


def test_runner_owned_parameters_cannot_be_set(ws):
    path = write(ws, GOOD.replace('name: "{stem}_out.{ext}"', "stem: fixed"))
    assert "set per item by the pipeline runner" in only(problems(path), "'stem'").message


# -- the built-in image tasks, as any host uses them ----------------------------------------


def test_image_tasks_are_registered_with_ports_and_schemas():
    tasks = api.list_tasks()
    assert {"image.load", "image.save", "image.resize", "image.compare"} <= set(tasks)
    assert tasks["image.compare"]["inputs"][0]["multiple"] is True
    assert tasks["image.load"]["inputs"][0]["type"] == "path"


def test_save_name_template_format_and_overwrite(tmp_path, photo):
    task = api.create_task(
        "image.save",
        folder=str(tmp_path),
        stem="cat",
        index=3,
        name="{stem}-{index}",
        format="jpg",
        quality=80,
    )
    assert task.planned_outputs() == [tmp_path / "cat-3.jpg"]
    assert task.run({"image": photo})["path"] == tmp_path / "cat-3.jpg"
    with pytest.raises(InputError, match="exists"):
        task.run({"image": photo})
    with pytest.raises(InputError, match="unknown field"):
        api.create_task("image.save", name="{stem}_{date}.png")
    with pytest.raises(InputError, match="ends in .png but the format is 'jpg'"):
        api.create_task("image.save", name="{stem}.png", format="jpg")
    assert not list(tmp_path.glob(".*part"))


def test_load_and_resize(tmp_path, photo):
    save_image(photo, tmp_path / "p.png")
    loaded = api.create_task("image.load", size=32).run({"path": tmp_path / "p.png"})["image"]
    assert loaded.size == (32, 24)
    resize = api.create_task("image.resize", width=16)
    assert resize.run({"image": photo})["image"].size == (16, 12)
    assert api.create_task("image.resize", scale=0.5).run({"image": photo})["image"].size == (
        32,
        24,
    )
    with pytest.raises(InputError, match="one rule"):
        api.create_task("image.resize", longer=10, scale=2)


def test_compare_row_and_grid_sizes():
    a = Picture(torch.rand(3, 20, 30))
    b = Picture(torch.rand(3, 10, 10), alpha=torch.zeros(10, 10))
    row = api.create_task("image.compare", gap=2).run({"images": [a, b]})["image"]
    assert row.size == (2 + 30 + 2 + 30 + 2, 2 + 20 + 2)
    # b is scaled to 20 px high, centred in its cell; fully transparent shows the background.
    assert torch.allclose(row.rgb[:, 10, 34 + 5 : 34 + 25], torch.ones(3, 20))
    grid = api.create_task("image.compare", layout="grid", gap=0, height=10).run(
        {"images": [a, a, a]}
    )["image"]
    assert grid.size == (2 * 15, 2 * 10)


def test_an_output_that_is_one_of_the_inputs_is_refused(ws):
    path = write(
        ws,
        """
        output: images/photos
        steps:
          - id: copy
            task: image.save
            params: {name: "{stem}.png", overwrite: true}
            inputs: {image: images/photos}
        """,
    )
    before = {p.name: p.read_bytes() for p in (ws / "images" / "photos").iterdir()}
    found = problems(path)
    assert "which is one of the pipeline's inputs" in only(found, "one of the pipeline").message
    assert {p.name: p.read_bytes() for p in (ws / "images" / "photos").iterdir()} == before

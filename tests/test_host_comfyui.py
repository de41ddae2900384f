"""ComfyUI custom nodes, loaded and run the way ComfyUI loads and runs them.

ComfyUI is not on PyPI, so `Comfy` below re-implements the part of its `execution.py` a custom
node meets: `validate_inputs` (required inputs present, linked output types equal to the input
type, INT/FLOAT/STRING/BOOLEAN coercion, min/max and combo checks unless VALIDATE_INPUTS takes
**kwargs, then VALIDATE_INPUTS on the constant inputs, linked ones as None) and execution
(`get_input_data`, `_map_node_over_list` over list-wrapped inputs, under `torch.inference_mode()`,
exceptions turned into `exception_message`/`exception_type`). The folder is imported as
`nodes.load_custom_node` does: by file path, under the folder's own name. LoadImage and SaveImage
are small stand-ins with ComfyUI's signatures.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from nst_plugin import api
from nst_plugin.engine.temporal import warping_error
from nst_plugin.images import Picture, save_image
from tests.conftest import make_image

FOLDER = Path(__file__).resolve().parents[1] / "hosts" / "comfyui"
TINY_OPT = {"size": 32, "iterations": 3, "scales": 1}


def load_custom_node(folder: Path, name: str) -> types.ModuleType:
    """ComfyUI's loader: spec from <folder>/__init__.py, registered in sys.modules, executed."""
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:  # each test loads afresh, as a new ComfyUI process would
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
    return module


class LoadImage:
    """ComfyUI's LoadImage: (IMAGE (1, H, W, 3) float 0..1, MASK (1, H, W) = 1 - alpha)."""

    INPUT_DIR = Path(".")
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"
    CATEGORY = "image"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802
        files = sorted(p.name for p in cls.INPUT_DIR.iterdir())
        return {"required": {"image": (files, {"image_upload": True})}}

    def load_image(self, image: str) -> tuple[torch.Tensor, torch.Tensor]:
        img = Image.open(self.INPUT_DIR / image)
        rgb = torch.from_numpy(np.array(img.convert("RGB"), dtype=np.float32) / 255.0)[None]
        mask = torch.zeros((1, *rgb.shape[1:3]), dtype=torch.float32)
        return rgb, mask


class SaveImage:
    """ComfyUI's SaveImage: an output node writing PNGs and reporting them in its ui dict."""

    OUTPUT_DIR = Path(".")
    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "image"

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802
        return {"required": {"images": ("IMAGE",), "filename_prefix": ("STRING", {"default": "c"})}}

    def save_images(self, images: torch.Tensor, filename_prefix: str) -> dict[str, Any]:
        saved = []
        for i, image in enumerate(images):
            arr = np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)
            name = f"{filename_prefix}_{i:05}_.png"
            Image.fromarray(arr).save(self.OUTPUT_DIR / name)
            saved.append({"filename": name, "type": "output"})
        return {"ui": {"images": saved}}


class Comfy:
    """ComfyUI's validation and execution of an API-format prompt, reduced to what nodes see."""

    def __init__(self, mappings: dict[str, type]) -> None:
        self.mappings = {"LoadImage": LoadImage, "SaveImage": SaveImage, **mappings}

    def validate(self, prompt: dict[str, Any]) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        for node_id, node in prompt.items():
            cls = self.mappings.get(node["class_type"])
            if cls is None:
                errors.append({"type": "invalid_prompt", "details": node["class_type"]})
                continue
            spec = cls.INPUT_TYPES()
            kinds = {
                **{k: "required" for k in spec["required"]},
                **{k: "optional" for k in spec.get("optional", {})},
            }
            has_kwargs = hasattr(cls, "VALIDATE_INPUTS")
            constants: dict[str, Any] = {}
            for name, kind in kinds.items():
                info = {**spec.get("required", {}), **spec.get("optional", {})}[name]
                if name not in node["inputs"]:
                    if kind == "required":
                        errors.append({"type": "required_input_missing", "details": name})
                    continue
                val = node["inputs"][name]
                if isinstance(val, list):
                    src = prompt[val[0]]["class_type"]
                    got = self.mappings[src].RETURN_TYPES[val[1]]
                    if got != info[0]:
                        errors.append(
                            {
                                "type": "return_type_mismatch",
                                "details": f"{name}, {got} != {info[0]}",
                            }
                        )
                    constants[name] = None
                    continue
                conv = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}.get(
                    info[0] if isinstance(info[0], str) else ""
                )
                val = conv(val) if conv else val
                node["inputs"][name] = val
                constants[name] = val
                opts = info[1] if len(info) > 1 else {}
                if not has_kwargs:
                    if "min" in opts and val < opts["min"] or "max" in opts and val > opts["max"]:
                        errors.append({"type": "value_out_of_range", "details": name})
                    if isinstance(info[0], list) and val not in info[0]:
                        errors.append({"type": "value_not_in_list", "details": name})
            if has_kwargs:
                result = cls.VALIDATE_INPUTS(**constants)
                if result is not True:
                    errors.append(
                        {
                            "type": "custom_validation_failed",
                            "node_id": node_id,
                            "details": str(result),
                        }
                    )
        return errors

    def execute(self, prompt: dict[str, Any]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
        """(outputs by node id, the error dict ComfyUI sends as `execution_error`, or {})."""
        outputs: dict[str, list[Any]] = {}
        ui: dict[str, Any] = {}

        def run(node_id: str) -> dict[str, Any]:
            if node_id in outputs:
                return {}
            node = prompt[node_id]
            for val in node["inputs"].values():
                if isinstance(val, list) and (err := run(val[0])):
                    return err
            cls = self.mappings[node["class_type"]]
            data = {
                k: outputs[v[0]][v[1]] if isinstance(v, list) else [v]
                for k, v in node["inputs"].items()
            }
            try:
                obj = cls()
                n = max((len(v) for v in data.values()), default=1)  # no inputs: one call
                results = [
                    getattr(obj, cls.FUNCTION)(
                        **{k: v[min(i, len(v) - 1)] for k, v in data.items()}
                    )
                    for i in range(n)
                ]
            except Exception as ex:
                kind = f"{type(ex).__module__}.{type(ex).__qualname__}"
                return {"node_id": node_id, "exception_message": str(ex), "exception_type": kind}
            rets = [r.get("result", ()) if isinstance(r, dict) else r for r in results]
            ui[node_id] = [r["ui"] for r in results if isinstance(r, dict) and "ui" in r]
            outputs[node_id] = [[r[i] for r in rets] for i in range(len(cls.RETURN_TYPES))]
            return {}

        with torch.inference_mode():
            for node_id, node in prompt.items():
                if getattr(self.mappings[node["class_type"]], "OUTPUT_NODE", False):
                    if err := run(node_id):
                        return outputs, err
        return {**outputs, "ui": ui}, {}  # type: ignore[dict-item]


@pytest.fixture
def comfy_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    inputs, outs = tmp_path / "input", tmp_path / "output"
    inputs.mkdir()
    outs.mkdir()
    save_image(Picture(make_image(48, 64, "photo")), inputs / "photo.png")
    save_image(Picture(make_image(40, 40, "art", seed=1)), inputs / "painting.png")
    monkeypatch.setattr(LoadImage, "INPUT_DIR", inputs)
    monkeypatch.setattr(SaveImage, "OUTPUT_DIR", outs)
    return inputs, outs


@pytest.fixture
def nodes() -> dict[str, type]:
    return load_custom_node(FOLDER, "nst_style_transfer").NODE_CLASS_MAPPINGS


def bhwc(*pics: torch.Tensor) -> torch.Tensor:
    return torch.stack([p.permute(1, 2, 0) for p in pics]).float()


def stylize(node_cls: type, **inputs: Any) -> torch.Tensor:
    with torch.inference_mode():
        (out,) = getattr(node_cls(), node_cls.FUNCTION)(**inputs)
    return out


# ---------------------------------------------------------------------------------------------
# Conventions and schema


def test_folder_loads_like_comfyui_and_follows_its_conventions(nodes: dict[str, type]) -> None:
    module = load_custom_node(FOLDER, "some_other_folder_name")
    assert set(module.NODE_DISPLAY_NAME_MAPPINGS) == set(module.NODE_CLASS_MAPPINGS)
    methods = ("optimization", "adain", "fast")
    assert set(nodes) == {f"NST{kind}StyleTransfer_{m}" for m in methods for kind in ("", "Video")}
    for key, cls in nodes.items():
        video = key.startswith("NSTVideo")
        spec = cls.INPUT_TYPES()
        assert set(spec) == {"required", "optional"}
        assert spec["required"]["content"][0] == "IMAGE"
        assert ("style" in spec["required"]) == (cls.METHOD != "fast")
        assert video or spec["optional"]["mask"][0] == "MASK"
        outputs = ("IMAGE",) if cls.METHOD != "fast" or video else ("IMAGE", "IMAGE")
        assert cls.RETURN_TYPES == outputs and isinstance(cls.CATEGORY, str)
        assert callable(getattr(cls, cls.FUNCTION)) and cls.OUTPUT_NODE is False
        json.dumps(spec)  # what /object_info serves: plain JSON, finite numbers
        for name, entry in {**spec["required"], **spec["optional"]}.items():
            assert isinstance(entry, tuple) and 1 <= len(entry) <= 2, name
            kind = entry[0]
            assert isinstance(kind, list) or kind in {
                "IMAGE",
                "MASK",
                "INT",
                "FLOAT",
                "STRING",
                "BOOLEAN",
            }
            if kind in ("INT", "FLOAT"):
                assert {"default", "min", "max", "step"} <= set(entry[1])


def test_widgets_are_the_schema(nodes: dict[str, type]) -> None:
    schema = {p["name"]: p for p in api.list_tasks()["nst.style_transfer"]["params"]}
    spec = nodes["NSTStyleTransfer_adain"].INPUT_TYPES()["optional"]
    assert "alpha" in spec and "iterations" not in spec and "method" not in spec
    assert spec["alpha"][0] == "FLOAT"
    assert spec["alpha"][1]["min"] == 0.0 and spec["alpha"][1]["max"] == 1.0
    assert spec["preserve_color"][0] == list(schema["preserve_color"]["choices"])
    assert spec["size"] == (
        "INT",
        {
            "default": 512,
            "tooltip": schema["size"]["description"],
            "min": 0,
            "max": 8192,
            "step": 1,
        },
    )
    opt = nodes["NSTStyleTransfer_optimization"].INPUT_TYPES()["optional"]
    assert opt["learning_rate"][1]["round"] is False  # 1e-6 must not round to 0
    assert "alpha" not in opt and opt["iterations"][1]["default"] == 0  # automatic by device
    assert opt["encoder"][0][0] == "vgg19" and "time_budget" in opt


def test_third_party_method_gets_its_own_node(third_party_plugin: Path, comfy_dirs: Any) -> None:
    nodes = load_custom_node(FOLDER, "nst_style_transfer").NODE_CLASS_MAPPINGS
    node = nodes["NSTStyleTransfer_invert"]
    assert node.INPUT_TYPES()["optional"]["invert_strength"][0] == "FLOAT"
    photo = make_image(24, 32, "photo")
    out = stylize(node, content=bhwc(photo), style=bhwc(make_image(16, 16, "art")), size=0)
    assert torch.allclose(out[0], 1.0 - photo.permute(1, 2, 0), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Running


def test_example_workflow_validates_and_runs(
    nodes: dict[str, type], comfy_dirs: tuple[Path, Path], random_decoder_file: Path
) -> None:
    prompt = json.loads((FOLDER / "example_workflow_api.json").read_text())
    comfy = Comfy(nodes)
    assert comfy.validate(json.loads(json.dumps(prompt))) == []
    prompt["3"]["inputs"].update(size=32, decoder=str(random_decoder_file))
    outputs, error = comfy.execute(prompt)
    assert error == {}
    (image,) = outputs["3"][0]
    assert image.shape == (1, 24, 32, 3) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    saved = outputs["ui"]["4"][0]["images"]
    assert (comfy_dirs[1] / saved[0]["filename"]).exists()


def test_content_batch_gives_an_output_batch(nodes: dict[str, type]) -> None:
    batch = bhwc(make_image(24, 32, "photo"), make_image(24, 32, "photo", seed=3).flip(-1))
    out = stylize(
        nodes["NSTStyleTransfer_optimization"],
        content=batch,
        style=bhwc(make_image(20, 20, "art")),
        **TINY_OPT,
    )
    assert out.shape == (2, 24, 32, 3)
    assert not torch.allclose(out[0], out[1])  # each content image stylized on its own


def test_fast_node_offers_the_models_and_returns_the_painting(style_model_package: Path) -> None:
    nodes = load_custom_node(FOLDER, "nst_style_transfer").NODE_CLASS_MAPPINGS
    cls = nodes["NSTStyleTransfer_fast"]
    combo = cls.INPUT_TYPES()["optional"]["model"]
    assert {"dots", "waves"} <= set(combo[0])
    assert cls.VALIDATE_INPUTS(model="nope") != True  # noqa: E712 (ComfyUI reads a string)
    with torch.inference_mode():
        image, reference = cls().stylize(
            content=bhwc(make_image(24, 33, "photo")), model="starry_night", size=0
        )
    assert image.shape == (1, 24, 33, 3)  # the shipped preset; its painting as output 1
    assert reference.ndim == 4 and reference.shape[-1] == 3 and min(reference.shape[1:3]) > 100


def test_masks_and_two_style_inputs(nodes: dict[str, type], random_decoder_file: Path) -> None:
    mask = torch.zeros(1, 24, 32)
    mask[:, :, 16:] = 1.0
    out = stylize(
        nodes["NSTStyleTransfer_adain"],
        content=bhwc(make_image(24, 32, "photo")),
        style=bhwc(make_image(20, 20, "art")),
        style_2=bhwc(make_image(30, 30, "art", seed=5).flip(-2)),
        mask=mask,
        size=0,
        decoder=str(random_decoder_file),
    )
    assert out.shape == (1, 24, 32, 3)


def fake_comfy(monkeypatch: pytest.MonkeyPatch, updates: list, **model_management: Any) -> None:
    """A `comfy` package with ComfyUI's ProgressBar (recording into `updates`) and these
    model_management functions, importable as the nodes import it."""

    class ProgressBar:
        def __init__(self, total: int) -> None:
            self.total = total

        def update_absolute(self, value: int, total: int, preview: Any = None) -> None:
            updates.append((value, total))

    mm = types.SimpleNamespace(**model_management)
    comfy_pkg = types.ModuleType("comfy")
    comfy_pkg.model_management = mm  # type: ignore[attr-defined]
    comfy_pkg.utils = types.SimpleNamespace(ProgressBar=ProgressBar)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "comfy", comfy_pkg)
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)
    monkeypatch.setitem(sys.modules, "comfy.utils", comfy_pkg.utils)


def test_progress_and_interrupt_use_comfys_own(
    nodes: dict[str, type], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `comfy` importable the node feeds its ProgressBar and obeys its interrupt flag."""
    updates: list[tuple[int, int]] = []
    stop_after = {"n": 2}

    class Interrupted(Exception):
        pass

    fake_comfy(
        monkeypatch,
        updates,
        processing_interrupted=lambda: len(updates) >= stop_after["n"],
        throw_exception_if_processing_interrupted=lambda: (_ for _ in ()).throw(Interrupted()),
    )
    node = nodes["NSTStyleTransfer_optimization"]
    inputs = {
        "content": bhwc(make_image(24, 32, "photo")),
        "style": bhwc(make_image(20, 20)),
        "size": 32,
        "iterations": 4,
        "scales": 1,
    }
    with pytest.raises(Interrupted):
        stylize(node, **inputs)
    assert updates[:2] == [(1, 4), (2, 4)]
    stop_after["n"] = 10**6
    updates.clear()
    stylize(node, **inputs)
    assert updates[-1] == (4, 4)


def test_video_node_keeps_a_frame_batch_steady_with_comfys_progress(
    nodes: dict[str, type], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch from a video loader: frames held to the last along the flow flicker far less
    than the same batch stylized image by image; the progress bar counts frames."""
    updates: list[tuple[int, int]] = []

    fake_comfy(monkeypatch, updates, processing_interrupted=lambda: False)
    big = make_image(48 + 6, 64 + 12, "photo")
    frames = bhwc(*[big[:, i : i + 48, 2 * i : 2 * i + 64] for i in range(6)])
    video = nodes["NSTVideoStyleTransfer_fast"]
    steady = stylize(video, content=frames, model="the_wave", size=0, temporal=0.8)
    assert steady.shape == frames.shape and updates[-1] == (6, 6)
    image_node = nodes["NSTStyleTransfer_fast"]
    with torch.inference_mode():
        loose = image_node().stylize(content=frames, model="the_wave", size=0)[0]
    mask = torch.zeros(48, 64)
    mask[:47, :62] = 1
    flow = torch.tensor([2.0, 1.0]).view(2, 1, 1).expand(2, 48, 64)

    def flicker(batch: torch.Tensor) -> float:
        t = batch.permute(0, 3, 1, 2)
        return sum(warping_error(t[i + 1 : i + 2], t[i : i + 1], flow, mask) for i in range(5))

    assert flicker(steady) < 0.5 * flicker(loose)


# ---------------------------------------------------------------------------------------------
# Errors: ComfyUI's own kinds (validation errors, execution_error messages), never tracebacks


def test_bad_widget_values_fail_validation_by_name(nodes: dict[str, type], comfy_dirs: Any) -> None:
    prompt = json.loads((FOLDER / "example_workflow_api.json").read_text())
    prompt["3"]["inputs"]["alpha"] = 1.5
    errors = Comfy(nodes).validate(prompt)
    assert [e["type"] for e in errors] == ["custom_validation_failed"]
    assert "'alpha' must be within 0..1, got 1.5" in errors[0]["details"]
    prompt["3"]["inputs"].update(alpha=0.5, preserve_color="sepia")
    assert "one of 'none', 'luminance', 'match'" in Comfy(nodes).validate(prompt)[0]["details"]


def test_wrong_link_type_is_comfys_return_type_mismatch(
    nodes: dict[str, type], comfy_dirs: Any
) -> None:
    prompt = json.loads((FOLDER / "example_workflow_api.json").read_text())
    prompt["3"]["inputs"]["style"] = ["2", 1]  # LoadImage's MASK into an IMAGE input
    errors = Comfy(nodes).validate(prompt)
    assert errors == [{"type": "return_type_mismatch", "details": "style, MASK != IMAGE"}]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"content": torch.zeros(0, 24, 32, 3)}, "input 'content': the image batch is empty"),
        ({"style": torch.zeros(1, 20, 20)}, "input 'style': expected a (B, H, W, C) image"),
        (
            {"content": {"samples": torch.zeros(1, 4, 8, 8)}},
            "input 'content': expected a (B, H, W, C) image tensor with C in 1, 3, 4; got dict",
        ),
        ({"mask": torch.ones(1, 10, 10)}, "mask is 10x10 but the content image is 32x24"),
        ({"mask": torch.ones(3, 24, 32)}, "input 'mask': a batch of 3 masks for 1 style image"),
        ({"decoder": "/nowhere/decoder.safetensors"}, "/nowhere/decoder.safetensors"),
    ],
)
def test_bad_inputs_are_one_line_execution_errors(
    nodes: dict[str, type], change: dict[str, Any], message: str, random_decoder_file: Path
) -> None:
    node = nodes["NSTStyleTransfer_adain"]
    inputs = {
        "content": make_image(24, 32, "photo"),
        "style": make_image(20, 20, "art"),
        "decoder": str(random_decoder_file),
        "size": 0,
    }
    inputs = {k: bhwc(v) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    inputs.update(change)
    linked = {k: v for k, v in inputs.items() if not isinstance(v, str | int)}
    mappings = {"Src": _source_node(linked), "NSTStyleTransfer_adain": node, "Out": _sink_node()}
    prompt = {
        "1": {"class_type": "Src", "inputs": {}},
        "2": {
            "class_type": "NSTStyleTransfer_adain",
            "inputs": {
                **{k: ["1", i] for i, k in enumerate(linked)},
                **{k: v for k, v in inputs.items() if k not in linked},
            },
        },
        "3": {"class_type": "Out", "inputs": {"image": ["2", 0]}},
    }
    _, error = Comfy(mappings).execute(prompt)
    assert error["node_id"] == "2"
    assert error["exception_type"] == "nst_style_transfer.nodes.StyleTransferError"
    assert message in error["exception_message"]
    assert "\n" not in error["exception_message"] and "Traceback" not in error["exception_message"]


def _source_node(values: dict[str, Any]) -> type:
    """A node handing out the given values, in order, as its linked outputs."""

    class Src:
        RETURN_TYPES = tuple("MASK" if k == "mask" else "IMAGE" for k in values)
        FUNCTION = "get"

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802
            return {"required": {}}

        def get(self) -> tuple[Any, ...]:
            return tuple(values.values())

    return Src


def _sink_node() -> type:
    class Out:
        RETURN_TYPES = ()
        FUNCTION = "take"
        OUTPUT_NODE = True

        @classmethod
        def INPUT_TYPES(cls) -> dict[str, Any]:  # noqa: N802
            return {"required": {"image": ("IMAGE",)}}

        def take(self, image: torch.Tensor) -> tuple[()]:
            return ()

    return Out


def test_folder_copied_into_custom_nodes_works(tmp_path: Path) -> None:
    """What a user does: copy the folder under any name; it imports nst_plugin (installed)."""
    target = tmp_path / "custom_nodes" / "ComfyUI-NST"
    shutil.copytree(FOLDER, target, ignore=shutil.ignore_patterns("__pycache__"))
    module = load_custom_node(target, "ComfyUI-NST")
    assert "NSTStyleTransfer_adain" in module.NODE_CLASS_MAPPINGS
    assert (target / "example_workflow_api.json").exists()

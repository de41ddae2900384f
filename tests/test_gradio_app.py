"""The Gradio demo, used the way its users use it: served on loopback, called over HTTP.

One app is served per module (starting one costs about a second); every call goes through
`gradio_client`, so uploads, the queue, streaming and errors cross the real web server.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr  # the test extra; a missing one must fail, not skip, in CI
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from nst_plugin import api, plugins
from nst_plugin.images import Picture, save_image
from nst_plugin_hosts.gradio_app import Limits, build_app, launch
from nst_plugin_hosts.gradio_app.app import _Job, _stream
from tests.conftest import make_image

pytestmark = pytest.mark.filterwarnings(  # Gradio's queue on pandas 3; not ours to fix
    "ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated"
)
LIMITS = Limits(max_pixels=200_000, max_size=128, time_limit=120, concurrency=1, queue_size=4)
# Tiny work: every call here finishes in seconds on a laptop CPU.
DEFAULTS = {"size": 48, "iterations": 4, "scales": 1, "preview_every": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(app: gr.Blocks) -> str:
    """Serve `app` on loopback in this process and return its URL."""
    return launch("127.0.0.1", free_port(), app=app, block=False, quiet=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("uploads")
    files = {
        "photo": (make_image(48, 64, "photo"), folder / "photo.png"),
        "art": (make_image(40, 40, "art", seed=1), folder / "art.png"),
        "art2": (make_image(40, 40, "art", seed=2).flip(-1), folder / "art2.png"),
    }
    for tensor, path in files.values():
        save_image(Picture(tensor), path)
    Image.new("RGB", (600, 400), (120, 90, 60)).save(folder / "big.png")  # 0.24 MP > 0.2 MP
    Image.new("RGB", (300, 200), (60, 90, 120)).save(folder / "wide.png")  # fits; 300 px > 128
    (folder / "junk.png").write_bytes(b"not an image at all")
    return {name: path for name, (_, path) in files.items()} | {
        "big": folder / "big.png",
        "wide": folder / "wide.png",
        "junk": folder / "junk.png",
    }


@pytest.fixture(scope="module")
def served(random_decoder_file: Path) -> Iterator[tuple[gr.Blocks, str]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(plugins.ENV_VAR, "")
        plugins.reset()
        app = build_app(
            limits=LIMITS, defaults=DEFAULTS, pinned={"decoder": str(random_decoder_file)}
        )
        url = serve(app)
        try:
            yield app, url
        finally:
            app.close()


@pytest.fixture(scope="module")
def client(served: tuple[gr.Blocks, str]) -> Client:
    return Client(served[1], verbose=False)


def call(
    images: dict[str, Path],
    *,
    styles: tuple[str, ...] = ("art",),
    content: str = "photo",
    **params: Any,
) -> dict[str, Any]:
    """Keyword arguments for /stylize: named uploads plus any parameters."""
    kwargs: dict[str, Any] = {"content": handle_file(str(images[content]))}
    for i in range(3):
        kwargs[f"style_{i + 1}"] = handle_file(str(images[styles[i]])) if i < len(styles) else None
    return {**kwargs, **params}


def test_controls_come_from_the_schema(served: tuple[gr.Blocks, str]) -> None:
    app, _ = served
    props = {c["props"].get("elem_id"): c["props"] for c in app.config["components"]}
    params = api.list_tasks()["nst.style_transfer"]["params"]
    shown = [p for p in params if p["name"] not in ("method", "style_weights", "decoder")]
    assert shown, "the schema has parameters to show"
    for p in shown:
        control = props[f"p-{p['name']}"]
        assert p["description"][1:] in control["info"]
        if "min" in p:
            assert control["minimum"] == p["min"]
        if p.get("choices"):
            assert [c[1] for c in control["choices"]] == p["choices"]
    assert props["p-size"]["maximum"] == LIMITS.max_size  # capped by the server, not 8192
    assert "p-decoder" not in props  # a server path is never a browser control
    methods = [c[1] for c in props["method"]["choices"]]
    assert methods == next(p for p in params if p["name"] == "method")["choices"]
    assert app.nst_inputs[:8] == [
        "content",
        "style_1",
        "style_2",
        "style_3",
        "weight_1",
        "weight_2",
        "weight_3",
        "method",
    ]


def test_a_third_party_method_appears_without_editing_the_app(third_party_plugin: Path) -> None:
    app = build_app(limits=LIMITS)
    props = {c["props"].get("elem_id"): c["props"] for c in app.config["components"]}
    assert "invert" in [c[1] for c in props["method"]["choices"]]
    assert props["p-invert_strength"]["maximum"] == 1.0
    assert "invert only" in props["p-invert_strength"]["info"]
    assert "invert_strength" in app.nst_inputs


def test_fast_picks_a_model_from_its_painting_and_needs_no_style(
    style_model_package: Path, images: dict[str, Path]
) -> None:
    app = build_app(limits=LIMITS, defaults={"size": 48})
    props = {c["props"].get("elem_id"): c["props"] for c in app.config["components"]}
    captions = [item["caption"] for item in props["models"]["value"]]
    assert any("Dots" in c and "A. Painter" in c for c in captions)
    url = serve(app)
    try:
        client = Client(url, verbose=False)
        result, status, _, gallery = client.predict(
            **call(images, styles=(), method="fast", model="starry_night"), api_name="/stylize"
        )
        with Image.open(result) as img:
            assert max(img.size) == 48
        assert "Done." in status and "fast" in gallery[0]["caption"]
    finally:
        app.close()


def test_queue_and_concurrency_limit(served: tuple[gr.Blocks, str]) -> None:
    app, _ = served
    fn = next(f for f in app.fns.values() if f.api_name == "stylize")
    assert fn.concurrency_limit == LIMITS.concurrency and fn.queue
    assert app._queue.max_size == LIMITS.queue_size
    stop = next(f for f in app.fns.values() if f.api_name == "stop")
    assert not stop.queue  # Stop must not wait behind the very job it stops


def test_adain_result_download_and_gallery(client: Client, images: dict[str, Path]) -> None:
    result, status, download, gallery = client.predict(
        **call(images, styles=("art", "art2"), method="adain", weight_2=0.5),
        api_name="/stylize",
    )
    with Image.open(result) as img:
        assert img.format == "PNG" and max(img.size) == DEFAULTS["size"]
    assert Path(download).suffix == ".png"
    assert "Done." in status
    assert gallery and "adain" in gallery[0]["caption"]


def test_optimization_streams_previews(client: Client, images: dict[str, Path]) -> None:
    job = client.submit(**call(images, method="optimization"), api_name="/stylize")
    result, status, _, gallery = job.result(timeout=120)
    previews = [o[0] for o in job.outputs() if o and isinstance(o[0], str)]
    assert len(previews) >= 3, "previews streamed while it ran, then the result"
    assert "Step" in status and "Done." in status and "style" in status  # step and losses
    assert Path(result).is_file()
    assert "optimization" in gallery[0]["caption"]


def test_stop_keeps_the_last_preview(client: Client, images: dict[str, Path]) -> None:
    job = client.submit(**call(images, method="optimization", iterations=5000), api_name="/stylize")
    deadline = time.monotonic() + 90
    while not any(o and isinstance(o[0], str) for o in job.outputs()):
        assert time.monotonic() < deadline and not job.done(), "no preview came"
        time.sleep(0.1)
    client.predict(api_name="/stop")
    started = time.monotonic()
    result, status, _, gallery = job.result(timeout=60)
    assert time.monotonic() - started < 30
    assert "Stopped." in status
    assert Path(result).is_file()
    assert "(stopped)" in gallery[0]["caption"]


def test_oversize_upload_is_refused_with_a_message(client: Client, images: dict[str, Path]):
    with pytest.raises(AppError, match=r"600×400 pixels .* at most 0\.2 megapixels") as info:
        client.predict(**call(images, content="big", method="adain"), api_name="/stylize")
    assert "Traceback" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content": "wide", "size": 0}, "at most 128 px"),
        ({"content": "junk"}, "content photo could not be read"),
        ({"styles": ()}, "at least one style image"),
        ({"styles": ("art", "art2"), "weight_1": 0.0, "weight_2": 0.0}, "blend weight above 0"),
        ({"device": "cuda"}, "no CUDA GPU is available"),
    ],
)
def test_errors_are_messages_not_traces(
    client: Client, images: dict[str, Path], kwargs: dict[str, Any], message: str
) -> None:
    if kwargs.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(AppError, match=message) as info:
        client.predict(**call(images, method="adain", **kwargs), api_name="/stylize")
    assert "Traceback" not in str(info.value) and "/tmp" not in str(info.value)


def test_time_limit_ends_the_job_with_a_message(
    photo: Picture, art: Picture, tmp_path: Path
) -> None:
    task = api.create_task(
        "nst.style_transfer",
        method="optimization",
        size=32,
        iterations=50,
        scales=1,
        preview_every=1,
    )
    job = _Job(task, {"content": photo, "styles": [art]}, time_limit=0.0)
    job.thread.start()
    with pytest.warns(UserWarning, match="time limit"):
        *_, last = _stream(job, "optimization", [], tmp_path, iter(range(1, 9)))
    assert job.timed_out
    assert "time limit" in last[1]


def test_nst_demo_is_a_subcommand_and_help_stays_light() -> None:
    from nst_plugin.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    code = (
        "import sys; from nst_plugin.cli import build_parser; build_parser(); "
        "print('gradio' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

"""The Gradio demo: try style transfer in a browser.

The app is a thin host. It knows the task only through the plugin API (`nst_plugin.api` for the
task's manifest and `create_task`, `nst_plugin.images` for pixels), and it builds every parameter
control from the task's parameter schema, so a parameter or a third-party method that a plugin adds
appears here without editing this file. Only three names get a layout of their own: `method` (a
radio at the top), `style_weights` (one weight slider beside each style slot) and the parameters a
server must not let a browser set (`decoder`: a file path on the server).

It is also meant to be safe to leave running for other people: uploads above a pixel cap are
refused with a message, output size is capped, a queue with a concurrency limit keeps two users
from exhausting memory, each job has a time limit, and every failure reaches the page as a message,
never as a stack trace.
"""

from __future__ import annotations

import html
import inspect
import itertools
import logging
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from PIL import Image as PILImage

from nst_plugin import (
    Cancelled,
    NSTError,
    Picture,
    Progress,
    api,
    load_image,
    resolve_device,
    save_image,
    to_pil,
    write_examples,
)

log = logging.getLogger(__name__)

TASK_ID = "nst.style_transfer"
MAX_STYLES = 3
# Parameters the layout handles itself rather than as one generic control each.
LAID_OUT = ("method", "style_weights")
# Server-side values a browser must not choose (a file path on the server); a host may pin others.
PINNED: dict[str, Any] = {"decoder": ""}
# Live feedback needs previews; the schema's default (0) suits batch hosts, not a browser.
APP_DEFAULTS: dict[str, Any] = {"preview_every": 5}
GALLERY_SIZE = 24  # results a session's gallery keeps, newest first
EXAMPLES_DIR = Path(tempfile.gettempdir()) / "nst-gradio-examples"

CSS = """
.nst-progress { font-size: 0.9rem; line-height: 1.4; }
.nst-bar { height: 10px; border-radius: 5px; background: var(--neutral-200); overflow: hidden;
           margin: 4px 0 6px; }
.nst-bar > span { display: block; height: 100%; background: var(--color-accent);
                  transition: width 0.2s; }
.nst-losses { color: var(--body-text-color-subdued); font-family: var(--font-mono);
              font-size: 0.8rem; }
.nst-device { text-align: right; }
/* Empty download and gallery boxes stay small until there is something to show. */
#download .empty.large, #gallery .empty.large { min-height: 72px; height: 72px; }
"""

_SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
_MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]


def theme() -> gr.themes.Base:
    """System fonts only: the default theme fetches web fonts, which a server offline cannot."""
    return gr.themes.Soft(
        primary_hue="indigo", secondary_hue="amber", font=_SYSTEM_FONTS, font_mono=_MONO_FONTS
    )


@dataclass(frozen=True)
class Limits:
    """What one demo server lets a visitor ask for."""

    max_pixels: int = 4_000_000  # per uploaded image: a 12 MP phone photo must be downscaled
    max_size: int = 1024  # longer side of the output, in pixels
    time_limit: float = 300.0  # seconds per job; the last preview is kept when it runs out
    concurrency: int = 1  # jobs computing at once (each holds VGG activations in memory)
    queue_size: int = 16  # jobs waiting; more are turned away with a message
    max_file_size: str = "25mb"  # refused by the web server before any decoding


# ---------------------------------------------------------------------------------------------
# Controls from the schema


def upload_image(label: str, what: str, **kwargs: Any) -> gr.Image:
    """An image upload whose unreadable file becomes a message naming the slot.

    Gradio opens an upload before the event's function runs, and its own error for a file that is
    not an image names the file's path on the server. The wrapper is set on the instance: a
    subclass of a Gradio component makes Gradio write a .pyi stub beside this file.
    """
    image = gr.Image(label=label, type="filepath", image_mode=None, **kwargs)
    original = image.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return original(payload)
        except (OSError, ValueError, SyntaxError, PILImage.DecompressionBombError):
            raise gr.Error(f"The {what} could not be read as an image.") from None

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _info(param: Mapping[str, Any]) -> str:
    text = param["description"]
    text = text[:1].upper() + text[1:]
    if param.get("methods"):
        text += f" ({', '.join(param['methods'])} only)"
    return text


def _slider_step(param: Mapping[str, Any], lo: float, hi: float) -> float | None:
    """A step for a slider over lo..hi, or None when a slider would be the wrong control.

    Integers slide in whole numbers over a modest range; floats slide when about a hundred steps
    reach every sensible value (alpha 0..1 yes; a learning rate 1e-6..10, which spans decades,
    no: it gets a number box).
    """
    if param["type"] == "int":
        return 1 if hi - lo <= 10_000 else None
    step = 10.0 ** round(math.log10((hi - lo) / 100.0))
    return step if lo == 0 or lo >= step else None


def make_control(param: Mapping[str, Any], value: Any, cap: float | None = None) -> gr.Component:
    """The Gradio control for one schema entry: its type, range, choices and help text."""
    kind, name = param["type"], param["name"]
    common: dict[str, Any] = {
        "label": _label(name),
        "info": _info(param),
        "elem_id": f"p-{name}",
        "min_width": 220,
    }
    if kind == "choice":
        return gr.Dropdown(choices=list(param["choices"]), value=value, **common)
    if kind == "bool":
        return gr.Checkbox(value=bool(value), **common)
    if kind in ("int", "float"):
        lo, hi = param.get("min"), param.get("max")
        if cap is not None:
            hi = cap if hi is None else min(hi, cap)
        step = None if lo is None or hi is None else _slider_step(param, lo, hi)
        if step is not None:
            return gr.Slider(minimum=lo, maximum=hi, value=value, step=step, **common)
        return gr.Number(
            value=value, minimum=lo, maximum=hi, precision=0 if kind == "int" else None, **common
        )
    if kind == "floats":
        text = ", ".join(f"{v:g}" for v in value) if isinstance(value, list | tuple) else value
        return gr.Textbox(value=text, placeholder="comma-separated numbers", **common)
    return gr.Textbox(value=value, **common)


def _coerce(param: Mapping[str, Any], value: Any) -> Any:
    """Undo what the widgets do to numbers (a slider hands floats) before the schema checks."""
    if param["type"] == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------
# Jobs: a worker thread per run, a stop flag per session


class _Job:
    """One task run on a worker thread, reporting through a queue the generator drains.

    The task's `run` blocks and reports by callback; a Gradio generator must yield. A thread and a
    queue join the two, and `should_stop` (a Stop click, a closed page, the time limit) is polled
    by the method between steps.
    """

    def __init__(self, task: Any, inputs: dict[str, Any], time_limit: float) -> None:
        self.task = task
        self.inputs = inputs
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.time_limit = time_limit
        self.deadline = self.started + time_limit
        self.timed_out = False
        self.thread = threading.Thread(target=self._work, name="nst-job", daemon=True)

    def should_stop(self) -> bool:
        if not self.timed_out and time.monotonic() > self.deadline:
            self.timed_out = True
        return self.stop.is_set() or self.timed_out

    def _report(self, record: Progress) -> None:
        self.events.put(("progress", record))

    def _work(self) -> None:
        try:
            result = self.task.run(
                self.inputs, on_progress=self._report, should_stop=self.should_stop
            )
            self.events.put(("done", result))
        except Cancelled as exc:
            self.events.put(("cancelled", exc))
        except NSTError as exc:
            self.events.put(("error", exc))
        except Exception as exc:  # a bug or out of memory: logged here, summarised on the page
            log.exception("style transfer job failed")
            self.events.put(("crash", exc))


class _Sessions:
    """Running jobs by browser session, so the Stop button stops only its own session's job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, set[_Job]] = {}

    def add(self, session: str, job: _Job) -> None:
        with self._lock:
            self._jobs.setdefault(session, set()).add(job)

    def remove(self, session: str, job: _Job) -> None:
        with self._lock:
            jobs = self._jobs.get(session, set())
            jobs.discard(job)
            if not jobs:
                self._jobs.pop(session, None)

    def stop(self, session: str) -> int:
        with self._lock:
            jobs = list(self._jobs.get(session, ()))
        for job in jobs:
            job.stop.set()
        return len(jobs)


# ---------------------------------------------------------------------------------------------
# Rendering bits


def _progress_html(record: Progress | None, note: str = "") -> str:
    if record is None:
        return f'<div class="nst-progress">{html.escape(note)}</div>'
    share = 100.0 * record.step / max(record.total, 1)
    w, h = record.size
    head = f"Step {record.step} / {record.total}"
    if w and h:
        head += f" · working at {w}×{h} px"
    head += f" · {record.elapsed:.1f} s"
    losses = " · ".join(f"{k} {v:.3g}" for k, v in record.losses.items())
    parts = [
        '<div class="nst-progress">',
        f'<div class="nst-bar"><span style="width:{share:.1f}%"></span></div>',
        f"<div>{html.escape(head)}{(' — ' + html.escape(note)) if note else ''}</div>",
        f'<div class="nst-losses">{html.escape(losses)}</div>' if losses else "",
        "</div>",
    ]
    return "".join(parts)


def device_text() -> str:
    """Which device 'auto' computes on here, for the header: results and speed depend on it."""
    device = resolve_device("auto")
    if device.type == "cuda":
        where = f"CUDA GPU ({torch.cuda.get_device_name(device)})"
    elif device.type == "mps":
        where = "Apple GPU (MPS)"
    else:
        where = f"CPU ({torch.get_num_threads()} threads)"
    return f"Device: **{where}**"


# ---------------------------------------------------------------------------------------------
# The app


def build_app(
    *,
    limits: Limits | None = None,
    defaults: Mapping[str, Any] | None = None,
    pinned: Mapping[str, Any] | None = None,
    results_dir: str | Path | None = None,
) -> gr.Blocks:
    """The demo as a `gr.Blocks`, its controls generated from the task's parameter schema.

    defaults: initial control values (overriding the schema's and the app's own);
    pinned: parameters fixed by the server and not shown (e.g. `decoder`, a path on the server);
    results_dir: where result PNGs are written (default: a fresh folder under the temp dir,
    which Gradio serves from).

    The Blocks carries `nst_inputs`, the names of the `/stylize` endpoint's inputs in order, so
    API clients and tests can build a call from names.
    """
    limits = limits or Limits()
    manifest = api.list_tasks()[TASK_ID]
    schema = {p["name"]: p for p in manifest["params"]}
    pinned = {k: v for k, v in {**PINNED, **(pinned or {})}.items() if k in schema}
    values = {n: p["default"] for n, p in schema.items()}
    values.update({k: v for k, v in APP_DEFAULTS.items() if k in schema})
    values.update(defaults or {})
    if "size" in schema:
        values["size"] = min(values["size"], limits.max_size)
    out_dir = Path(results_dir or tempfile.mkdtemp(prefix="nst-gradio-results-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    counter = itertools.count(1)
    sessions = _Sessions()
    method_param = schema["method"]
    methods = list(method_param["choices"])
    descriptions = api.list_methods()
    generic = [n for n in schema if n not in LAID_OUT and n not in pinned]
    # One group for what applies to every method, one per method for its own parameters.
    common = [n for n in generic if not schema[n].get("methods")]
    own = {m: [n for n in generic if schema[n].get("methods") == [m]] for m in methods}
    shared = [n for n in generic if n not in common and not any(n in v for v in own.values())]

    # delete_cache: previews and uploads land in Gradio's cache; a long-lived server sheds them.
    with gr.Blocks(
        title=manifest["title"], analytics_enabled=False, delete_cache=(3600, 3600)
    ) as app:
        with gr.Row(equal_height=True):
            gr.Markdown(f"# {manifest['title']}\n{manifest['description']}")
            gr.Markdown(device_text(), elem_classes="nst-device")
        with gr.Row():
            with gr.Column(scale=5):
                content = upload_image(
                    "Content photo",
                    "content photo",
                    height=260,
                    sources=["upload", "webcam", "clipboard"],
                    elem_id="content",
                )
                style_images, style_weights = [], []
                with gr.Row():
                    for i in range(MAX_STYLES):
                        with gr.Column(min_width=140):
                            label = "Style" if i == 0 else f"Style {i + 1} (optional)"
                            style_images.append(
                                upload_image(
                                    label,
                                    f"style image {i + 1}",
                                    sources=["upload", "clipboard"],
                                    height=150,
                                    elem_id=f"style-{i + 1}",
                                )
                            )
                            style_weights.append(
                                gr.Slider(
                                    0.0,
                                    1.0,
                                    value=1.0,
                                    step=0.05,
                                    label="Blend weight",
                                    elem_id=f"weight-{i + 1}",
                                )
                            )
                method = gr.Radio(
                    choices=[(m, m) for m in methods],
                    value=values["method"],
                    label="Method",
                    info="; ".join(f"{m}: {descriptions[m]['description']}" for m in methods),
                    elem_id="method",
                )
                needs_styles = {m: descriptions[m]["needs_styles"] for m in methods}
                models = _model_thumbnails() if "model" in schema else []
                picker = gr.Gallery(
                    value=[(pic, caption) for _, pic, caption in models],
                    label="Style models (click a painting to choose its model)",
                    columns=6,
                    height=180,
                    allow_preview=False,
                    preview=False,
                    interactive=False,
                    fit_columns=False,
                    object_fit="contain",
                    visible=bool(models) and not needs_styles.get(values["method"], True),
                    elem_id="models",
                )
                with gr.Row():
                    run_btn = gr.Button("Stylize", variant="primary", elem_id="run")
                    stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                _examples(content, style_images, method, methods)
                controls: dict[str, gr.Component] = {}
                method_groups: dict[str, gr.Accordion] = {}
                with gr.Accordion("Output and common settings", open=True), gr.Row():
                    for name in [*common, *shared]:
                        cap = limits.max_size if name == "size" else None
                        controls[name] = make_control(schema[name], values[name], cap)
                for m in methods:
                    if not own[m]:
                        continue
                    visible = m == values["method"]
                    few = len(own[m]) <= 4  # a long list starts folded, under the buttons' reach
                    with gr.Accordion(f"{m} settings", open=few, visible=visible) as group:
                        with gr.Row():
                            for name in own[m]:
                                controls[name] = make_control(schema[name], values[name])
                    method_groups[m] = group
            with gr.Column(scale=4):
                result = gr.Image(
                    label="Result",
                    type="filepath",
                    format="png",
                    height=420,
                    interactive=False,
                    buttons=["download", "fullscreen"],
                    elem_id="result",
                )
                status = gr.HTML(
                    _progress_html(
                        None,
                        "Add a content photo and a style (fast: pick a style model), then press "
                        "Stylize.",
                    ),
                    elem_id="status",
                )
                download = gr.File(label="Download PNG", interactive=False, elem_id="download")
                history = gr.State([])
                gallery = gr.Gallery(
                    label="This session's results",
                    columns=4,
                    height="auto",
                    preview=False,
                    object_fit="contain",
                    format="png",
                    fit_columns=False,
                    elem_id="gallery",
                )

        def show_for_method(chosen: str) -> list[Any]:
            """Per-method controls: shown when Param.methods names the chosen method; style
            slots for methods that take style images, the model picker for those that do not."""
            updates = [gr.update(visible=m == chosen) for m in method_groups]
            for name in controls:
                applies = not schema[name].get("methods") or chosen in schema[name]["methods"]
                updates.append(gr.update(visible=applies))
            takes = needs_styles.get(chosen, True)
            updates += [gr.update(visible=takes) for _ in [*style_images, *style_weights]]
            updates.append(gr.update(visible=bool(models) and not takes))
            return updates

        method.change(
            show_for_method,
            method,
            [*method_groups.values(), *controls.values(), *style_images, *style_weights, picker],
            queue=False,
            api_visibility="private",
        )

        if "model" in controls:

            def pick_model(event: gr.SelectData) -> Any:
                """A click on a painting chooses its model."""
                return gr.update(value=models[event.index][0])

            picker.select(
                pick_model, None, controls["model"], queue=False, api_visibility="private"
            )

        slots = range(1, MAX_STYLES + 1)
        input_names = [
            "content",
            *[f"style_{i}" for i in slots],
            *[f"weight_{i}" for i in slots],
            "method",
            *controls,
        ]

        def stylize(request: gr.Request, *args: Any) -> Iterator[tuple[Any, ...]]:
            """Validate, start the job, and stream its previews and progress until it ends."""
            named = dict(zip(input_names, args[:-1]))
            done: list[tuple[str, str]] = list(args[-1] or [])
            chosen = named["method"]
            if chosen not in methods:
                raise gr.Error(f"Unknown method {chosen!r}; choose one of {', '.join(methods)}.")
            params: dict[str, Any] = {"method": chosen}
            for name, param in schema.items():
                if name in LAID_OUT or (param.get("methods") and chosen not in param["methods"]):
                    continue
                value = pinned[name] if name in pinned else named.get(name)
                if value is not None:
                    params[name] = _coerce(param, value)
            content_pic = _open_upload(named["content"], "content photo", limits)
            if content_pic is None:
                raise gr.Error("Please add a content photo first.")
            styles, weights = [], []
            for i in range(MAX_STYLES):
                pic = _open_upload(named[f"style_{i + 1}"], f"style image {i + 1}", limits)
                if pic is not None:
                    styles.append(pic)
                    weights.append(float(named[f"weight_{i + 1}"] or 0.0))
            if not needs_styles.get(chosen, True):
                styles, weights = [], []
            elif not styles:
                raise gr.Error("Please add at least one style image.")
            if "style_weights" in schema and len(styles) > 1:
                if sum(weights) <= 0:
                    raise gr.Error("At least one style needs a blend weight above 0.")
                params["style_weights"] = weights
            size = int(params.get("size") or max(content_pic.size))
            if size > limits.max_size:
                raise gr.Error(
                    f"The output would be {size} px on its longer side; this demo "
                    f"makes at most {limits.max_size} px. Choose a smaller output size."
                )
            try:
                task = api.create_task(TASK_ID, **params)
            except NSTError as exc:
                raise gr.Error(str(exc)) from None
            inputs = {"content": content_pic, **({"styles": styles} if styles else {})}
            job = _Job(task, inputs, limits.time_limit)
            session = request.session_hash or "anonymous"
            sessions.add(session, job)
            job.thread.start()
            try:
                yield from _stream(job, chosen, done, out_dir, counter)
            finally:  # Stop, a closed page or an error: the worker must not run on unseen.
                # No join here: Gradio closes an abandoned generator on its event loop, which a
                # wait would freeze; the worker ends at its next step.
                job.stop.set()
                sessions.remove(session, job)

        # Named API parameters (content=..., size=...) instead of param_0..N for API clients.
        stylize.__signature__ = _signature(input_names)  # type: ignore[attr-defined]
        run_btn.click(
            stylize,
            [content, *style_images, *style_weights, method, *controls.values(), history],
            [result, status, download, gallery, history],
            api_name="stylize",
            concurrency_limit=limits.concurrency,
            concurrency_id="stylize",
            show_progress="minimal",
            show_progress_on=[result],
        )

        def stop(request: gr.Request) -> None:
            """Ask this session's running job to stop; it ends with its last preview kept."""
            if sessions.stop(request.session_hash or "anonymous"):
                gr.Info("Stopping after the current step…")

        stop_btn.click(stop, None, None, api_name="stop", queue=False)

    app.queue(max_size=limits.queue_size, default_concurrency_limit=limits.concurrency)
    app.nst_inputs = input_names  # type: ignore[attr-defined]
    app.nst_limits = limits  # type: ignore[attr-defined]
    return app


def _examples(
    content: gr.Image, styles: list[gr.Image], method: gr.Radio, methods: list[str]
) -> None:
    """Clickable examples: photos scikit-image ships and paintings drawn in code, so they work
    offline on a fresh machine. Written once as PNGs (Gradio serves examples from files) under the
    temp dir, which Gradio may serve from. Without them the demo still works, so a failure here
    is logged, not raised."""
    try:
        files = {k: str(v) for k, v in write_examples(EXAMPLES_DIR).items()}
    except Exception:
        log.exception("example images could not be written; the demo runs without examples")
        return
    rows = [
        [files["astronaut"], files["swirls"], None, "adain"],
        [files["coffee"], files["embers"], files["meadow"], "adain"],
        [files["astronaut"], files["embers"], None, methods[0]],
    ]
    labels = [
        "Astronaut × swirls (adain)",
        "Coffee × embers + meadow (adain)",
        f"Astronaut × embers ({methods[0]})",
    ]
    if "adain" not in methods:  # a server without AdaIN keeps the one example it can run
        rows, labels = rows[2:], labels[2:]
    if "fast" in methods and api.list_style_models():  # a preset: no style image needed
        rows.append([files["coffee"], None, None, "fast"])
        labels.append("Coffee (fast, the chosen style model)")
    gr.Examples(
        examples=rows,
        example_labels=labels,
        label="Examples",
        inputs=[content, styles[0], styles[1], method],
    )


def _model_thumbnails(side: int = 160) -> list[tuple[str, PILImage.Image, str]]:
    """(name, painting, caption) for each installed style model, for the picker."""
    out = []
    for name, info in api.list_style_models().items():
        picture = api.style_model_reference(name)
        if picture is None:
            continue
        image = to_pil(picture)
        image.thumbnail((side, side))
        caption = info["title"] + (f" · {info['summary']}" if info["summary"] else "")
        out.append((name, image, caption))
    return out


def _signature(names: list[str]) -> inspect.Signature:
    """`(request, <names>, history)`: what Gradio reads to name the endpoint's parameters."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("request", kind, annotation=gr.Request)]
    params += [inspect.Parameter(n, kind) for n in [*names, "history"]]
    return inspect.Signature(params)


def _open_upload(path: str | None, what: str, limits: Limits) -> Picture | None:
    """Read an upload, refusing one above the pixel cap before decoding its pixels.

    Messages never show the server's temp path, only what the visitor called the image.
    """
    if not path:
        return None
    try:
        with PILImage.open(path) as img:
            w, h = img.size
    except PILImage.DecompressionBombError:
        raise gr.Error(
            f"The {what} is far too large; this demo accepts at most "
            f"{limits.max_pixels / 1e6:.2g} megapixels."
        ) from None
    except (OSError, ValueError, SyntaxError):
        raise gr.Error(f"The {what} could not be read as an image.") from None
    if w * h > limits.max_pixels:
        raise gr.Error(
            f"The {what} is {w}×{h} pixels ({w * h / 1e6:.2g} megapixels); this demo accepts at "
            f"most {limits.max_pixels / 1e6:.2g} megapixels per image. Please downscale it and "
            "upload it again."
        )
    try:
        return load_image(path, max_pixels=limits.max_pixels)
    except NSTError:
        raise gr.Error(f"The {what} could not be read as an image.") from None


def _stream(
    job: _Job,
    method: str,
    done: list[tuple[str, str]],
    out_dir: Path,
    counter: Iterator[int],
) -> Iterator[tuple[Any, ...]]:
    """Yield (result, status, download, gallery, history) as the job reports, then its end.

    Progress can arrive faster than a browser wants updates; each round drains the queue and
    shows only the newest record and preview.
    """
    skip = gr.skip()
    last: Progress | None = None
    preview: Picture | None = None
    yield skip, _progress_html(None, f"Running {method}…"), skip, skip, skip
    while True:
        try:
            events = [job.events.get(timeout=0.25)]
        except queue.Empty:
            events = []
        while True:
            try:
                events.append(job.events.get_nowait())
            except queue.Empty:
                break
        new_preview = False
        for kind, payload in events:
            if kind == "progress":
                last = payload
                if payload.preview is not None:
                    preview, new_preview = payload.preview, True
                continue
            if kind == "done":
                yield _finish(payload["image"], method, last, done, out_dir, counter, "done")
                return
            if kind == "cancelled":
                picture = payload.partial or preview
                if job.timed_out:
                    why = f"stopped at the {job.time_limit:g} s time limit"
                else:
                    why = "stopped"
                if picture is None:
                    gr.Warning(f"The job {why} before its first step; nothing to show.")
                    yield skip, _progress_html(last, why), skip, skip, skip
                    return
                gr.Warning(f"The job {why}; the last preview is kept.")
                yield _finish(picture, method, last, done, out_dir, counter, why)
                return
            if kind == "error":
                raise gr.Error(str(payload))
            if kind == "crash":
                raise gr.Error(
                    f"The server could not finish this job ({type(payload).__name__}). Try a "
                    "smaller output size; details are in the server log."
                )
        if not job.thread.is_alive() and job.events.empty() and not events:
            raise gr.Error("The job ended without a result; details are in the server log.")
        if events:
            note = "stopping…" if job.stop.is_set() else ""
            image = to_pil(preview) if new_preview and preview is not None else skip
            yield image, _progress_html(last, note), skip, skip, skip


def _prune(folder: Path, max_age: float = 3600.0) -> None:
    """Delete results older than `max_age` seconds: Gradio has served its own copy by then."""
    cutoff = time.time() - max_age
    for old in folder.glob("stylized-*.png"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:  # another session pruned it first
            pass


def _finish(
    picture: Picture | None,
    method: str,
    last: Progress | None,
    done: list[tuple[str, str]],
    out_dir: Path,
    counter: Iterator[int],
    why: str,
) -> tuple[Any, ...]:
    if picture is None:
        raise gr.Error("The method returned no image.")
    n = next(counter)
    _prune(out_dir)
    path = save_image(picture, out_dir / f"stylized-{os.getpid()}-{n}.png", overwrite=True)
    w, h = picture.size
    caption = f"{method} {w}×{h} · {time.strftime('%H:%M:%S')}"
    caption += "" if why == "done" else f" ({why})"
    done = [(str(path), caption), *done][:GALLERY_SIZE]
    note = "Done." if why == "done" else why.capitalize() + "."
    status = _progress_html(last, note) if last else _progress_html(None, note)
    return str(path), status, str(path), done, done


# ---------------------------------------------------------------------------------------------
# Serving


def launch(
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    *,
    app: gr.Blocks | None = None,
    block: bool = True,
    quiet: bool = False,
) -> str:
    """Serve the demo; loopback by default, so nothing is exposed unless asked for.

    block=False returns as soon as the server listens (tests use that); the URL is returned.
    """
    app = app or build_app()
    limits: Limits = getattr(app, "nst_limits", Limits())
    _, local_url, share_url = app.launch(
        server_name=host,
        server_port=port,
        share=share,
        prevent_thread_lock=not block,
        max_file_size=limits.max_file_size,
        show_error=False,
        quiet=quiet,
        ssr_mode=False,
        theme=theme(),
        css=CSS,
        footer_links=["api", "settings"],
    )
    return share_url or local_url

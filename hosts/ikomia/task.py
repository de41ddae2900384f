"""Our style-transfer task as an Ikomia `CWorkflowTask`, added to workflows like Ikomia's own.

Ikomia's own style transfer is used as
`wf.add_task(ik.infer_neural_style_transfer(model_name="candy"), auto_connect=True)`; ours is
`wf.add_task(nst_style_transfer(style="art.jpg", method="adain"), auto_connect=True)`, or
`wf.add_task(name="nst_style_transfer", params={...})` once `register()` has added the factory to
Ikomia's registry.

Ports: input 0 the content image (what `auto_connect` links to the workflow's input), input 1 a
style image (optional: the `style` parameter names style files instead), input 2 a mask (optional,
binary image); output 0 the stylized image, RGB uint8; output 1 the style's reference image (the
model's painting with `method="fast"`, as Ikomia's own task gives, else the first style image).
`model_name="starry_night"` is Ikomia's own name for a named model: method fast, that model.
Parameters are Ikomia's string map, made from the task's schema (`translate.py`), so a new
parameter or a third-party method appears here without editing this file. The task is built once
per parameter change, and models stay cached per process, so a workflow run on a folder does not
reload them for every image.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from ikomia import core, dataprocess

from nst_plugin import Cancelled, NSTError, Progress, api
from nst_plugin_hosts.ikomia import translate

NAME = "nst_style_transfer"


class StyleTransferError(RuntimeError):
    """What Ikomia reports (wrapped in its RuntimeError) for an input or parameter we refuse."""


class StyleTransferParam(core.CWorkflowTaskParam):
    """Parameters as Ikomia keeps them: a flat map of strings, all methods' parameters included."""

    def __init__(self) -> None:
        core.CWorkflowTaskParam.__init__(self)
        self.values = translate.default_strings()

    def set_values(self, params: dict[str, str]) -> None:
        params = translate.from_ikomia_names(params)
        self.values.update({k: str(v) for k, v in params.items()})

    def get_values(self) -> dict[str, str]:
        return dict(self.values)


class StyleTransferTask(core.CWorkflowTask):
    """Content (input 0) + style (input 1, a parameter, or a model) [+ mask (input 2)] ->
    image (output 0) + the style's reference (output 1)."""

    def __init__(self, name: str = NAME, param: StyleTransferParam | None = None) -> None:
        core.CWorkflowTask.__init__(self, name)
        self.add_input(dataprocess.CImageIO(core.IODataType.IMAGE))
        self.add_input(dataprocess.CImageIO(core.IODataType.IMAGE))
        self.add_input(dataprocess.CImageIO(core.IODataType.IMAGE))  # binary masks connect too
        self.add_output(dataprocess.CImageIO(core.IODataType.IMAGE))
        self.add_output(dataprocess.CImageIO(core.IODataType.IMAGE))  # the style's reference
        self.set_param_object(StyleTransferParam() if param is None else copy.deepcopy(param))
        self._stop = threading.Event()
        self._steps_added = False

    def get_progress_steps(self) -> int:
        return 1  # the real count is known once the method reports; added then

    def stop(self) -> None:
        """Ikomia's Stop: the task ends after the current step (base class first, as asked)."""
        core.CWorkflowTask.stop(self)
        self._stop.set()

    def _progress(self, record: Progress) -> None:
        if not self._steps_added:
            self.emit_add_sub_progress_steps(max(record.total - 1, 0))
            self._steps_added = True
        self.emit_step_progress()

    def run(self) -> None:
        self.begin_task_run()
        self._stop.clear()
        self._steps_added = False
        try:
            params, paths = translate.split_params(self.get_param_object().get_values())
            task = api.create_task(translate.TASK_ID, **params)
            inputs: dict[str, Any] = {
                "content": translate.array_to_picture(_image(self, 0), "content")
            }
            if translate.needs_styles(task.params["method"]):
                inputs["styles"] = translate.style_pictures([_image(self, 1)], paths)
            mask = translate.array_to_mask(_image(self, 2))
            if mask is not None:
                inputs["mask"] = mask
            result = task.run(inputs, on_progress=self._progress, should_stop=self._stop.is_set)
        except Cancelled:
            self.end_task_run()
            return  # stopped by the user: no output, as Ikomia's own tasks do
        except NSTError as exc:
            raise StyleTransferError(f"{NAME}: {exc}") from None
        self.get_output(0).set_image(translate.picture_to_array(result["image"]))
        reference = result.get("reference") or (inputs.get("styles") or [None])[0]
        if reference is not None:
            self.get_output(1).set_image(translate.picture_to_array(reference))
        self.end_task_run()


def _image(task: core.CWorkflowTask, index: int) -> Any:
    io = task.get_input(index)
    return io.get_image() if io.is_data_available() else None


class StyleTransferFactory(dataprocess.CTaskFactory):
    """Lets Ikomia's registry create the task by name (`wf.add_task(name=NAME, ...)`)."""

    def __init__(self) -> None:
        dataprocess.CTaskFactory.__init__(self)
        manifest = api.list_tasks()[translate.TASK_ID]
        self.info.name = NAME
        self.info.short_description = manifest["title"]
        self.info.description = manifest["description"]
        self.info.path = "Plugins/Python/Style transfer"
        self.info.keywords = "style transfer,gatys,adain,art"
        self.info.algo_type = core.AlgoType.INFER
        self.info.algo_tasks = "STYLE_TRANSFER"

    def create(self, param: StyleTransferParam | None = None) -> StyleTransferTask:
        return StyleTransferTask(self.info.name, param)


class StyleTransferParamFactory(dataprocess.CTaskParamFactory):
    """Lets the registry make the parameter object (workflow files, `params=` dicts)."""

    def __init__(self) -> None:
        dataprocess.CTaskParamFactory.__init__(self)
        self.name = NAME

    def create(self) -> StyleTransferParam:
        return StyleTransferParam()


def register(registry: Any = None) -> None:
    """Add the task to Ikomia's registry (the process-wide one by default); safe to repeat."""
    if registry is None:
        from ikomia.dataprocess.registry import ik_registry as registry
    if NAME not in registry.get_algorithms():
        registry.register_task(StyleTransferFactory(), StyleTransferParamFactory())


def nst_style_transfer(**params: Any) -> StyleTransferTask:
    """A task with parameters set, as Ikomia's `ik.<algorithm>(...)` helpers return one.

    Values may be typed or strings. They are checked now, so a typo fails here, in Python, not
    later inside the workflow run.
    """
    params = translate.from_ikomia_names(params)
    strings = {k: translate.to_string(v) for k, v in params.items()}
    # Unknown names, values out of range and a parameter of another method fail here by name.
    api.create_task(
        translate.TASK_ID, **{k: v for k, v in strings.items() if k != translate.STYLE_PARAM}
    )
    task = StyleTransferTask()
    task.set_parameters(strings)
    return task

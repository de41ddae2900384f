"""ComfyUI custom nodes: neural style transfer, one node per registered method.

Install: `pip install -e <the nst-plugin clone>` into ComfyUI's Python, then copy (or link) this
folder into ComfyUI's `custom_nodes/` (e.g. as `custom_nodes/nst_style_transfer`). ComfyUI imports
the folder by path and reads the two mappings below; the imports are relative so the folder works
under any name. `example_workflow_api.json` is a workflow in ComfyUI's API format (POST it to
/prompt).
"""

try:
    import nst_plugin  # noqa: F401
except ImportError as exc:  # ComfyUI logs this and goes on loading the other custom nodes
    raise ImportError(
        "the style-transfer nodes need the nst-plugin package in ComfyUI's Python environment: "
        "pip install -e <the nst-plugin clone>"
    ) from exc

from .nodes import StyleTransferError, StyleTransferNode, node_class_mappings  # noqa: E402

NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = node_class_mappings()

__all__ = [
    "NODE_CLASS_MAPPINGS",
    "NODE_DISPLAY_NAME_MAPPINGS",
    "StyleTransferError",
    "StyleTransferNode",
    "node_class_mappings",
]

"""A complete third-party host in 40 lines: it knows nothing of the engine, only the task API.

    python examples/minimal_host.py                     # list tasks and their parameters
    python examples/minimal_host.py photo.jpg art.jpg out.png method=adain alpha=0.7

Parameters arrive as strings, as many hosts store them; the task's schema parses and checks them.
"""

from __future__ import annotations

import sys

import nst_plugin as nst


def describe() -> None:
    for task_id, task in nst.list_tasks().items():
        print(f"{task_id}: {task['title']}")
        print("  inputs: " + ", ".join(p["name"] for p in task["inputs"]))
        for p in task["params"]:
            scope = f" [{', '.join(p['methods'])}]" if "methods" in p else ""
            print(f"  {p['name']} ({p['type']}, default {p['default']!r}){scope}")


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        describe()
        return 0
    content, style, out, *pairs = argv
    params = dict(pair.split("=", 1) for pair in pairs)
    try:
        task = nst.create_task("nst.style_transfer", **params)
        result = task.run(
            {"content": nst.load_image(content), "styles": [nst.load_image(style)]},
            on_progress=lambda p: print(f"\rstep {p.step}/{p.total} at {p.size}", end=""),
        )
        nst.save_image(result["image"], out)
    except nst.NSTError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

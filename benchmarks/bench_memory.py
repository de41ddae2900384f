"""Peak memory per method against image size: the figures behind the task's up-front memory check.

Each run is a fresh process (peak RSS is per process): one at 128 px for the baseline (torch,
the models, the style), one at each size. The difference over the pixel count is the method's
working memory per output pixel; the task refuses a size whose estimate exceeds the memory
available, instead of letting the kernel kill the process. Runs in fp32 (NST_BF16=0), the
machines without native bf16 being the ones that need the most.

    python benchmarks/bench_memory.py [--methods adain fast optimization]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
import nst_plugin as nst
from nst_plugin.images import Picture
method, longer = sys.argv[1], int(sys.argv[2])
w, h = longer, longer * 3 // 4
gen = torch.Generator().manual_seed(0)
photo = Picture(torch.rand(3, h, w, generator=gen))
style = Picture(torch.rand(3, 256, 256, generator=gen))
params = {"adain": {}, "fast": {"model": "starry_night"},
          "optimization": {"iterations": 3, "coarse_iterations": 1, "scales": 1, "tolerance": 0}}
task = nst.create_task("nst.style_transfer", method=method, size=0, **params[method])
inputs = {"content": photo} | ({} if method == "fast" else {"styles": [style]})
t = time.perf_counter()
task.run(inputs)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak": peak, "pixels": w * h, "seconds": time.perf_counter() - t}))
"""

SIZES = {"adain": (1024, 2048), "fast": (2048, 4096), "optimization": (512, 1024)}


def measure(method: str, longer: int) -> dict:
    env = dict(os.environ, NST_BF16="0")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, method, str(longer)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = ap.parse_args()
    print("| method | size | peak RSS GB | above the 128 px run, GB | bytes / pixel | s |")
    print("|---|---|---:|---:|---:|---:|")
    for method in args.methods:
        base = measure(method, 128)
        for longer in SIZES[method]:
            r = measure(method, longer)
            extra = r["peak"] - base["peak"]
            print(
                f"| {method} | {longer}x{longer * 3 // 4} | {r['peak'] / 1e9:.2f} "
                f"| {extra / 1e9:.2f} | {extra / r['pixels']:.0f} | {r['seconds']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

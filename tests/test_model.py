"""RRANet: shapes on odd sizes, the recurrent wiring the paper describes, gradients, and learning."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
import torch.nn.functional as F

from vidderain.config import load_model_config
from vidderain.metrics import NegativeSSIMLoss, ssim_rgb
from vidderain.models import ConvLSTMCell, RRANet, RRANetOutput
from vidderain.models.rranet_arch import pad_to_multiple
from vidderain.ops import rlcn


@pytest.fixture
def model(tiny_config) -> RRANet:
    torch.manual_seed(0)
    return RRANet(tiny_config).eval()


@pytest.mark.parametrize("config_name", ["rranet", "rranet-lite", "rranet-fast"])
def test_shipped_configs_keep_odd_sizes(config_name):
    torch.manual_seed(0)
    model = RRANet(load_model_config(config_name)).eval()
    rainy = torch.rand(1, 3, 37, 53)
    with torch.inference_mode():
        output = model(rainy)
    assert output.shape == rainy.shape and torch.isfinite(output).all()


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 64, 48), (1, 3, 9, 11), (3, 3, 17, 8)])
def test_any_size_is_padded_and_cropped(model, shape):
    with torch.inference_mode():
        result = model(torch.rand(shape), return_all=True)
    assert isinstance(result, RRANetOutput)
    assert len(result.stages) == model.config.stages
    assert all(stage.shape == shape for stage in result.stages)
    batch, _, height, width = shape
    for maps in result.attention:
        assert len(maps) == model.config.downsamplings
        for scale, attention in enumerate(maps):
            assert attention.shape == (batch, 1, -(-height // 2**scale), -(-width // 2**scale))
            assert attention.min() >= 0 and attention.max() <= 1


def test_an_unshuffled_model_works_on_image_blocks_and_adds_its_rain_at_full_resolution(
    tiny_config, sample_pair
):
    """unshuffle 2: every stage sees [I, L, B_{t-1}] as 2x2 blocks of channels, its attention maps are at a
    half of each scale's size, and B_t = I + R_t with R_t shuffled back to the frame's pixels."""
    torch.manual_seed(0)
    model = RRANet(dataclasses.replace(tiny_config, unshuffle=2)).eval()
    assert model.config.size_multiple == 16
    rainy = sample_pair[0][..., :37, :53]  # odd: padded to 48 x 64 inside
    stem_inputs, rain_layers = [], []
    model.stem.register_forward_pre_hook(lambda module, args: stem_inputs.append(args[0]))
    model.head.register_forward_hook(lambda module, args, out: rain_layers.append(out))
    with torch.inference_mode():
        result = model(rainy, return_all=True)
    assert all(stage.shape == rainy.shape for stage in result.stages)
    padded = pad_to_multiple(rainy, 16)
    first = torch.cat([padded, pad_to_multiple(result.rlcn, 16), padded], dim=1)
    torch.testing.assert_close(stem_inputs[0], F.pixel_unshuffle(first, 2))  # channel order: [I, L, B]
    for stage, rain_layer in zip(result.stages, rain_layers, strict=True):
        assert rain_layer.shape[-3:] == (12, 24, 32)
        torch.testing.assert_close(stage, (padded + F.pixel_shuffle(rain_layer, 2))[..., :37, :53])
    for maps in result.attention:
        for scale, attention in enumerate(maps):
            assert attention.shape[-2:] == (-(-37 // 2 ** (scale + 1)), -(-53 // 2 ** (scale + 1)))


def test_each_stage_adds_its_negative_rain_layer_to_the_input(model, sample_pair):
    rainy = sample_pair[0][..., :40, :56]
    rain_layers = []
    model.head.register_forward_hook(lambda module, args, out: rain_layers.append(out))
    with torch.inference_mode():
        result = model(rainy, return_all=True)
    for stage, rain_layer in zip(result.stages, rain_layers, strict=True):
        torch.testing.assert_close(stage, rainy + rain_layer)  # B_t = I + R_t, not B_{t-1} + R_t


def test_stage_inputs_are_image_rlcn_and_previous_output(model, sample_pair):
    rainy = sample_pair[0][..., :40, :56]
    stem_inputs = []
    model.stem.register_forward_pre_hook(lambda module, args: stem_inputs.append(args[0]))
    with torch.inference_mode():
        result = model(rainy, return_all=True)
    expected_rlcn = rlcn(rainy, model.config.rlcn_window, model.config.rlcn_eps)
    previous = [rainy, *result.stages[:-1]]  # B_0 = I
    for stem_input, background in zip(stem_inputs, previous, strict=True):
        image, rlcn_image, prev = stem_input.split(3, dim=1)
        torch.testing.assert_close(image, rainy)
        torch.testing.assert_close(rlcn_image, expected_rlcn)
        torch.testing.assert_close(prev, background)


def test_convlstm_state_reaches_the_same_block_in_the_next_stage(model, sample_pair):
    rainy = sample_pair[0][..., :40, :56]
    calls: dict[int, list] = {index: [] for index in range(len(model.encoders))}
    for index, encoder in enumerate(model.encoders):
        encoder.lstm.register_forward_hook(
            lambda module, args, out, i=index: calls[i].append((args[1], out[1]))
        )
    with torch.inference_mode():
        model(rainy)
    for index, block_calls in calls.items():
        assert len(block_calls) == model.config.stages
        assert block_calls[0][0] is None  # stage 1 starts from a zero state
        for (_, state_out), (state_in, _) in itertools.pairwise(block_calls):
            assert state_in is state_out, f"RRB {index} did not receive its own state from the previous stage"
            assert state_in[0].abs().sum() > 0 and state_in[1].abs().sum() > 0


def test_dropping_the_convlstm_state_changes_the_output(model, sample_pair, monkeypatch):
    rainy = sample_pair[0][..., :40, :56]
    with torch.inference_mode():
        carried = model(rainy)
        original = ConvLSTMCell.forward
        monkeypatch.setattr(ConvLSTMCell, "forward", lambda self, x, state: original(self, x, None))
        dropped = model(rainy)
    assert (carried - dropped).abs().max() > 1e-4


def test_given_rlcn_is_used_instead_of_recomputing(model, sample_pair):
    rainy = sample_pair[0][..., :40, :56]
    rlcn_image = rlcn(rainy, model.config.rlcn_window, model.config.rlcn_eps)
    with torch.inference_mode():
        torch.testing.assert_close(model(rainy, rlcn_image=rlcn_image), model(rainy))
        assert not torch.allclose(model(rainy, rlcn_image=torch.zeros_like(rlcn_image)), model(rainy))


def test_frames_in_a_batch_do_not_affect_each_other(model):
    frames = torch.rand(3, 3, 32, 40)
    with torch.inference_mode():
        batched = model(frames)
        single = torch.cat([model(frame[None]) for frame in frames])
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def test_gradients_reach_every_parameter(tiny_config, sample_pair):
    torch.manual_seed(0)
    model = RRANet(tiny_config).train()
    rainy, clean = (image[..., :48, :64] for image in sample_pair)
    NegativeSSIMLoss()(model(rainy), clean).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient"
        assert parameter.grad.abs().sum() > 0, f"{name} got a zero gradient"


def test_overfits_one_real_pair(tiny_config, sample_pair):
    torch.manual_seed(0)
    model = RRANet(tiny_config).train()
    rainy, clean = (image[..., 96:160, 112:192] for image in sample_pair)  # rain over the suit and helmet
    loss_fn = NegativeSSIMLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(120):
        loss = loss_fn(model(rainy), clean)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.inference_mode():
        derained = model(rainy)
    assert losses[-1] < losses[0] - 0.1
    # It must beat doing nothing by a clear margin: the structural error left (1 - SSIM) shrinks by 40%.
    assert 1 - ssim_rgb(derained, clean).item() < 0.6 * (1 - ssim_rgb(rainy, clean).item())

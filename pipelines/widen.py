"""Widen RRANet weights to a config with more channels, keeping what they compute (Net2WiderNet).

    python pipelines/widen.py --weights training/rranet-lite-best.safetensors \
        --config configs/models/rranet-lite-wide.yaml --out runs/wide-init.safetensors

Each new channel of a level copies an existing one of that level (Chen, Goodfellow and Shlens, Net2Net,
2016): its incoming weights and bias are the copied channel's, and every weight reading a channel that now
has k copies is divided by k, so every layer sums what it summed before. ReLU, max pooling, the ConvLSTM's
gates and the attention's re-weighting act per channel, so copies stay copies and the output is unchanged.
A little noise on the copies' incoming weights (``--noise``, relative to each layer's weight spread) lets
them grow apart in training. The recurrent-stage count, attention channels and RLCN constants must match.
The widened weights then start a training run (``train.init`` with the wider config).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from vidderain.config import ModelConfig, load_model_config
from vidderain.errors import VidderainError
from vidderain.models import build_model
from vidderain.models.rranet_arch import RRANet
from vidderain.weights import load_weights, save_weights

# A dimension of a weight: None (not widened: image channels, attention channels), or the level whose
# channels it indexes, repeated for concatenations ([x, h] of a ConvLSTM, [F', up] of a decoder block).
Dims = tuple[int, ...] | None


def channel_maps(old: ModelConfig, new: ModelConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """Per level, the old channel each new channel copies: itself first, then random picks."""
    if len(old.widths) != len(new.widths) or any(n < o for o, n in zip(old.widths, new.widths, strict=True)):
        raise VidderainError(f"cannot widen widths {old.widths} to {new.widths}")
    same = ("stages", "attention_channels", "lstm_kernel", "rlcn_window", "rlcn_eps")
    differing = [key for key in same if getattr(old, key) != getattr(new, key)]
    if differing:
        raise VidderainError(f"widening keeps {differing[0]}: the configs differ there")
    return [
        np.concatenate([np.arange(o), rng.integers(0, o, n - o)])
        for o, n in zip(old.widths, new.widths, strict=True)
    ]


def layer_dims(model: RRANet) -> dict[str, tuple[Dims, Dims, int]]:
    """For each conv: (output dims, input dims, how many chunks its output has), by parameter prefix."""
    dims: dict[str, tuple[Dims, Dims, int]] = {"stem": ((0,), None, 1), "head": (None, (0,), 1)}
    for scale, encoder in enumerate(model.encoders):
        below = max(scale - 1, 0)
        dims[f"encoders.{scale}.conv_in"] = ((scale,), (below,), 1)
        dims[f"encoders.{scale}.lstm.gates"] = ((scale,), (scale, scale), 4)  # i, f, g, o chunks
        dims[f"encoders.{scale}.conv_out"] = ((scale,), (scale,), 1)
        if not isinstance(encoder.shortcut, torch.nn.Identity):
            dims[f"encoders.{scale}.shortcut"] = ((scale,), (below,), 1)
    for scale in range(model.config.downsamplings):
        dims[f"upsamplers.{scale}"] = ((scale,), (scale + 1,), 1)
        dims[f"attentions.{scale}.encoder_proj"] = (None, (scale,), 1)
        dims[f"attentions.{scale}.decoder_proj"] = (None, (scale,), 1)
        dims[f"decoders.{scale}.conv1"] = ((scale,), (scale, scale), 1)
        dims[f"decoders.{scale}.conv2"] = ((scale,), (scale,), 1)
        dims[f"decoders.{scale}.shortcut"] = ((scale,), (scale, scale), 1)
    return dims


def _index(
    levels: Dims, maps: list[np.ndarray], old_widths: list[int], chunks: int
) -> tuple[np.ndarray, ...]:
    """Along one dimension (concatenated levels, repeated chunks): the old index each new position reads,
    how many copies that old channel has, and whether the position is a copy (not the original)."""
    indices, divisors, copies, offset = [], [], [], 0
    for _ in range(chunks):
        for level in levels:
            counts = np.bincount(maps[level], minlength=old_widths[level])
            indices.append(offset + maps[level])
            divisors.append(counts[maps[level]])
            copies.append(np.arange(len(maps[level])) >= old_widths[level])
            offset += old_widths[level]
    return np.concatenate(indices), np.concatenate(divisors), np.concatenate(copies)


def widen(model: RRANet, config: ModelConfig, seed: int = 0, noise: float = 0.01) -> RRANet:
    """``model``'s function in the wider ``config`` (exactly, at ``noise`` 0)."""
    rng = np.random.default_rng(seed)
    maps = channel_maps(model.config, config, rng)
    widths = list(model.config.widths)
    wide = build_model(config)
    old_state, new_state = model.state_dict(), wide.state_dict()
    dims = layer_dims(model)
    for name, new in new_state.items():
        prefix, kind = name.rsplit(".", 1)
        value = old_state[name]
        if prefix in dims:
            out_levels, in_levels, chunks = dims[prefix]
            # ConvTranspose2d weights are (in, out, k, k); every other weight is (out, in, ...).
            out_axis = 1 if prefix.startswith("upsamplers") and kind == "weight" else 0
            if out_levels is not None:
                index, _, copies = _index(out_levels, maps, widths, chunks)
                value = value.index_select(out_axis, torch.from_numpy(index))
                if noise and kind == "weight":  # the copies grow apart from their originals in training
                    jitter = (
                        noise
                        * value.std()
                        * torch.randn(value.shape, generator=torch.Generator().manual_seed(seed))
                    )
                    value = value + jitter * _along(
                        torch.from_numpy(copies).to(value.dtype), out_axis, value.dim()
                    )
            if in_levels is not None and kind == "weight":
                in_axis = 1 - out_axis
                index, divisor, _ = _index(in_levels, maps, widths, 1)
                value = value.index_select(in_axis, torch.from_numpy(index))
                value = value / _along(torch.from_numpy(divisor).to(value.dtype), in_axis, value.dim())
        if value.shape != new.shape:
            raise VidderainError(
                f"{name}: widened to {tuple(value.shape)}, the config has {tuple(new.shape)}"
            )
        new_state[name] = value
    wide.load_state_dict(new_state)
    return wide


def _along(vector: torch.Tensor, axis: int, dims: int) -> torch.Tensor:
    """``vector`` shaped to broadcast along ``axis`` of a ``dims``-dimensional tensor."""
    shape = [1] * dims
    shape[axis] = -1
    return vector.view(shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True, help="weights to widen (.safetensors)")
    parser.add_argument("--config", required=True, help="the wider model config (name or YAML path)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the widened weights")
    parser.add_argument("--noise", type=float, default=0.01, help="noise on the copies, x weight std")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        config = load_model_config(args.config)
        model = load_weights(args.weights)
        wide = widen(model, config, args.seed, args.noise)
    except VidderainError as error:
        raise SystemExit(f"widen: {error}") from None
    save_weights(wide, args.out, {"vidderain.widened_from": str(args.weights)})
    print(f"widened {args.weights} ({model.config.widths}) to {config.widths}: {args.out}")


if __name__ == "__main__":
    main()

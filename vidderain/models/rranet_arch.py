"""RRANet: Recurrent RLCN-guided Attention Network (Li, Monno, Okutomi), one file for the architecture.

Paper structure, with the names used here:
- ``RLCN``: rectified local contrast normalisation of the rainy input (Eq. 2), computed once per image.
- ``ResidualRecurrentBlock`` (RRB, Fig. 2d): conv -> ConvLSTM -> conv with a residual shortcut; the
  ConvLSTM's hidden and cell state go to the same block in the next recurrent stage.
- ``RLCNGuidedAttention`` (RLCN-GAM, Eq. 3): M = sigmoid(W_A * relu(W F + W_D F_D + W_L L_s)), F' = M o F.
- ``ResidualBlock`` (RB): the decoder block after concatenating F' with the upsampled decoder features.
- ``RRANet``: N stages, each fed [I, L, B_{t-1}] with B_0 = I; every stage predicts the negative rain
  layer R_t with a 1x1 conv and outputs B_t = I + R_t.

Choices the paper leaves open (widths, N, n, RLCN window and eps) come from the YAML config; the module
choices made here: 2x2 transposed-conv upsampling (the U-Net "up-conv"), L_s by average pooling of L to
scale s, ReLU after each residual sum, and reflect padding to a multiple of 2^downsamplings (replicate
when the image is too small to reflect) with the output cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidderain.config import ModelConfig
from vidderain.ops.rlcn import rlcn

IMAGE_CHANNELS = 3
LSTMState = tuple[torch.Tensor, torch.Tensor]


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1)


def shortcut(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Identity() if in_channels == out_channels else conv1x1(in_channels, out_channels)


class RLCN(nn.Module):
    """Eq. 2 as a module with no parameters (CuPy kernel on CUDA when available)."""

    def __init__(self, window: int, eps: float) -> None:
        super().__init__()
        self.window = window
        self.eps = eps

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return rlcn(image, self.window, self.eps)

    def extra_repr(self) -> str:
        return f"window={self.window}, eps={self.eps:g}"


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM (Shi et al.): all four gates from one conv over [x, h_{t-1}]."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.gates = nn.Conv2d(2 * channels, 4 * channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, state: LSTMState | None) -> tuple[torch.Tensor, LSTMState]:
        hidden, cell = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
        input_gate, forget_gate, candidate, output_gate = self.gates(torch.cat([x, hidden], dim=1)).chunk(
            4, 1
        )
        cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(input_gate) * torch.tanh(candidate)
        hidden = torch.sigmoid(output_gate) * torch.tanh(cell)
        return hidden, (hidden, cell)


class ResidualRecurrentBlock(nn.Module):
    """RRB: conv -> ConvLSTM -> conv, plus the (projected) input; returns features and the LSTM state."""

    def __init__(self, in_channels: int, out_channels: int, lstm_kernel: int) -> None:
        super().__init__()
        self.conv_in = conv3x3(in_channels, out_channels)
        self.lstm = ConvLSTMCell(out_channels, lstm_kernel)
        self.conv_out = conv3x3(out_channels, out_channels)
        self.shortcut = shortcut(in_channels, out_channels)

    def forward(self, x: torch.Tensor, state: LSTMState | None) -> tuple[torch.Tensor, LSTMState]:
        hidden, state = self.lstm(F.relu(self.conv_in(x)), state)
        return F.relu(self.conv_out(hidden) + self.shortcut(x)), state


class ResidualBlock(nn.Module):
    """RB of the decoder: two 3x3 convs plus the (projected) input."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.shortcut = shortcut(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class RLCNGuidedAttention(nn.Module):
    """RLCN-GAM (Eq. 3): additive attention from encoder, decoder and RLCN features at one scale."""

    def __init__(self, channels: int, attention_channels: int, rlcn_channels: int = IMAGE_CHANNELS) -> None:
        super().__init__()
        self.encoder_proj = conv1x1(channels, attention_channels)  # W_s
        self.decoder_proj = conv1x1(channels, attention_channels)  # W_s^D
        self.rlcn_proj = conv3x3(rlcn_channels, attention_channels)  # W_s^L
        self.score = conv1x1(attention_channels, 1)  # W_s^A

    def forward(
        self, encoder: torch.Tensor, decoder: torch.Tensor, rlcn_image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the re-weighted encoder features F' = M o F and the attention map M (B, 1, H, W)."""
        energy = self.encoder_proj(encoder) + self.decoder_proj(decoder) + self.rlcn_proj(rlcn_image)
        attention = torch.sigmoid(self.score(F.relu(energy)))
        return attention * encoder, attention


@dataclass
class RRANetOutput:
    """Every stage's output B_1..B_N, the attention maps per stage (finest scale first) and L."""

    stages: list[torch.Tensor]
    attention: list[list[torch.Tensor]]
    rlcn: torch.Tensor


class RRANet(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths
        self.rlcn = RLCN(config.rlcn_window, config.rlcn_eps)
        # With unshuffle f > 1 every stage works on pixel-unshuffled images (each f x f block of a plane as
        # f^2 channels): I, L and B_t alike, so B_t = I + R_t holds there exactly as at full resolution
        # (pixel shuffle is a permutation) and only the last B_N is shuffled back.
        self.unshuffle = config.unshuffle
        channels = IMAGE_CHANNELS * self.unshuffle**2
        self.stem = conv3x3(3 * channels, widths[0])  # [I, L, B_{t-1}]
        self.encoders = nn.ModuleList(
            ResidualRecurrentBlock(widths[max(scale - 1, 0)], widths[scale], config.lstm_kernel)
            for scale in range(len(widths))
        )
        # Decoder modules are indexed by the scale they produce: 0 (full resolution) .. downsamplings - 1.
        self.upsamplers = nn.ModuleList(
            nn.ConvTranspose2d(widths[scale + 1], widths[scale], kernel_size=2, stride=2)
            for scale in range(config.downsamplings)
        )
        self.attentions = nn.ModuleList(
            RLCNGuidedAttention(widths[scale], config.attention_channels, channels)
            for scale in range(config.downsamplings)
        )
        self.decoders = nn.ModuleList(
            ResidualBlock(2 * widths[scale], widths[scale]) for scale in range(config.downsamplings)
        )
        self.head = conv1x1(widths[0], channels)  # negative rain layer R_t

    def forward(
        self, rainy: torch.Tensor, rlcn_image: torch.Tensor | None = None, return_all: bool = False
    ) -> torch.Tensor | RRANetOutput:
        """Derain a (B, 3, H, W) batch in [0, 1]; any H and W. ``rlcn_image`` skips computing L here."""
        if rainy.dim() != 4 or rainy.shape[1] != IMAGE_CHANNELS:
            raise ValueError(f"RRANet expects a (B, 3, H, W) tensor, got shape {tuple(rainy.shape)}")
        height, width = rainy.shape[-2:]
        if rlcn_image is None:
            rlcn_image = self.rlcn(rainy)
        rlcn_image = rlcn_image.to(rainy.dtype)
        image = self._unshuffle(self._pad(rainy))
        rlcn_scales = [self._unshuffle(self._pad(rlcn_image))]
        for _ in range(self.config.downsamplings - 1):
            rlcn_scales.append(F.avg_pool2d(rlcn_scales[-1], 2))

        states: list[LSTMState | None] = [None] * len(self.encoders)
        background = image
        stage_outputs, stage_attention = [], []
        for stage in range(self.config.stages):
            background, attention = self._stage(image, rlcn_scales, background, states)
            if return_all or stage == self.config.stages - 1:  # (shuffled back only where used)
                stage_outputs.append(self._shuffle(background)[..., :height, :width])
            stage_attention.append(
                [self._crop_to_scale(m, s, height, width) for s, m in enumerate(attention)]
            )
        if return_all:
            return RRANetOutput(stage_outputs, stage_attention, rlcn_image)
        return stage_outputs[-1]

    def _stage(
        self,
        image: torch.Tensor,
        rlcn_scales: list[torch.Tensor],
        previous: torch.Tensor,
        states: list[LSTMState | None],
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One recurrent stage; updates ``states`` in place with each RRB's new ConvLSTM state."""
        features = self.stem(torch.cat([image, rlcn_scales[0], previous], dim=1))
        skips = []
        for scale, encoder in enumerate(self.encoders):
            if scale > 0:
                features = F.max_pool2d(features, 2)
            features, states[scale] = encoder(features, states[scale])
            skips.append(features)

        attention_maps: list[torch.Tensor] = [None] * self.config.downsamplings  # type: ignore[list-item]
        decoded = skips[-1]
        for scale in reversed(range(self.config.downsamplings)):
            upsampled = self.upsamplers[scale](decoded)
            reweighted, attention_maps[scale] = self.attentions[scale](
                skips[scale], upsampled, rlcn_scales[scale]
            )
            decoded = self.decoders[scale](torch.cat([reweighted, upsampled], dim=1))
        return image + self.head(decoded), attention_maps

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x, self.config.size_multiple)

    def _unshuffle(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(x, self.unshuffle) if self.unshuffle > 1 else x

    def _shuffle(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(x, self.unshuffle) if self.unshuffle > 1 else x

    def _crop_to_scale(self, x: torch.Tensor, scale: int, height: int, width: int) -> torch.Tensor:
        """Crop a map of U-Net scale ``scale`` to the frame's size there (the padding removed)."""
        factor = self.unshuffle * 2**scale
        return x[..., : -(-height // factor), : -(-width // factor)]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right to a multiple of ``multiple``: reflect, or replicate where the image is
    too small to reflect. Exported graphs get their inputs padded by this too (vidderain.backends)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

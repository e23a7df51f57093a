"""Average weights of one network: a uniform model soup of fine-tunes from one start (Wortsman et al.,
2022), or the tail of one run's snapshots (stochastic weight averaging, Izmailov et al., 2018).

    python pipelines/average_weights.py runs/stage12/best.safetensors runs/stage12b/best.safetensors \
        --out runs/soup.safetensors

Every file must hold the same architecture (its stored config); the average keeps that config and records
the files it came from. Averaging helps only where the files lie in one basin (the same start, a few
thousand steps apart): check the result on the validation pairs and the test split like any candidate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from torch.optim.swa_utils import AveragedModel

from vidderain.errors import VidderainError
from vidderain.models.rranet_arch import RRANet
from vidderain.weights import load_weights, save_weights

SOURCES_KEY = "vidderain.averaged_from"


def average_weights(paths: list[Path]) -> RRANet:
    """The parameter-wise mean of the weights in ``paths`` (all of the first file's architecture)."""
    first = load_weights(paths[0])
    average = AveragedModel(first, use_buffers=True)  # equal weights: torch's SWA running mean
    for path in paths:
        average.update_parameters(load_weights(path, first.config))
    return average.module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, nargs="+", help="two or more weights files of one network")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if len(args.weights) < 2:
        print("average_weights: error: give two or more weights files", file=sys.stderr)
        return 2
    try:
        model = average_weights(args.weights)
    except VidderainError as error:
        print(f"average_weights: error: {error}", file=sys.stderr)
        return 2
    sources = json.dumps([str(path) for path in args.weights])
    print(save_weights(model, args.out, {SOURCES_KEY: sources}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

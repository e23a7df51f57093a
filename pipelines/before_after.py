"""A before | after sheet of real rain for the model card: held-out real frames, rainy and through each model.

    python pipelines/before_after.py --out docs/real-before-after.jpg [--weights A.safetensors B ...]

Rows: frame 24 of the two still-camera clips the validation holds out of training (`real/clips/zsvd-152`,
a night street in heavy rain; `zsvd-307`, trees in moderate rain) and a frame of `real/j4rnet` (handheld);
columns: the rainy frame, then each model's output (default: the shipped rranet-lite), each frame alone
(no temporal fusion: the model as the card describes it). Every panel is cut to PANEL_WIDTH pixels wide.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np

from vidderain.engine.colour import frame_to_rgb
from vidderain.imageio import read_rgb, write_rgb
from vidderain.inference import Derainer, load_model, resolve_device

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
CLIP_FRAME = 24
ROWS = (("clips/zsvd-152.mp4", "night street, heavy rain"), ("clips/zsvd-307.mp4", "trees, moderate rain"),
        ("j4rnet/0010.png", "j4rnet, handheld"))  # fmt: skip
PANEL_WIDTH = 480
GAP = 6  # white pixels between panels
LABEL_SCALE = 0.55


def real_frame(data: Path, name: str) -> np.ndarray:
    if name.endswith(".png"):
        return read_rgb(data / name)
    with av.open(str(data / name)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index == CLIP_FRAME:
                return frame_to_rgb(frame)
    raise SystemExit(f"before_after: error: {name} has fewer than {CLIP_FRAME + 1} frames")


def labelled(image: np.ndarray, label: str) -> np.ndarray:
    height = round(image.shape[0] * PANEL_WIDTH / image.shape[1])
    panel = cv2.resize(image, (PANEL_WIDTH, height), interpolation=cv2.INTER_AREA)
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # white on a dark outline
        cv2.putText(
            panel, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, LABEL_SCALE, colour, thickness, cv2.LINE_AA
        )
    return panel


def weights_label(weights: str) -> str:
    path = Path(weights)
    return "shipped" if path.parent.name == "pretrained" else path.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", nargs="*", default=[], help="weights files (default: the shipped one)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data's real/ folder")
    args = parser.parse_args()
    device = resolve_device("auto")
    models = [load_model(None, weights) for weights in args.weights] or [load_model()]
    derainers = [
        (Derainer(m.model, device, "fp32"), f"{m.config.name} ({weights_label(m.weights)})") for m in models
    ]
    rows = []
    for name, what in ROWS:
        rainy = real_frame(args.data, name)
        panels = [labelled(rainy, f"rainy: {what}")]
        panels += [labelled(derainer(rainy[None])[0], label) for derainer, label in derainers]
        gap = np.full((panels[0].shape[0], GAP, 3), 255, np.uint8)
        rows.append(np.concatenate([part for panel in panels for part in (panel, gap)][:-1], axis=1))
    width = rows[0].shape[1]
    spacer = np.full((GAP, width, 3), 255, np.uint8)
    sheet = np.concatenate([part for row in rows for part in (row, spacer)][:-1], axis=0)
    write_rgb(args.out, sheet)
    print(f"wrote {args.out}: {len(rows)} rows x {1 + len(derainers)} panels")


if __name__ == "__main__":
    main()

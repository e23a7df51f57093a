"""Train RRANet on synthetic rain over clean photographs (-SSIM on the last stage, Adam, cosine schedule).

    python pipelines/train.py --config rranet-lite --iterations 1500 --out weights.safetensors

Clean images come from --clean (a folder of photos) or, by default, scikit-image's bundled colour
photographs; rain is rendered on the fly with random styles, so every patch is a new pair. The photo named
by --holdout never enters training and is the test image of the evaluation printed at the end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vidderain.config import load_model_config
from vidderain.data.rain import RainStyle, add_rain
from vidderain.imageio import read_rgb, to_float
from vidderain.metrics import NegativeSSIMLoss, psnr_y, ssim_y
from vidderain.models import build_model
from vidderain.weights import save_weights

SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def load_photos(folder: Path | None) -> dict[str, np.ndarray]:
    if folder is not None:
        return {path.stem: to_float(read_rgb(path)) for path in sorted(folder.glob("*.png"))}
    import skimage.data

    photos = {name: to_float(getattr(skimage.data, name)()[..., :3]) for name in SKIMAGE_PHOTOS}
    photos["motorcycle"] = to_float(skimage.data.stereo_motorcycle()[0])  # the left view of the stereo pair
    return photos


def random_style(rng: np.random.Generator) -> RainStyle:
    low, high = rng.uniform(0.1, 0.35), rng.uniform(0.45, 0.9)
    return RainStyle(
        density=rng.uniform(0.2, 1.6),
        length=(rng.uniform(4, 12), rng.uniform(16, 48)),
        angle=rng.uniform(-25, 25),
        width=(1, int(rng.integers(1, 4))),
        intensity=(low, high),
        motion_blur=int(rng.integers(1, 8)),
    )


def sample_batch(
    photos: list[np.ndarray], batch: int, patch: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    rainy, clean = [], []
    for _ in range(batch):
        photo = photos[rng.integers(len(photos))]
        top = rng.integers(photo.shape[0] - patch + 1)
        left = rng.integers(photo.shape[1] - patch + 1)
        crop = photo[top : top + patch, left : left + patch]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.ascontiguousarray(crop)
        wet, _ = add_rain(crop, random_style(rng), seed=int(rng.integers(2**31)))
        rainy.append(wet)
        clean.append(crop)
    to_tensor = lambda images: torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()  # noqa: E731
    return to_tensor(rainy), to_tensor(clean)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="rranet-lite")
    parser.add_argument("--clean", type=Path, help="folder of clean photos (default: scikit-image's)")
    parser.add_argument("--holdout", default="rocket", help="photo kept out of training, for the test")
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    photos = load_photos(args.clean)
    holdout = photos.pop(args.holdout)
    model = build_model(load_model_config(args.config))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.iterations, eta_min=args.lr / 50)
    loss_fn = NegativeSSIMLoss()

    started = time.perf_counter()
    for iteration in range(1, args.iterations + 1):
        rainy, clean = sample_batch(list(photos.values()), args.batch, args.patch, rng)
        loss = loss_fn(model(rainy), clean)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if iteration % 50 == 0 or iteration == args.iterations:
            elapsed = time.perf_counter() - started
            print(
                f"iter {iteration}/{args.iterations} loss {loss.item():.4f} "
                f"({elapsed / iteration:.2f} s/iter)",
                flush=True,
            )
            save_weights(model, args.out, {"vidderain.iterations": str(iteration)})

    model.eval()
    eval_rng = np.random.default_rng(12345)
    clean = torch.from_numpy(holdout).permute(2, 0, 1)[None]
    with torch.inference_mode():
        for name, style in (
            ("light", RainStyle.light()),
            ("default", RainStyle()),
            ("heavy", RainStyle.heavy()),
        ):
            wet, _ = add_rain(holdout, style, seed=int(eval_rng.integers(2**31)))
            rainy = torch.from_numpy(np.round(wet * 255) / 255).float().permute(2, 0, 1)[None]
            derained = model(rainy).clamp(0, 1)
            print(
                f"holdout {args.holdout} {name}: rainy PSNR-Y {psnr_y(rainy, clean).item():.2f} dB "
                f"SSIM-Y {ssim_y(rainy, clean).item():.4f} -> derained "
                f"{psnr_y(derained, clean).item():.2f} dB "
                f"{ssim_y(derained, clean).item():.4f}"
            )


if __name__ == "__main__":
    main()

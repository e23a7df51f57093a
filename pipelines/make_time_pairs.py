"""Real rain made into pairs by time (vidderain.data.time_pairs), for training and validation (issue 29).

    python pipelines/make_time_pairs.py --clips ../shared/data/real/clips --out data/time-pairs \\
        --validate zsvd-152 zsvd-307 --with-pairs ../shared/data/pairs

Every still clip gives ``--pairs`` rainy frames against its rain-free estimate where they hold rain, and
against themselves elsewhere (``--validation-pairs`` for the clips named by ``--validate``): OUT/realtime/
and OUT/realtime-val/, each {rainy,clean,mask}/. OUT also links every set of ``--with-pairs`` (the shared
benchmark pairs) beside them, so one paired root holds all a train config names. Deterministic: the same
clips give the same files. A clip whose camera moves, or with too little of its frame still, is listed with
the reason and skipped.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vidderain.data.time_pairs import TimePairSettings, time_pairs, usable, write_pairs

TRAIN_SET, VALIDATION_SET = "realtime", "realtime-val"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--validate", nargs="*", default=[], help="clip names (stems) kept for validation")
    parser.add_argument("--pairs", type=int, default=48, help="rainy frames per training clip")
    parser.add_argument("--validation-pairs", type=int, default=8, help="rainy frames per validation clip")
    parser.add_argument("--with-pairs", type=Path, help="a folder of pair sets to link beside these")
    args = parser.parse_args()

    print("| clip | set | frames off the median (p50 / p90, px) | still | pairs |")
    print("| --- | --- | --- | --- | --- |")
    for clip in sorted(args.clips.glob("*.mp4")):
        held_out = clip.stem in args.validate
        settings = TimePairSettings(pairs=args.validation_pairs if held_out else args.pairs)
        pairs = time_pairs(clip, settings)
        reason = usable(pairs, settings)
        subset = VALIDATION_SET if held_out else TRAIN_SET
        written = 0 if reason else write_pairs(pairs, args.out / subset, settings)
        typical, most = pairs.shifts
        print(
            f"| {clip.stem} | {subset if written else '-'} | {typical:.2f} / {most:.2f} | "
            f"{pairs.still_share:.0%} | {written or reason} |",
            flush=True,
        )
    if args.with_pairs is not None:
        for folder in sorted(path for path in args.with_pairs.iterdir() if path.is_dir()):
            link = args.out / folder.name
            if not link.exists():
                os.symlink(os.path.relpath(folder.resolve(), args.out.resolve()), link)


if __name__ == "__main__":
    main()

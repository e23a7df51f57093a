"""The streaming engine on real clips written with PyAV: what the output keeps, and how bad input ends."""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from tests.cli_helpers import assert_one_line_error, background, vidderain, wait_until_writing
from tests.conftest import SAMPLES
from tests.media import ClipSpec, make_clip, read_planes, read_video
from vidderain.engine import EncodeOptions, VideoJob, run_video
from vidderain.engine.tiling import derain_tiled
from vidderain.imageio import read_rgb, write_rgb
from vidderain.inference import Derainer, frames_to_unit, unit_to_frames
from vidderain.weights import load_weights

ROOT = Path(__file__).resolve().parents[1]
BT709 = {"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1}


@pytest.fixture
def weights(tiny_weights: Path) -> Path:
    return tiny_weights


def derain(source: Path, target: Path, weights: Path, *options: object) -> subprocess.CompletedProcess:
    result = vidderain("run", source, "-o", target, "--weights", weights, "--device", "cpu", *options)
    assert result.returncode == 0, result.stderr
    return result


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name not in keep)


@pytest.mark.parametrize(
    ("spec", "suffix", "batch"),
    [
        (ClipSpec(width=64, height=48, frames=23, audio=True), ".mp4", 4),  # last batch partial
        (ClipSpec(width=65, height=49, frames=12), ".mp4", 1),  # odd size, no audio
        (ClipSpec(width=96, height=64, frames=15, audio=True, fps=30), ".mkv", 3),
    ],
)
def test_output_keeps_frames_timestamps_and_audio(tmp_path, weights, spec, suffix, batch):
    source = make_clip(tmp_path / f"in{suffix}", spec)
    target = tmp_path / f"out{suffix}"
    derain(source, target, weights, "--batch", batch)
    before, after = read_video(source), read_video(target)
    assert after.frames == before.frames == spec.frames
    assert after.times == before.times
    assert (after.width, after.height) == (spec.width, spec.height)
    assert after.streams == before.streams
    assert after.audio_packets == before.audio_packets  # copied byte for byte, not re-encoded
    assert leftovers(tmp_path, {source.name, target.name}) == []


def test_subtitles_and_audio_are_copied(tmp_path, weights):
    source = make_clip(tmp_path / "in.mkv", ClipSpec(frames=20, audio=True, subtitles=True))
    derain(source, tmp_path / "out.mkv", weights)
    before, after = read_video(source), read_video(tmp_path / "out.mkv")
    assert after.streams == ["video", "audio", "subtitle"]
    assert len(before.subtitle_packets) == 3 and after.subtitle_packets == before.subtitle_packets
    assert after.audio_packets == before.audio_packets
    # SRT cannot go into an mp4: a one-line error that says what to do, and no file.
    result = vidderain("run", source, "-o", tmp_path / "out.mp4", "--weights", weights)
    assert_one_line_error(result, "try .mkv")
    assert not (tmp_path / "out.mp4").exists()


def test_variable_frame_rate_timestamps(tmp_path, weights):
    pts = [0, 40, 80, 200, 240, 400, 433, 466, 900, 940]
    source = make_clip(tmp_path / "vfr.mp4", ClipSpec(frames=len(pts), pts=pts, audio=True))
    derain(source, tmp_path / "out.mp4", weights)
    before, after = read_video(source), read_video(tmp_path / "out.mp4")
    assert after.times == before.times
    assert [float(t) for t in after.times] == pytest.approx([p / 1000 for p in pts])
    assert after.audio_packets == before.audio_packets


def test_rotation_and_colour_tags_kept(tmp_path, weights):
    source = make_clip(tmp_path / "rot.mp4", ClipSpec(rotation=90, colour=BT709))
    derain(source, tmp_path / "out.mp4", weights)
    after = read_video(tmp_path / "out.mp4")
    assert after.rotation == read_video(source).rotation == 90
    assert after.colour == (1, 1, 1, 1)


@pytest.mark.parametrize(
    ("colour", "height"),
    [
        ({"colorspace": 1, "color_range": 1, "color_primaries": 1, "color_trc": 1}, 48),  # tagged BT.709
        ({"colorspace": 6, "color_range": 1, "color_primaries": 6, "color_trc": 6}, 48),  # tagged BT.601
        ({"colorspace": 1, "color_range": 2, "color_primaries": 1, "color_trc": 1}, 48),  # BT.709 full range
        ({}, 720),  # untagged HD: BT.709 by convention
    ],
)
def test_colour_round_trip_uses_the_input_matrix_and_range(tmp_path, identity_weights, colour, height):
    # With a model that returns its input, the engine is a transcoder: lossless (crf 0) 4:4:4 output
    # must give back the input's YUV samples, up to RGB rounding (1 level). A wrong matrix or range moves
    # them by 10-30.
    width = 63 if height < 720 else 1279  # odd: 4:4:4 both ways, no chroma resampling
    frames = 1 if height >= 720 else 3  # an HD frame costs the CPU model seconds
    spec = ClipSpec(width=width, height=height, frames=frames, colour=colour, content="gradient", crf=0)
    source = make_clip(tmp_path / "in.mp4", spec)
    options = ("--crf", 0, "--preset", "ultrafast", "--temporal", "off")  # fusion would average the frames
    derain(source, tmp_path / "out.mp4", identity_weights, *options)
    for planes_in, planes_out in zip(read_planes(source), read_planes(tmp_path / "out.mp4"), strict=True):
        for plane_in, plane_out in zip(planes_in, planes_out, strict=True):
            assert np.abs(plane_in.astype(int) - plane_out.astype(int)).max() <= 1


def test_a_4_2_0_video_keeps_its_brightness_through_the_engine(tmp_path, identity_weights):
    # The bundled sample is 4:2:0, as nearly every camera's video is. With a model that returns its input and
    # lossless output, Y must come back as it went in: swscale's default YUV -> RGB made every frame about
    # a level darker (-1.03 on average here), which a model then had to win back before it gained at all.
    source = SAMPLES.parent / "rainy_clip.mp4"
    options = ("--end", 0.4, "--crf", 0, "--preset", "ultrafast", "--temporal", "off")
    derain(source, tmp_path / "out.mp4", identity_weights, *options)
    written = read_planes(tmp_path / "out.mp4")
    assert len(written) == 10
    for planes_in, planes_out in zip(read_planes(source)[: len(written)], written, strict=True):
        luma_in, luma_out = (planes[0].astype(float) for planes in (planes_in, planes_out))
        assert abs(np.mean(luma_out - luma_in)) < 0.05 and np.mean(np.abs(luma_out - luma_in)) < 0.05
        for chroma_in, chroma_out in zip(planes_in[1:], planes_out[1:], strict=True):
            # Chroma is interpolated to full size and averaged back: softened a little, never shifted.
            difference = chroma_out.astype(float) - chroma_in
            assert abs(np.mean(difference)) < 0.1 and np.mean(np.abs(difference)) < 0.5


def test_engine_output_is_the_model_applied_to_each_frame(tmp_path, weights):
    spec = ClipSpec(width=63, height=47, frames=7, content="gradient")
    source = make_clip(tmp_path / "in.mp4", spec)
    derain(source, tmp_path / "out.mp4", weights, "--crf", 0, "--batch", 3, "--temporal", "off")
    derainer = Derainer(load_weights(weights), torch.device("cpu"))
    with av.open(str(source)) as inp, av.open(str(tmp_path / "out.mp4")) as out:
        for frame_in, frame_out in zip(inp.decode(video=0), out.decode(video=0), strict=True):
            rgb_in = frame_in.to_ndarray(format="rgb24", src_colorspace="smpte170m", src_color_range=1)
            expected = derainer(rgb_in[None])[0].astype(int)
            got = frame_out.to_ndarray(format="rgb24", src_colorspace="smpte170m", src_color_range=1).astype(
                int
            )
            assert np.abs(got - expected).mean() < 1.0 and np.abs(got - expected).max() <= 6


def test_segment_side_by_side_and_json_summary(tmp_path, identity_weights):
    source = make_clip(tmp_path / "in.mp4", ClipSpec(frames=20, audio=True, content="gradient"))
    result = derain(
        source,
        tmp_path / "seg.mkv",
        identity_weights,
        "--start",
        0.2,
        "--end",
        0.6,
        "--side-by-side",
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["frames"] == 10 and summary["corrupt_packets"] == 0
    # Temporal fusion is a stage of its own, on by default.
    assert set(summary["stages"]) == {"decode", "upload", "model", "temporal", "encode"}
    assert summary["bottleneck"] in summary["stages"]
    after = read_video(tmp_path / "seg.mkv")
    assert after.frames == 10 and after.width == 128
    assert [float(t) for t in after.times] == pytest.approx([i / 25 for i in range(10)])  # starts at 0
    assert 0 < len(after.audio_packets) < len(read_video(source).audio_packets)
    with av.open(str(tmp_path / "seg.mkv")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    assert np.abs(frame[:, :64] - frame[:, 64:]).mean() < 2  # identity model: both halves show the input


def test_corrupt_packet_is_skipped_and_counted(tmp_path, weights):
    source = make_clip(tmp_path / "in.mkv", ClipSpec(frames=20, corrupt_packet=6))
    decodable = read_video(source).frames
    assert decodable == 19
    result = derain(source, tmp_path / "out.mkv", weights, "--json")
    assert json.loads(result.stdout)["corrupt_packets"] == 1
    assert read_video(tmp_path / "out.mkv").frames == decodable


def test_truncated_files(tmp_path, weights):
    for suffix in (".mkv", ".mp4"):
        whole = make_clip(tmp_path / f"whole{suffix}", ClipSpec(frames=30, audio=True))
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
        target = tmp_path / f"out{suffix}"
        if suffix == ".mkv":  # a stream format: the frames before the cut are kept, with a warning
            result = derain(cut, target, weights, "--json")
            assert 0 < read_video(target).frames == read_video(cut).frames < 30
            summary = json.loads(result.stdout)
            assert "truncated or incomplete input" in summary["truncated_input"]
            assert f"({summary['frames']} of " in summary["truncated_input"]
            plain = derain(cut, target, weights, "-y")
            assert "warning: the video stream ends at" in plain.stderr and "truncated" in plain.stderr
            # The whole file (its audio runs a little past the last frame) is not called truncated.
            assert (
                json.loads(derain(whole, target, weights, "--json", "-y").stdout)["truncated_input"] is None
            )
        else:  # mp4 keeps its index at the end: without it nothing can be read
            result = vidderain("run", cut, "-o", target, "--weights", weights)
            assert_one_line_error(result, "truncated or incomplete (no index)")
            assert not target.exists()


def test_without_a_terminal_progress_is_logged_in_plain_unwrapped_lines(tmp_path):
    source = make_clip(tmp_path / "in.mp4", ClipSpec(width=160, height=96, frames=60))
    target = tmp_path / (
        "a-long-output-name-so-that-the-summary-line-runs-past-eighty-columns" + "-x" * 20 + ".mp4"
    )
    # stderr is a pipe, not a terminal; a line every 0.2 s rather than 5, so even a fast run logs some
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIDDERAIN_LOG_SECONDS", "0.2")
        result = vidderain("run", source, "-o", target, "--batch", 1)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    progress = [line for line in lines if line.startswith("progress: ")]
    assert progress and all(
        re.fullmatch(r"progress: \d+/60 frames \(\d+%\), [\d.]+ fps.*", line) for line in progress
    )
    summary = next(line for line in lines if line.startswith("derained 60 frames -> "))
    assert str(target) in summary and summary.endswith("fps)")  # one line, however long


def test_bad_inputs_give_one_line_errors_and_no_file(tmp_path, weights):
    clip = make_clip(tmp_path / "in.mp4", ClipSpec(frames=4))
    audio_only = tmp_path / "audio.mkv"
    with av.open(str(audio_only), "w") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("not a video")
    cases = [
        (tmp_path / "missing.mp4", tmp_path / "o.mp4", "no such file"),
        (audio_only, tmp_path / "o.mp4", "no video stream"),
        (not_a_video, tmp_path / "o.mp4", "cannot read"),
        (clip, clip, "output path is the input path"),
        (clip, tmp_path / "nowhere" / "o.mp4", "output folder does not exist"),
        (clip, tmp_path / "o.txt", "needs a video suffix"),
    ]
    for source, target, fragment in cases:
        assert_one_line_error(vidderain("run", source, "-o", target, "--weights", weights), fragment)
    assert_one_line_error(
        vidderain("run", clip, "-o", tmp_path / "o.mp4", "--codec", "nope"), "unknown encoder"
    )
    assert_one_line_error(vidderain("run", clip, "-o", tmp_path / "o.mp4", "--batch", 0), "--batch")
    assert leftovers(tmp_path, {"in.mp4", "audio.mkv", "notes.mp4"}) == []


def test_a_bad_job_is_refused_before_torch_loads(tmp_path):
    # A user's mistake costs a second, not torch's import: the CLI checks the job first. Run with torch
    # made unimportable, the errors still come, each in its one line.
    clip = make_clip(tmp_path / "in.mp4", ClipSpec(frames=2))
    still = SAMPLES / "rainy" / "rocket.png"
    script = "import sys; sys.modules['torch'] = None; from vidderain.cli import main; sys.exit(main())"
    cases = [
        (clip, tmp_path / "nowhere" / "o.mp4", "output folder does not exist"),
        (clip, tmp_path / "o.txt", "needs a video suffix"),
        (still, tmp_path / "nowhere" / "o.png", "output folder does not exist"),
        (still, tmp_path / "o.mp4", "needs an image suffix"),
    ]
    for source, target, fragment in cases:
        result = subprocess.run([sys.executable, "-c", script, "run", source, "-o", target],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert_one_line_error(result, fragment)
    assert leftovers(tmp_path, {"in.mp4"}) == []


@pytest.mark.parametrize(("width", "height"), [(5, 3), (2, 2), (7, 64)])
def test_frames_smaller_than_the_rlcn_window_are_refused_in_one_line(tmp_path, width, height):
    clip = make_clip(tmp_path / "tiny.mkv", ClipSpec(width=width, height=height, frames=3))
    result = vidderain("run", clip, "-o", tmp_path / "out.mkv")
    assert_one_line_error(result, f"frames of {width}x{height} are too small for rranet-lite")
    assert leftovers(tmp_path, {"tiny.mkv"}) == []
    still = tmp_path / "tiny.png"
    write_rgb(still, np.zeros((height, width, 3), np.uint8))
    assert_one_line_error(vidderain("run", still, "-o", tmp_path / "out.png"), f"frames of {width}x{height}")
    assert leftovers(tmp_path, {"tiny.mkv", "tiny.png"}) == []


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--crf", 99], "--crf 99 is out of range for libx264 (0 to 51"),
        (["--crf", -1], "--crf -1 is out of range for libx264"),
        (["--codec", "libx265", "--crf", 52], "--crf 52 is out of range for libx265"),
        (["--preset", "turbo"], "unknown --preset 'turbo' for libx264 (one of ultrafast,"),
        (["--codec", "libx265", "--preset", "p4"], "unknown --preset 'p4' for libx265"),
    ],
)
def test_encoder_options_out_of_range_are_refused_before_work(tmp_path, weights, options, fragment):
    clip = make_clip(tmp_path / "in.mp4", ClipSpec(frames=3))
    assert_one_line_error(
        vidderain("run", clip, "-o", tmp_path / "o.mp4", "--weights", weights, *options), fragment
    )
    preview = vidderain(
        "preview", clip, "--no-window", "-o", tmp_path / "live.mp4", "--weights", weights, *options
    )
    assert_one_line_error(preview, fragment)
    assert leftovers(tmp_path, {"in.mp4"}) == []


def test_an_existing_output_is_kept_unless_overwrite_is_given(tmp_path, weights):
    clip = make_clip(tmp_path / "in.mp4", ClipSpec(frames=4))
    target = tmp_path / "out.mp4"
    target.write_bytes(b"the user's earlier file")
    assert_one_line_error(
        vidderain("run", clip, "-o", target, "--weights", weights), f"{target} exists; pass -y/--overwrite"
    )
    preview = vidderain("preview", clip, "--no-window", "-o", target, "--weights", weights)
    assert_one_line_error(preview, "exists; pass -y/--overwrite")
    assert target.read_bytes() == b"the user's earlier file"
    assert vidderain("run", clip, "-o", target, "--weights", weights, "-y").returncode == 0
    assert read_video(target).frames == 4

    # Stills: one image, and a folder where two of four outputs exist already.
    still = SAMPLES / "rainy" / "rocket.png"
    image_out = tmp_path / "rocket.png"
    image_out.write_bytes(b"earlier")
    assert_one_line_error(vidderain("run", still, "-o", image_out, "--weights", weights), "rocket.png exists")
    folder = tmp_path / "stills"
    folder.mkdir()
    for name in ("astronaut.png", "chelsea.png"):
        (folder / name).write_bytes(b"earlier")
    result = vidderain("run", SAMPLES / "rainy", "-o", folder, "--weights", weights)
    assert_one_line_error(result, "astronaut.png exists (and 1 more); pass -y/--overwrite")
    assert (folder / "chelsea.png").read_bytes() == b"earlier" and len(list(folder.iterdir())) == 2
    assert (
        vidderain("run", SAMPLES / "rainy", "-o", folder, "--weights", weights, "--overwrite").returncode == 0
    )
    assert read_rgb(folder / "chelsea.png").shape == read_rgb(SAMPLES / "rainy" / "chelsea.png").shape


def test_ctrl_c_keeps_a_valid_partial_file(tmp_path):
    # The lite model at 160x96 takes ~0.1 s a frame here, so the run is mid-way when interrupted.
    source = make_clip(tmp_path / "in.mp4", ClipSpec(width=160, height=96, frames=150, audio=True))
    target = tmp_path / "clean.mp4"
    command = [
        sys.executable,
        "-m",
        "vidderain",
        "run",
        source,
        "-o",
        target,
        "--config",
        "rranet-lite",
        "--batch",
        2,
    ]
    with background(command, stderr=subprocess.PIPE, text=True) as process:
        wait_until_writing(process, tmp_path, "clean.mp4")
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    partial = tmp_path / "clean.partial.mp4"
    assert not target.exists() and partial.is_file()
    assert leftovers(tmp_path, {"in.mp4", partial.name}) == []
    kept = read_video(partial)
    assert 0 < kept.frames < 150
    assert kept.times == read_video(source).times[: kept.frames]
    assert f"kept the {kept.frames} frames" in stderr and "Traceback" not in stderr


def test_a_second_ctrl_c_keeps_a_file_that_plays_the_frames_it_claims(tmp_path):
    source = make_clip(tmp_path / "in.mp4", ClipSpec(width=160, height=96, frames=150, audio=True))
    target = tmp_path / "clean.mp4"
    command = [sys.executable, "-m", "vidderain", "run", source, "-o", target, "--batch", 2]
    with background(command, stderr=subprocess.PIPE, text=True) as process:
        wait_until_writing(process, tmp_path, "clean.mp4")
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)  # the frames in flight take about a second to drain: stop in the middle of it
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    claimed = int(re.search(r"kept the (\d+) frames", stderr)[1])
    kept = read_video(tmp_path / "clean.partial.mp4")
    assert kept.frames == claimed > 0  # the video is in the file, not only the audio
    assert kept.times == read_video(source).times[: kept.frames]
    assert leftovers(tmp_path, {"in.mp4", "clean.partial.mp4"}) == []


class FailingDerainer(Derainer):
    """Fails on its third batch, as a device error mid-run would."""

    calls = 0

    def derain_tensor(self, rainy: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("simulated device failure")
        return super().derain_tensor(rainy)


def test_failure_midway_stops_every_stage_and_leaves_no_file(tmp_path, weights):
    source = make_clip(tmp_path / "in.mp4", ClipSpec(frames=40, audio=True))
    derainer = FailingDerainer(load_weights(weights), torch.device("cpu"))
    with pytest.raises(RuntimeError, match="simulated device failure"):
        run_video(VideoJob(source, tmp_path / "out.mp4", batch=2, encode=EncodeOptions()), derainer)
    assert [t.name for t in threading.enumerate() if t.name.startswith("vidderain-")] == []
    assert leftovers(tmp_path, {"in.mp4"}) == []


def test_tiles_blend_to_the_same_result_for_pointwise_work():
    frames = torch.randint(0, 256, (2, 70, 150, 3), dtype=torch.uint8)
    assert torch.equal(derain_tiled(lambda x: x, frames, 48, 16), frames)
    expected = unit_to_frames(frames_to_unit(frames).sqrt())
    assert (derain_tiled(lambda x: x.sqrt(), frames, 32, 8).int() - expected.int()).abs().max() <= 1


def test_tiling_never_holds_the_whole_frame_in_float():
    # Record the largest float tensor the tile function sees and the band the blend keeps: both follow the
    # tile and the frame's width, not the frame's height.
    frames = torch.randint(0, 256, (2, 400, 96, 3), dtype=torch.uint8)
    seen = []
    out = derain_tiled(lambda x: seen.append(x.shape) or x, frames, 64, 16)
    assert torch.equal(out, frames) and max(shape[-2] for shape in seen) == 64


def test_tiled_model_matches_whole_frames_without_seams(tmp_path, weights, sample_pair):
    derainer = Derainer(load_weights(weights), torch.device("cpu"))
    rainy = unit_to_frames(sample_pair[0])  # 256 x 320, uint8
    whole = unit_to_frames(derainer.derain_tensor(frames_to_unit(rainy))).float()
    tiled = derain_tiled(derainer.derain_tensor, rainy, 128, 48).float()
    difference = (whole - tiled).abs()
    assert difference.mean() < 2
    # No seam: differences along tile borders are no larger than elsewhere by more than a small factor.
    assert difference[:, 100:130].mean() < 3 * difference.mean() + 1


def test_tiles_and_bf16_stay_close_to_the_plain_run(tmp_path):
    # Three frames of the rainy sample clip with the shipped model: tiling (3x2 tiles of 256 px) and bf16
    # autocast must change the output far less than the model changes the input.
    clip = ROOT / "samples" / "rainy_clip.mp4"

    def frames(name: str, *options: object) -> np.ndarray:
        # The model's own frames (no fusion): what tiling and bf16 may change is the model's output.
        result = vidderain("run", clip, "-o", tmp_path / name, "--end", 0.12, "--crf", 0, "-q", "--temporal",
                           "off", *options)  # fmt: skip
        assert result.returncode == 0, result.stderr
        with av.open(str(tmp_path / name)) as container:
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(int)

    plain, tiled, bf16 = (
        frames("plain.mp4"),
        frames("tiled.mp4", "--tile", 256),
        frames("bf16.mp4", "--precision", "bf16"),
    )
    with av.open(str(clip)) as container:
        rainy = np.stack(
            [frame.to_ndarray(format="rgb24") for frame in itertools.islice(container.decode(video=0), 3)]
        )
    assert plain.shape == tiled.shape == bf16.shape == rainy.shape == (3, 360, 640, 3)
    effect = np.abs(plain - rainy.astype(int)).mean()
    assert effect > 2  # the model really removes rain here
    assert np.abs(tiled - plain).mean() < effect / 20
    assert np.abs(bf16 - plain).mean() < effect / 10

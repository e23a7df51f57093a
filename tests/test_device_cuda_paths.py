"""CUDA-path details checked without a GPU (stubs stand in for CUDA objects); GPU twins skip here."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from vidderain.engine import device as device_module
from vidderain.engine.device import DeviceRunner, cuda_event
from vidderain.engine.stage import PipelineControl
from vidderain.inference import Derainer
from vidderain.models import build_model
from vidderain.ops.rlcn_cupy import in_layout_of


def test_cuda_events_sleep_instead_of_spinning(monkeypatch):
    made = []

    class RecordingEvent:
        def __init__(self, **options):
            made.append(options)

    monkeypatch.setattr(torch.cuda, "Event", RecordingEvent)
    cuda_event()
    cuda_event(timing=True)
    assert made == [{"enable_timing": False, "blocking": True}, {"enable_timing": True, "blocking": True}]


def pools_asked_from_threads(runner: DeviceRunner, shape: tuple[int, ...], count: int) -> list:
    """The input pool ``count`` threads get when they ask for one shape at once."""
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(runner._pool("in", shape))) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return got


def test_pools_are_shared_between_threads_and_replaced_on_a_new_size(monkeypatch, tiny_config):
    class SlowPool:  # pinning a buffer takes a while: long enough for the other thread to ask too
        def __init__(self, shape, count, control):
            time.sleep(0.05)
            self.shape = shape

    monkeypatch.setattr(device_module, "PinnedPool", SlowPool)
    runner = DeviceRunner(Derainer(build_model(tiny_config), torch.device("cpu")), 2, PipelineControl())
    got = pools_asked_from_threads(runner, (96, 160, 3), 2)
    assert got[0] is got[1]  # one pool for one size, not two with one of them lost
    runner._pool("out", (96, 160, 3))
    resized = runner._pool("in", (120, 200, 3))  # a reconnect at a new resolution
    assert resized.shape == (2, 120, 200, 3)
    assert sorted(key[0] for key in runner._pools) == ["in", "out"]  # the old input size is freed


def test_rlcn_results_come_back_in_the_models_layout():
    nchw = torch.rand(2, 3, 20, 24)
    result = torch.rand(2, 3, 20, 24)  # what the kernel writes: plain NCHW
    channels_last = nchw.contiguous(memory_format=torch.channels_last)
    assert in_layout_of(channels_last, result).is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(in_layout_of(channels_last, result), result)
    assert in_layout_of(nchw, result) is result


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_cupy_kernel_keeps_channels_last_on_the_gpu():
    from vidderain.ops import cupy_available
    from vidderain.ops.rlcn_cupy import rlcn_cupy

    if not cupy_available():
        pytest.skip("needs CuPy")
    image = torch.rand(1, 3, 64, 96, device="cuda").contiguous(memory_format=torch.channels_last)
    assert rlcn_cupy(image, 15, 0.03).is_contiguous(memory_format=torch.channels_last)


def test_waiting_for_buffers_and_uploads_is_not_counted_as_model_time():
    from vidderain.engine.colour import Colour
    from vidderain.engine.decode import DecodedFrame
    from vidderain.engine.device import DeviceBatch, HostBatch
    from vidderain.engine.infer import Batch, InferStage
    from vidderain.engine.stage import END, StageQueue

    wait = 0.2

    class BackPressuredRunner:  # the CUDA runner's shape: a slow encoder holds every output buffer
        def output_buffer(self, batch):
            time.sleep(wait)
            return "buffer"

        def infer(self, batch, output, colour):
            assert output == "buffer"
            return HostBatch(batch.frames)

    control = PipelineControl()
    batches, derained = StageQueue(4, control), StageQueue(4, control)
    for _ in range(3):
        upload_done = lambda: time.sleep(wait)  # noqa: E731  (waiting for the copy to finish)
        frame = DecodedFrame(0, np.zeros((8, 8, 3), np.uint8), 0, Colour(1, 1, 2, 2), 0)
        batches.put(
            Batch([frame], DeviceBatch(torch.zeros(1, 8, 8, 3, dtype=torch.uint8), None, upload_done))
        )
    batches.put(END)
    stage = InferStage(batches, derained, BackPressuredRunner(), control)
    stage.start()
    stage.join(timeout=30)
    assert stage.done.is_set() and control.error is None
    assert stage.stats.busy_seconds < wait / 2  # about 1.2 s of waiting, none of it "model"


def test_bf16_on_a_gpu_without_it_is_a_one_line_error(monkeypatch, tiny_config):
    from vidderain.errors import VidderainError

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    with pytest.raises(VidderainError, match="this GPU has no bf16 arithmetic; use --precision fp16 or fp32"):
        Derainer(build_model(tiny_config), torch.device("cuda"), "bf16")  # refused before any CUDA call


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_video_run_orders_its_streams_and_tunes_cudnn(tmp_path, tiny_weights):
    from tests.media import ClipSpec, make_clip, read_video
    from vidderain.engine import EncodeOptions, VideoJob, run_video
    from vidderain.weights import load_weights

    clip = make_clip(tmp_path / "in.mp4", ClipSpec(width=160, height=96, frames=12))
    derainer = Derainer(load_weights(tiny_weights), torch.device("cuda"))
    summary = run_video(VideoJob(clip, tmp_path / "out.mp4", batch=4, encode=EncodeOptions()), derainer)
    assert torch.backends.cudnn.benchmark and summary.frames == read_video(tmp_path / "out.mp4").frames == 12


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_waiting_on_a_cuda_event_does_not_spin_a_core():
    a = torch.rand(4096, 4096, device="cuda")
    for _ in range(50):  # a second or so of GPU work
        a = a @ a / 4096
    event = cuda_event()
    event.record()
    cpu, wall = time.process_time(), time.perf_counter()
    event.synchronize()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert wall > 0.05 and cpu < 0.5 * wall, (cpu, wall)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_a_slow_encoder_is_named_the_bottleneck(tmp_path, tiny_weights, monkeypatch):
    from tests.media import ClipSpec, make_clip
    from vidderain.engine import EncodeOptions, VideoJob, run_video
    from vidderain.engine.encode import VideoWriter
    from vidderain.weights import load_weights

    write, write_yuv = VideoWriter.write, VideoWriter.write_yuv420
    monkeypatch.setattr(VideoWriter, "write", lambda self, *a: (time.sleep(0.05), write(self, *a))[1])
    monkeypatch.setattr(
        VideoWriter, "write_yuv420", lambda self, *a: (time.sleep(0.05), write_yuv(self, *a))[1]
    )
    clip = make_clip(tmp_path / "in.mp4", ClipSpec(width=160, height=96, frames=24))
    derainer = Derainer(load_weights(tiny_weights), torch.device("cuda"))
    summary = run_video(VideoJob(clip, tmp_path / "out.mp4", batch=4, encode=EncodeOptions()), derainer)
    assert summary.bottleneck == "encode"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pools_from_two_threads_are_one_pool(tiny_config):
    runner = DeviceRunner(Derainer(build_model(tiny_config), torch.device("cuda")), 2, PipelineControl())
    got = pools_asked_from_threads(runner, (720, 1280, 3), 4)
    assert all(pool is got[0] for pool in got)

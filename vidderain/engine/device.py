"""The one place that owns the device: model, precision, CUDA streams and pinned host buffers.

On CUDA a batch travels as uint8 (a quarter of the bytes of float32) from a pinned host buffer to the
device on the copy stream; the compute stream waits for that copy's event, runs RLCN + RRANet, converts
to uint8 (RGB, or the encoder's yuv420p: vidderain.engine.yuv) and records an event; the download stream
waits for it and copies into a pinned output buffer, recording the event the encoder waits on. So the
upload of batch k+1, the model on batch k and the copy back of batch k-1 overlap. Pinned buffers come from
small pools that bound memory and give back-pressure: a buffer returns to its pool only once its copy has
finished (inputs) or the encoder has read it (outputs). Events block rather than spin a core.

On the CPU the same calls run synchronously with plain tensors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from vidderain.engine.colour import Colour
from vidderain.engine.stage import PipelineControl, StageQueue
from vidderain.engine.tiling import TILE_OVERLAP, derain_frames
from vidderain.engine.yuv import rgb_to_yuv420
from vidderain.inference import Derainer

PINNED_BUFFERS = 3  # per direction: one being filled, one in flight, one spare


@dataclass
class DeviceBatch:
    """A batch uploaded (or uploading) to the device."""

    frames: torch.Tensor  # (N, H, W, 3) uint8 on the device
    ready: torch.cuda.Event | None = None  # recorded on the copy stream after the upload
    release: Callable[[], None] = field(default=lambda: None)  # returns the pinned input buffer


@dataclass
class DeviceClock:
    """The device time of every batch the runner computed, as each batch's CUDA events measured it: the
    model's real busy time on CUDA, where its own thread only enqueues work."""

    seconds: float = 0.0


@dataclass
class HostBatch:
    """Derained frames on their way back to the host; the batch's device time goes to ``clock`` when the
    first stage downstream waits for it (whichever stage that is: the encoder, or temporal fusion)."""

    frames: torch.Tensor  # (N, H, W, 3) uint8 RGB, or (N, H * 3 // 2, W) yuv420p, on the host
    started: torch.cuda.Event | None = None
    done: torch.cuda.Event | None = None
    release: Callable[[], None] = field(default=lambda: None)  # returns the pinned output buffer
    pix_fmt: str = "rgb24"  # or "yuv420p": converted on the device (vidderain.engine.yuv)
    clock: DeviceClock | None = None
    counted: bool = False

    def wait(self) -> float:
        """Block until the frames are on the host; returns the device time the batch took (seconds)."""
        if self.done is None:
            return 0.0
        self.done.synchronize()
        seconds = self.started.elapsed_time(self.done) / 1000 if self.started is not None else 0.0
        if self.clock is not None and not self.counted:
            self.clock.seconds += seconds
            self.counted = True
        return seconds

    def numpy(self) -> np.ndarray:
        return self.frames.numpy()


def cuda_event(timing: bool = False) -> torch.cuda.Event:
    """A CUDA event whose ``synchronize()`` sleeps the waiting thread: the default spins a CPU core for
    the whole wait (a model call per batch), taking it from decode and x264."""
    return torch.cuda.Event(enable_timing=timing, blocking=True)


class PinnedPool:
    """A fixed set of pinned host buffers of one shape; ``acquire`` blocks (stop-aware) until one is free."""

    def __init__(self, shape: tuple[int, ...], count: int, control: PipelineControl) -> None:
        self.shape = shape
        self._free = StageQueue(count, control)
        for _ in range(count):
            self._free.put(torch.empty(shape, dtype=torch.uint8, pin_memory=True))

    def acquire(self) -> torch.Tensor:
        return self._free.get()

    def release(self, buffer: torch.Tensor) -> None:
        self._free.put(buffer)


class DeviceRunner:
    def __init__(
        self,
        derainer: Derainer,
        batch_size: int,
        control: PipelineControl,
        tile: int | None = None,
        tile_overlap: int = TILE_OVERLAP,
        yuv: bool = False,
    ) -> None:
        self.derainer = derainer
        self.yuv = yuv  # results as yuv420p, converted on the device, rather than RGB
        self.device = derainer.device
        self.batch_size = batch_size
        self.control = control
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.clock = DeviceClock()
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.copy_stream = torch.cuda.Stream(self.device)  # uploads
            self.compute_stream = torch.cuda.Stream(self.device)
            self.download_stream = torch.cuda.Stream(self.device)  # results back to the host
            # The weights were moved to the device on the default stream: the side streams must not read
            # them before that copy has finished.
            for stream in (self.copy_stream, self.compute_stream, self.download_stream):
                stream.wait_stream(torch.cuda.current_stream(self.device))
        self._pools: dict[tuple[str, tuple[int, ...]], PinnedPool] = {}
        self._pools_lock = threading.Lock()  # the upload and infer threads both ask for pools

    def _pool(self, direction: str, shape: tuple[int, ...]) -> PinnedPool:
        shape = (self.batch_size, *shape)
        key = (direction, shape)
        with self._pools_lock:
            if key not in self._pools:
                # Frame size changes are rare (a live source reconnecting at a new resolution): drop this
                # direction's pools of other sizes, so pinned memory stays bounded; buffers still in use
                # go back to their old pool and are freed with it.
                for stale in [k for k in self._pools if k[0] == direction]:
                    del self._pools[stale]
                self._pools[key] = PinnedPool(shape, PINNED_BUFFERS, self.control)
            return self._pools[key]

    def upload(self, images: list[np.ndarray]) -> DeviceBatch:
        """Start copying up to ``batch_size`` same-sized uint8 RGB frames to the device."""
        count = len(images)
        if not self.cuda:
            return DeviceBatch(torch.from_numpy(np.stack(images)))
        pool = self._pool("in", images[0].shape)
        host = pool.acquire()
        host_view = host.numpy()
        for index, image in enumerate(images):
            host_view[index] = image
        with torch.cuda.stream(self.copy_stream):
            frames = host[:count].to(self.device, non_blocking=True)
            ready = cuda_event()
            ready.record(self.copy_stream)

        def release() -> None:
            ready.synchronize()  # the pinned buffer may be refilled only once its copy has finished
            pool.release(host)

        return DeviceBatch(frames, ready, release)

    def derain(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 RGB frames (N, H, W, 3) on the device -> derained uint8 RGB (tiled past ``tile``)."""
        return derain_frames(self.derainer, frames, self.tile, self.tile_overlap)

    @torch.inference_mode()
    def warm_up(self, width: int, height: int) -> None:
        """One call on a blank frame of this size, before a live clock starts: the first call pays one-time
        costs (OpenVINO compiles each input shape, 0.4 s here; CUDA allocates and picks kernels) that would
        otherwise make the first frame shown that much late."""
        blank = torch.zeros((1, height, width, 3), dtype=torch.uint8, device=self.device)
        self.derain(blank)
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def output_buffer(self, batch: DeviceBatch) -> tuple[PinnedPool, torch.Tensor] | None:
        """A pinned buffer for the batch's results (CUDA); blocks while the encoder holds them all, which is
        back-pressure, so callers keep it out of the model's busy time."""
        if not self.cuda:
            return None
        height, width = batch.frames.shape[1:3]
        pool = self._pool("out", (height * 3 // 2, width) if self.yuv else (height, width, 3))
        return pool, pool.acquire()

    def _derain_frames(self, frames: torch.Tensor, colour: Colour | None) -> torch.Tensor:
        """uint8 RGB frames -> derained uint8 frames, as RGB or (``yuv``) as yuv420p in ``colour``."""
        derained = self.derain(frames)
        if self.yuv:
            if colour is None:
                raise ValueError("yuv420p results need the frames' colour (matrix and range)")
            return rgb_to_yuv420(derained, colour)
        return derained

    @torch.inference_mode()
    def infer(
        self,
        batch: DeviceBatch,
        output: tuple[PinnedPool, torch.Tensor] | None = None,
        colour: Colour | None = None,
    ) -> HostBatch:
        """Derain a batch. On CUDA this only enqueues the work (into ``output`` from ``output_buffer``);
        the returned batch's events say when it is done and how long the device took."""
        pix_fmt = "yuv420p" if self.yuv else "rgb24"
        if not self.cuda:
            return HostBatch(self._derain_frames(batch.frames, colour).contiguous(), pix_fmt=pix_fmt)

        pool, host = output or self.output_buffer(batch)
        count = batch.frames.shape[0]
        started, computed, done = cuda_event(timing=True), cuda_event(), cuda_event(timing=True)
        with torch.cuda.stream(self.compute_stream):
            self.compute_stream.wait_event(batch.ready)
            started.record(self.compute_stream)
            # Allocated on the copy stream, used here: tell the caching allocator not to reuse it early.
            batch.frames.record_stream(self.compute_stream)
            result = self._derain_frames(batch.frames, colour)
            computed.record(self.compute_stream)
        # The copy back runs on its own stream, so the next batch's model work overlaps it.
        with torch.cuda.stream(self.download_stream):
            self.download_stream.wait_event(computed)
            result.record_stream(self.download_stream)
            host[:count].copy_(result, non_blocking=True)
            done.record(self.download_stream)
        return HostBatch(host[:count], started, done, lambda: pool.release(host), pix_fmt, self.clock)

"""``vidderain preview SOURCE``: derain a live source and show it, in real time.

Capture -> upload -> model run on the engine's own stages and device runner; the window and the
recorders run on the main thread (OpenCV's GUI must). Real time comes from dropping, never queueing:
capture keeps only the newest batch of frames, and an uploaded batch that the model has not started yet
is replaced by a newer one. So the frame shown is at most about one batch behind the camera; capture to
display latency, fps in and out and the drops are on the overlay and in the summary.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidderain.engine.device import DeviceRunner
from vidderain.engine.encode import EncodeOptions, check_encode_options
from vidderain.engine.infer import BatchStage, InferStage
from vidderain.engine.stage import END, PipelineControl, StageQueue, all_done
from vidderain.engine.temporal import TemporalSettings, TemporalStage
from vidderain.errors import VidderainError
from vidderain.inference import Derainer, choose_tile
from vidderain.interrupt import StopRequest
from vidderain.live.capture import CaptureStage, LatestQueue, LiveSource, SourceOptions
from vidderain.live.serve import FrameServer, ServeOptions
from vidderain.live.sinks import check_sink_target, open_sink

WINDOW_TITLE = "vidderain: input | derained"
KEY_ESC = 27
IDLE_WAIT_MS = 5
OVERLAY_SCALE = 0.5
OVERLAY_LINE = 18
OVERLAY_MARGIN = 6  # pixels of panel around the text
OVERLAY_DIM = 0.35  # the panel keeps this much of the picture behind it, so the white text reads anywhere
OVERLAY_TEXT = (255, 255, 255)
SYSTEM_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts", "/usr/local/share/fonts")
MS = 1000
LATENCY_WINDOW = 100  # frames the live p95 latency is taken over


@dataclass(frozen=True)
class PreviewOptions:
    source: SourceOptions
    window: bool = True
    output: str | None = None  # a file, or a URL of vidderain.live.sinks (rtsp://...)
    record_input: str | None = None
    duration: float | None = None
    max_frames: int | None = None
    batch: int = 1
    snapshot_dir: Path = Path()
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    overwrite: bool = False  # replace existing recordings (-y)
    serve: ServeOptions | None = None  # --serve: the web view (vidderain.live.serve)
    temporal: int = 0  # causal temporal fusion over this many past frames (vidderain.engine.temporal); 0: off


@dataclass
class PreviewSummary:
    captured: int
    derained: int
    dropped: int
    seconds: float
    latencies_ms: list[float]
    reconnects: int
    outputs: list[str]
    output_reconnects: int = 0  # RTSP publishing: connections made again after the server went away
    temporal: int = 0  # past frames temporal fusion used (0: off)

    def to_dict(self) -> dict[str, Any]:
        latencies = np.array(self.latencies_ms or [0.0])
        return {
            "captured": self.captured,
            "derained": self.derained,
            "dropped": self.dropped,
            "seconds": round(self.seconds, 3),
            "fps_in": round(self.captured / self.seconds, 2) if self.seconds else 0.0,
            "fps_out": round(self.derained / self.seconds, 2) if self.seconds else 0.0,
            "latency_ms": {
                "mean": round(float(latencies.mean()), 1),
                "p95": round(float(np.percentile(latencies, 95)), 1),
                "max": round(float(latencies.max()), 1),
            },
            "reconnects": self.reconnects,
            "outputs": self.outputs,
            "output_reconnects": self.output_reconnects,
            "temporal": {"radius": self.temporal, "causal": True} if self.temporal else None,
        }


def check_display() -> None:
    """OpenCV aborts the whole process when it cannot reach a display; say so in one line instead."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise VidderainError(
            "no display to open a window on (DISPLAY is not set); use --no-window -o out.mp4"
        )


def draw_overlay(picture: np.ndarray, lines: list[str]) -> tuple[int, int, int, int]:
    """White text on a dimmed panel in the top-left corner, in place; returns the panel (x0, y0, x1, y1).
    One layer of text, no outline: an outline drawn under anti-aliased text leaves ghost edges."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    width = max(cv2.getTextSize(text, font, OVERLAY_SCALE, 1)[0][0] for text in lines)
    x1 = min(picture.shape[1], 2 * OVERLAY_MARGIN + width)
    y1 = min(picture.shape[0], OVERLAY_LINE * len(lines) + 2 * OVERLAY_MARGIN)
    panel = picture[:y1, :x1]
    panel[:] = (panel * OVERLAY_DIM).astype(picture.dtype)
    for row, text in enumerate(lines):
        origin = (OVERLAY_MARGIN, OVERLAY_MARGIN + OVERLAY_LINE * (row + 1) - OVERLAY_MARGIN // 2)
        cv2.putText(picture, text, origin, font, OVERLAY_SCALE, OVERLAY_TEXT, 1, cv2.LINE_AA)
    return 0, 0, x1, y1


def point_qt_at_fonts() -> None:
    """opencv-python points Qt at a font folder its wheels no longer ship, and Qt then prints
    "QFontDatabase: Cannot find font directory" (and a note) at every window event. Point it at the
    system's fonts instead, or at least at a folder that exists; Qt's other messages stay as they are."""
    current = os.environ.get("QT_QPA_FONTDIR")
    if current is None or Path(current).is_dir():
        return
    candidates = [*SYSTEM_FONT_DIRS, Path(cv2.__file__).parent]
    os.environ["QT_QPA_FONTDIR"] = str(next(path for path in candidates if Path(path).is_dir()))


def same_target(first: str, second: str | None) -> bool:
    """Whether two outputs name one file (however spelt) or one URL."""
    if second is None:
        return False
    if "://" in first or "://" in second:
        return first == second
    return Path(first).resolve() == Path(second).resolve()


class Preview:
    """Opened (source checked, outputs checked) before the model loads; ``run`` builds the stages."""

    def __init__(self, options: PreviewOptions) -> None:
        if options.window:
            check_display()
        elif options.output is None and options.serve is None:
            raise VidderainError(
                "--no-window needs -o FILE to record to or --serve PORT to watch from a browser "
                "(or drop --no-window to watch here)"
            )
        source_file = Path(options.source.source) if options.source.kind == "file" else None
        for target in (options.output, options.record_input):
            if target is not None:
                check_sink_target(target, options.overwrite, source_file)
                check_encode_options(options.encode)
        if options.output is not None and same_target(options.output, options.record_input):
            raise VidderainError(
                f"-o and --record-input both name {options.output}: give each its own file or URL"
            )
        self.options = options
        self.model_name = ""  # the model's config name, once run() has it
        self.source = LiveSource(options.source)
        self.source.open()
        self.control = PipelineControl()
        self.stop = StopRequest()  # run's: a Ctrl-C or SIGTERM
        self.stop_capture = threading.Event()
        self.side_by_side = True
        self.derained_count = 0
        self.latencies_ms: list[float] = []
        self.snapshots = 0
        self.last_shown: tuple[np.ndarray, np.ndarray] | None = None  # (input, output), for snapshots
        self.server: FrameServer | None = None
        if options.serve is not None:  # last: bound before the model loads, so a busy port fails fast
            self.server = FrameServer(options.serve)
            try:
                self.server.start()
            except BaseException:
                self.source.close()
                raise

    def _build(self, derainer: Derainer) -> None:
        options, batch = self.options, self.options.batch
        # Every source is live (files play at their own pace): keep only the newest frames and the newest
        # uploaded batch, so what is shown is never more than one model call behind.
        self.frames = LatestQueue(batch, self.control)
        self.batches = LatestQueue(1, self.control, on_drop=self._drop_batch)
        self.derained = StageQueue(1, self.control)
        size = self.source.size
        # The memory check every run gets; a frame too large to run whole runs in tiles (as stills do).
        config, device = derainer.model.config, derainer.device
        tile = choose_tile(config, batch, *size, device) if size is not None else None
        runner = DeviceRunner(derainer, batch, self.control, tile)
        if size is not None:
            runner.warm_up(*size)
        self.capture = CaptureStage(self.source, self.frames, self.control, self.stop_capture)
        # Temporal fusion is causal here: each frame with the frames before it, so none waits for later
        # ones (no added frame of latency; its own work is the only cost).
        from_model = StageQueue(1, self.control) if options.temporal else self.derained
        infer = InferStage(self.batches, from_model, runner, self.control)
        self.stages = [
            self.capture,
            BatchStage(self.frames, self.batches, runner, self.control, greedy=True),
            infer,
        ]
        if options.temporal:
            settings = TemporalSettings(radius=options.temporal, causal=True)
            self.stages.append(
                TemporalStage(from_model, self.derained, settings, self.control, runner.device)
            )
        self.recorders = [
            open_sink(target, options.encode, self.source.rate, options.overwrite)
            for target in (options.output, options.record_input)
            if target is not None
        ]

    @staticmethod
    def _drop_batch(batch) -> int:
        batch.uploaded.release()
        return len(batch.frames)

    def run(self, derainer: Derainer, stop: StopRequest | None = None) -> PreviewSummary:
        """Until the duration, the frame count, q/Esc, the end of a file, or ``stop`` (Ctrl-C, SIGTERM:
        the recordings are kept; a second signal abandons the frames still in flight)."""
        self.stop = stop or StopRequest()
        self.model_name = derainer.model.config.name  # on the overlay: which model this run shows
        self._build(derainer)
        if self.options.window:
            # Create the window (and OpenCV's GUI toolkit) on this thread before any stage thread starts.
            point_qt_at_fonts()
            cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_AUTOSIZE)
            cv2.waitKey(1)
        started = time.monotonic()
        for stage in self.stages:
            stage.start()
        keep = True
        try:
            self._loop(started)
        except KeyboardInterrupt:
            pass  # Ctrl-C (where Python's handler was kept) is how a live preview ends: keep the recordings
        except BaseException:
            keep = False
            raise
        finally:
            self.stop_capture.set()
            self._drain()  # returns once every stage has finished
            if self.control.error is not None:
                keep = False
            for recorder in self.recorders:
                recorder.finish(keep)
            if self.options.window:
                cv2.destroyAllWindows()
            if self.server is not None:
                self.server.stop()
        if self.control.error is not None:
            raise self.control.error
        return PreviewSummary(
            captured=self.capture.stats.frames,
            derained=self.derained_count,
            dropped=self._dropped(),
            seconds=time.monotonic() - started,
            latencies_ms=self.latencies_ms,
            reconnects=self.capture.reconnects,
            outputs=[recorder.target for recorder in self.recorders if recorder.frames],
            output_reconnects=sum(getattr(recorder, "reconnects", 0) for recorder in self.recorders),
            temporal=self.options.temporal,
        )

    def _loop(self, started: float) -> None:
        options = self.options
        while True:
            if self.stop.is_set():
                return  # Ctrl-C or SIGTERM: how a live preview ends
            if options.duration is not None and time.monotonic() - started >= options.duration:
                return
            item = self.derained.get_nowait()
            if item is None:
                if self.control.stop.is_set():
                    return
                if options.window:
                    if self._handle_key(cv2.waitKey(IDLE_WAIT_MS)):
                        return
                else:
                    time.sleep(IDLE_WAIT_MS / MS)
                continue
            if item is END:
                return
            if self._show(item):
                return
            if options.max_frames is not None and self.derained_count >= options.max_frames:
                return

    def _show(self, item) -> bool:
        """Record a derained batch and show its newest frame; True when the user asked to quit."""
        item.derained.wait()
        images = item.derained.numpy()
        now = time.monotonic()
        for frame, image in zip(item.frames, images, strict=True):
            if self.options.max_frames is not None and self.derained_count >= self.options.max_frames:
                break
            self.latencies_ms.append((now - frame.captured) * MS)
            for recorder, picture in zip(self.recorders, (image, frame.image), strict=False):
                recorder.write(picture, frame.pts, frame.colour)
            self.derained_count += 1
        for recorder in self.recorders:
            recorder.check()  # a publisher whose server refused it: the run ends in its error
        newest_input, newest_output = item.frames[-1].image, images[-1].copy()
        item.derained.release()
        figures = self.figures(now)
        if self.server is not None:
            self.server.publish(newest_input, newest_output, figures)
        if not self.options.window:
            return False
        self.last_shown = (newest_input, newest_output)
        cv2.imshow(WINDOW_TITLE, self._compose(newest_input, newest_output, figures))
        return self._handle_key(cv2.waitKey(1))

    def figures(self, now: float) -> dict[str, Any]:
        """The live figures: the window's overlay and the web view's /stats."""
        elapsed = max(now - self.capture.started, 1e-6)
        recent = self.latencies_ms[-LATENCY_WINDOW:] or [0.0]
        return {
            "fps_in": round(self.capture.stats.frames / elapsed, 1),
            "fps_out": round(self.derained_count / elapsed, 1),
            "latency_ms": round(recent[-1]),
            "latency_p95_ms": round(float(np.percentile(recent, 95))),
            "dropped": self._dropped(),
            "reconnects": self.capture.reconnects,
            "captured": self.capture.stats.frames,
            "derained": self.derained_count,
            "seconds": round(elapsed, 1),
            "model": self.model_name,
        }

    def _compose(self, rainy: np.ndarray, derained: np.ndarray, figures: dict[str, Any]) -> np.ndarray:
        picture = np.concatenate([rainy, derained], axis=1) if self.side_by_side else derained
        picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
        lines = [
            f"in {figures['fps_in']:.1f} fps  out {figures['fps_out']:.1f} fps",
            f"latency {figures['latency_ms']} ms  dropped {figures['dropped']}",
            # One line with the reconnects: the overlay stays three lines, off the picture's middle.
            f"{self.model_name}  reconnects {figures['reconnects']}  temporal "
            + (f"on ({self.options.temporal} past)" if self.options.temporal else "off"),
        ]
        draw_overlay(picture, lines)
        return picture

    def _dropped(self) -> int:
        if not isinstance(self.frames, LatestQueue):
            return 0
        return self.frames.dropped + self.batches.dropped

    def _handle_key(self, key: int) -> bool:
        key &= 0xFF
        if key in (ord("q"), KEY_ESC):
            return True
        if key == ord(" "):
            self.side_by_side = not self.side_by_side
        elif key == ord("s") and self.last_shown is not None:
            self.snapshots += 1
            name = f"vidderain-snapshot-{time.strftime('%Y%m%d-%H%M%S')}-{self.snapshots}.png"
            path = self.options.snapshot_dir / name
            cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(self.last_shown, axis=1), cv2.COLOR_RGB2BGR))
            print(f"snapshot: {path}", file=sys.stderr)
        return False

    def _drain(self) -> None:
        """Consume what is left in flight after stopping, so every stage can reach its end."""
        while not all_done(self.stages):
            if self.stop.now:  # a second Ctrl-C: drop what is in flight
                self.control.stop.set()
            item = self.derained.get_nowait()
            if item is None:
                time.sleep(IDLE_WAIT_MS / MS)
            elif item is not END:
                item.derained.wait()
                item.derained.release()

"""The streaming video engine: decode -> upload -> model -> encode on four threads (see pipeline.py).

A job is checked before torch loads (vidderain.engine.job), so the CLI refuses a bad one at once; the
engine itself (run_video, RunSummary) loads on first use.
"""

from typing import TYPE_CHECKING

from vidderain.engine.encode import EncodeOptions
from vidderain.engine.job import VideoJob, is_video_path

if TYPE_CHECKING:
    from vidderain.engine.pipeline import RunSummary, run_video

__all__ = ["EncodeOptions", "RunSummary", "VideoJob", "is_video_path", "run_video"]
_ENGINE = ("RunSummary", "run_video")


def __getattr__(name: str):  # PEP 562: torch loads with the engine, not with the package
    if name in _ENGINE:
        from vidderain.engine import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'vidderain.engine' has no attribute {name!r}")

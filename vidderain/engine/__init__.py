"""The streaming video engine: decode -> upload -> model -> encode on four threads (see pipeline.py)."""

from vidderain.engine.encode import EncodeOptions
from vidderain.engine.pipeline import RunSummary, VideoJob, is_video_path, run_video

__all__ = ["EncodeOptions", "RunSummary", "VideoJob", "is_video_path", "run_video"]

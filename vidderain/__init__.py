"""vidderain: real-time video deraining with RRANet."""

from vidderain.interrupt import StopRequest, started_as_cli

# Started as the command line: SIGINT and SIGTERM are recorded from here on, before the imports that take
# seconds on a busy machine (OpenCV here, torch after it), so a Ctrl-C meanwhile ends the run cleanly
# (vidderain.cli.main) instead of as a traceback from inside an import. A program importing the package
# keeps its own handlers.
STARTUP_STOP = StopRequest() if started_as_cli() else None
if STARTUP_STOP is not None:
    STARTUP_STOP.listen()

# OpenCV must be loaded before PyAV: with av imported first, OpenCV's Qt window (cv2.namedWindow/imshow)
# hangs forever (PyAV-Org/PyAV#978, opencv/opencv#21952: the libraries PyAV's wheel bundles clash with
# OpenCV's GUI plugin; seen here with PyAV 18.1 and opencv-python 5.0 under Xvfb). In this order both work.
import cv2  # noqa: E402, F401  (isort: keep this before anything that loads PyAV)

__version__ = "0.1.0"

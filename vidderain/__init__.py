"""vidderain: real-time video deraining with RRANet."""

# OpenCV must be loaded before PyAV: with av imported first, OpenCV's Qt window (cv2.namedWindow/imshow)
# hangs forever (PyAV-Org/PyAV#978, opencv/opencv#21952: the libraries PyAV's wheel bundles clash with
# OpenCV's GUI plugin; seen here with PyAV 18.1 and opencv-python 5.0 under Xvfb). In this order both work.
import cv2  # noqa: F401  (isort: keep this first)

__version__ = "0.1.0"

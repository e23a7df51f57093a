"""Live mode: webcam, RTSP and file preview that stays real time (capture.py, preview.py)."""

"""A real RTSP server for the live tests: GStreamer's RTSP server on 127.0.0.1, a moving test pattern.

    /usr/bin/python3 tests/rtsp_server.py PORT [WIDTH HEIGHT FPS]

Runs under Debian's system Python, which has the GObject bindings (a virtualenv does not); prints
"ready" once it listens, and serves rtsp://127.0.0.1:PORT/test until killed.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port = sys.argv[1]
    width, height, fps = (sys.argv[2:5] + ["160", "96", "25"][len(sys.argv[2:5]) :])[:3]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
        f"framerate={fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()

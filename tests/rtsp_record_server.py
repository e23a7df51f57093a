"""A real RTSP server that accepts publishing, for the live tests: GStreamer's RTSP server on 127.0.0.1.

    /usr/bin/python3 tests/rtsp_record_server.py PORT RELAY_PORT

Clients publish H.264 to rtsp://127.0.0.1:PORT/publish (ANNOUNCE/RECORD, as to MediaMTX) and watch the
same stream at rtsp://127.0.0.1:PORT/watch: the RECORD pipeline re-packs what arrives as RTP to
127.0.0.1:RELAY_PORT (UDP), where the PLAY pipeline picks it up (no Python on the data path, so the two
pipelines never wait on each other). Prints "ready" once it listens, then "published N" every second in
which access units arrived (N: all received so far), until killed. Runs under Debian's system Python,
which has the GObject bindings (a virtualenv does not).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

RTP_H264 = "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"


class Counter:
    def __init__(self) -> None:
        self.published = 0
        self.reported = 0

    def on_record_media(self, factory, media) -> None:
        sink = media.get_element().get_child_by_name("count")
        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self.on_buffer)

    def on_buffer(self, pad, info) -> Gst.PadProbeReturn:
        self.published += 1
        return Gst.PadProbeReturn.OK

    def report(self) -> bool:
        if self.published != self.reported:
            self.reported = self.published
            print(f"published {self.published}", flush=True)
        return True


def main() -> None:
    port, relay = sys.argv[1], sys.argv[2]
    Gst.init(None)
    counter = Counter()
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    # A thread per client: a publisher's interleaved RTP is read on its client's thread, which must keep
    # running while a watcher's client waits for its media to preroll on that very stream.
    server.get_thread_pool().set_max_threads(-1)

    record = GstRtspServer.RTSPMediaFactory()
    record.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    record.set_launch(
        "( rtph264depay name=depay0 ! h264parse config-interval=-1 ! video/x-h264,alignment=au "
        f"! identity name=count ! rtph264pay config-interval=1 pt=96 "
        f"! udpsink host=127.0.0.1 port={relay} sync=false async=false )"
    )
    record.connect("media-configure", counter.on_record_media)

    play = GstRtspServer.RTSPMediaFactory()
    play.set_launch(
        f'( udpsrc address=127.0.0.1 port={relay} caps="{RTP_H264}" ! rtph264depay '
        "! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    play.set_shared(True)

    mounts = server.get_mount_points()
    mounts.add_factory("/publish", record)
    mounts.add_factory("/watch", play)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    GLib.timeout_add(1000, counter.report)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()

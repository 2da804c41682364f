"""A wrapper that shows every frame, both directions, to an observer: capture, dumps, tests."""

from __future__ import annotations

from collections.abc import Callable

from usernet.link.base import BytesLike, Link, LinkWrapper

#: Called with (frame, timestamp, outgoing) for each frame; must not keep the frame.
Observer = Callable[[BytesLike, float, bool], None]


class ObservedLink(LinkWrapper):
    """Wraps `link` and calls `observer` for every frame, timestamped by `clock`.

    Frames sent are observed as handed to the link (also those the link then drops);
    frames received as the link delivered them, before the stack sees them.
    """

    __slots__ = ("_clock", "_observer")

    def __init__(self, link: Link, observer: Observer, clock: Callable[[], float]) -> None:
        super().__init__(link)
        self._observer = observer
        self._clock = clock

    def send(self, frame: BytesLike) -> None:
        self._observer(frame, self._clock(), True)
        self.tx_frames += 1
        self.tx_bytes += len(frame)
        self.inner.send(frame)

    def receive(self, max_frames: int = 64) -> list[memoryview | bytes]:
        frames = self.inner.receive(max_frames)
        if frames:
            now = self._clock()
            observer = self._observer
            for frame in frames:
                observer(frame, now, False)
                self.rx_bytes += len(frame)
            self.rx_frames += len(frames)
        return frames

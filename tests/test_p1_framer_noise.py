"""Line noise before a P1 telegram costs at most the noise (issue 22: found by the soak).

Noise that holds a `/` and a `!` but no line end made the framer take the next telegram's first
line for the noise's CRC line: a CRC error was counted and the good telegram after it was lost.
"""

from __future__ import annotations

from meterlink.protocols.p1 import CrcStatus, P1Framer, TelegramFramed, TelegramStarted, TelegramTruncated


def test_noise_with_a_slash_and_a_bang_loses_only_itself(data_file):
    raw = data_file("emucs_p1_1phase.txt")  # seed 003 annex B, as in test_p1_codec.py
    for noise in (b"\x13/\x8a!\xfe", b"/!", b"/x!4", b"/ab!12\r", b"\xff/!" + b"\x00" * 40):
        framer = P1Framer()
        events = framer.feed(noise) + framer.feed(raw)
        kinds = [type(e) for e in events]
        assert kinds[-3:] == [TelegramTruncated, TelegramStarted, TelegramFramed] or kinds[-2:] == [
            TelegramTruncated, TelegramFramed], (noise, kinds)
        last = events[-1]
        assert isinstance(last, TelegramFramed) and last.crc is CrcStatus.OK and last.telegram is not None, noise


def test_a_telegram_split_after_its_bang_still_frames(data_file):
    raw = data_file("emucs_p1_1phase.txt")
    bang = raw.rindex(b"!")
    for cut in range(bang, len(raw)):
        framer = P1Framer()
        events = framer.feed(raw[:cut]) + framer.feed(raw[cut:])
        assert [type(e) for e in events] == [TelegramStarted, TelegramFramed]
        assert events[-1].crc is CrcStatus.OK

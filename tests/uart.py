"""What a serial receiver set to one setting reads from a meter sending at another.

A pty passes bytes whatever baud and parity are set, so the detector's wrong settings are tested
below the transport: the meter's bytes become the line's levels (idle high; start bit low, data bits
least significant first, the parity bit, stop bits high), and a receiver samples that line at its
own bit time, as a UART does: a start bit is a falling edge confirmed low in its middle, each further
bit is sampled in its middle, and after the stop bit's sample it waits for the line to be high and
then for the next falling edge. So a receiver at 8N1 reads an 8E1 meter's bytes right (a low parity
bit is a framing error on the received character, and the real stop bit ends it).

What reaches the program is what Linux delivers with pyserial's settings: INPCK off (pyserial
clears it), so a character with a parity or framing error is passed on as received (n_tty's
parity-error path, termios(3)); a 7-bit receiver delivers the 7 data bits.
"""

from __future__ import annotations

from collections.abc import Iterable

from meterlink.transports import SerialSettings

GAP_BITS = 200
"""Idle line between the chunks a meter sends (a pause between telegrams), in the meter's bit times."""


def line_bits(chunks: Iterable[bytes], sent: SerialSettings, gap_bits: int = GAP_BITS) -> list[int]:
    """The line's level per bit time of the sender, idle before, between and after the chunks."""
    bits = [1] * gap_bits
    for chunk in chunks:
        for byte in chunk:
            data = [(byte >> i) & 1 for i in range(sent.bytesize)]
            bits.append(0)
            bits += data
            if sent.parity != "N":
                ones = sum(data)
                bits.append(ones % 2 if sent.parity == "E" else 1 - ones % 2)
            bits += [1] * int(round(float(sent.stopbits)))
        bits += [1] * gap_bits
    return bits


def received(chunks: Iterable[bytes], sent: SerialSettings, heard: SerialSettings, gap_bits: int = GAP_BITS) -> bytes:
    """The bytes a receiver at `heard` reads from a sender at `sent` sending `chunks`."""
    bits = line_bits(chunks, sent, gap_bits)
    sent_bit = 1 / sent.baudrate
    heard_bit = 1 / heard.baudrate
    end = len(bits) * sent_bit

    def level(t: float) -> int:
        index = int(t / sent_bit)
        return bits[index] if index < len(bits) else 1

    def next_falling_edge(t: float) -> float | None:
        index = int(t / sent_bit)
        if index < len(bits) and bits[index] == 0:
            return t  # the line was high just before t: the caller starts hunting on a high level
        while index < len(bits) - 1 and bits[index] == 0:
            index += 1
        while index < len(bits) - 1:
            index += 1
            if bits[index] == 0:
                return index * sent_bit
        return None

    width = 1 + heard.bytesize + (heard.parity != "N")
    out = bytearray()
    t = 0.0
    high = True
    while t < end:
        start = next_falling_edge(t) if high else next_falling_edge(_after_low(bits, t, sent_bit))
        if start is None:
            break
        if level(start + heard_bit / 2):
            t, high = start + heard_bit / 2, True  # a low shorter than half a bit: no start bit
            continue
        value = 0
        for i in range(heard.bytesize):
            value |= level(start + (1 + i + 0.5) * heard_bit) << i
        out.append(value)
        t = start + (width + 0.5) * heard_bit  # the stop bit's sample
        high = bool(level(t))
    return bytes(out)


def _after_low(bits: list[int], t: float, bit_time: float) -> float:
    """The first moment from `t` at which the line is high (or the end of the line)."""
    index = int(t / bit_time)
    while index < len(bits) and bits[index] == 0:
        index += 1
    return index * bit_time

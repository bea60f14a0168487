"""The one exception family every decoder raises for bad input.

A decoder never lets IndexError, struct.error or UnicodeDecodeError reach its caller: it raises a
`ProtocolError` subclass whose message names what was wrong and where, so a link can count the bad
frame and go on.
"""


class ProtocolError(ValueError):
    """Bad input to a codec; the message names what and where."""

class TransportError(Exception):
    """A link cannot be opened or has failed; the message is for a user (no traceback needed)."""

"""The adapter's web page (seed 001 ch. C.7): static files served next to the API."""

from .web import mount_web

__all__ = ["mount_web"]

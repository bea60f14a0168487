"""The simulated meters' local time zones."""

from __future__ import annotations

from datetime import timedelta, timezone, tzinfo


def local_zone(name: str) -> tzinfo:
    """The IANA zone `name`; on a box without a tz database, central European winter time all year."""
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:
        return timezone(timedelta(hours=1))

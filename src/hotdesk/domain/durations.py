"""ISO 8601 durations (``PT30M``, ``P1DT2H``) as used for retention."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration of weeks, days, hours, minutes and seconds.

    Years and months are refused because their length is ambiguous.
    """
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not an ISO 8601 duration such as PT30M, PT4H or P1D "
            "(years and months are not accepted)"
        )
    parts = {k: float(v.replace(",", ".")) for k, v in match.groupdict().items() if v}
    try:
        return timedelta(**parts)
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def format_duration(value: timedelta) -> str:
    """Format a duration the canonical ISO 8601 way (``PT1H30M``, ``PT0S``)."""
    if value < timedelta(0):
        raise ValueError("durations are never negative")
    days = value.days  # exact integer fields: no float rounding, no exponent notation
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    micros = value.microseconds
    out = "P" + (f"{days}D" if days else "")
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if seconds or micros:
        sec = f"{seconds}.{micros:06d}".rstrip("0") if micros else str(seconds)
        time += f"{sec}S"
    if time:
        out += "T" + time
    return out if out != "P" else "PT0S"

"""Which time window (and system version) a conversation belongs to (pure).

A window is a calendar period (UTC day, ISO week or month) of ``metadata.started_at``,
optionally split by the system version named in ``metadata`` (``model`` by default, the
contract's field for "the model or system version that produced the assistant messages"). Each
window is audited on its own, so each has its own estimate, interval and review sample.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
NO_VERSION = "(no version)"
"""The version of a conversation whose metadata names none (kept, never dropped)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class WindowError(ValueError):
    """A conversation cannot be placed in a window (the reason names the field)."""


@dataclass(frozen=True, order=True)
class Window:
    """One audit window: a period, and the system version when windows are split by it."""

    start: dt.date
    period: Period
    version: str | None = None

    @property
    def end(self) -> dt.date:
        """The first day after the window."""
        if self.period == "day":
            return self.start + dt.timedelta(days=1)
        if self.period == "week":
            return self.start + dt.timedelta(days=7)
        year, month = (
            (self.start.year + 1, 1)
            if self.start.month == 12
            else (
                self.start.year,
                self.start.month + 1,
            )
        )
        return dt.date(year, month, 1)

    @property
    def period_label(self) -> str:
        """``2026-01-05``, ``2026-W02`` or ``2026-01``."""
        if self.period == "week":
            year, week, _ = self.start.isocalendar()
            return f"{year}-W{week:02d}"
        if self.period == "month":
            return f"{self.start.year}-{self.start.month:02d}"
        return self.start.isoformat()

    @property
    def label(self) -> str:
        """What the report calls the window: its period, and its version if split."""
        return self.period_label + (f" · {self.version}" if self.version is not None else "")

    @property
    def slug(self) -> str:
        """A folder name: the period label, then the version made file-safe."""
        if self.version is None:
            return self.period_label
        return f"{self.period_label}_{_UNSAFE.sub('-', self.version).strip('-') or 'version'}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "label": self.label,
            "slug": self.slug,
            "period": self.period,
            "period_label": self.period_label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "version": self.version,
        }


def parse_started_at(value: Any) -> dt.datetime:
    """``metadata.started_at`` as an aware UTC datetime (ISO 8601; naive means UTC).

    Raises:
        WindowError: when the value is missing or not an ISO 8601 date-time.
    """
    if not isinstance(value, str) or not value.strip():
        raise WindowError("metadata.started_at is missing: the conversation has no time")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise WindowError(f"metadata.started_at {value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def period_start(moment: dt.datetime, period: Period) -> dt.date:
    """The first day of the period that holds ``moment`` (UTC; weeks start on Monday)."""
    day = moment.astimezone(dt.UTC).date()
    if period == "day":
        return day
    if period == "week":
        return day - dt.timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")


def version_of(metadata: dict[str, Any], key: str) -> str:
    """The system version a conversation's metadata names under ``key``."""
    value = metadata.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return NO_VERSION
    return str(value).strip()


def window_of(
    metadata: dict[str, Any], period: Period, version_key: str | None
) -> tuple[Window, dt.datetime]:
    """The window of a conversation, and its start time.

    Args:
        metadata: The conversation's ``metadata``.
        period: ``day``, ``week`` or ``month``.
        version_key: Split windows by this metadata field (``model``); None: do not split.

    Raises:
        WindowError: when ``started_at`` is missing or unreadable.
    """
    moment = parse_started_at(metadata.get("started_at"))
    version = version_of(metadata, version_key) if version_key else None
    return Window(period_start(moment, period), period, version), moment


def is_closed(window: Window, as_of: dt.datetime) -> bool:
    """True when the window's period ended by ``as_of``.

    An open window may still grow: auditing it now would draw a review sample from part of it.
    """
    return as_of.astimezone(dt.UTC).date() >= window.end


__all__ = [
    "NO_VERSION",
    "PERIODS",
    "Period",
    "Window",
    "WindowError",
    "is_closed",
    "parse_started_at",
    "period_start",
    "version_of",
    "window_of",
]

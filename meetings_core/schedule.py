"""PURGE_SCHEDULE checked as the Functions host reads it: NCrontab, 5 fields or 6 (with seconds first).

The host resolves %PURGE_SCHEDULE% itself (azure-webjobs-sdk-extensions, `CronSchedule.TryCreate`), so a value it
cannot read leaves the purge timer in error while HTTP keeps serving: nothing would purge, silently. The rules
follow NCrontab's `CrontabFieldImpl`/`CrontabField` (atifaziz/NCrontab): lists, `*`, ranges (either order),
`/step`, numbers in the field's range, month and weekday names by any prefix of their English name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")  # fmt: skip
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_TIMESPAN = re.compile(r"[0-9.]*[0-9]:[0-9]{1,2}(:[0-9]{1,2})?")
EXAMPLE = "0 */30 * * * * (every 30 minutes)"


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()

    def value(self, text: str) -> int:
        if text.isascii() and text.isdigit():
            number = int(text)
            if not self.low <= number <= self.high:
                raise ValueError(f"{number} is outside {self.low}-{self.high}")
            return number
        for index, name in enumerate(self.names):
            if text and name.lower().startswith(text.lower()):
                return self.low + index
        names = " or a name" if self.names else ""
        raise ValueError(f"'{text}' is not a number from {self.low} to {self.high}{names}")


_SIX = (
    _Field("second", 0, 59),
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day", 1, 31),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 6, _DAYS),
)


def schedule_problem(expression: str) -> str | None:
    """What the Functions host would refuse in this NCRONTAB expression, or None."""
    if _TIMESPAN.fullmatch(expression.strip()):
        return f"is a TimeSpan, which only App Service plans run (not Flex Consumption): use NCRONTAB, e.g. {EXAMPLE}"
    parts = expression.split()
    if len(parts) not in (5, 6):
        return (
            f"must be an NCRONTAB expression of 6 fields ({{second}} {{minute}} {{hour}} {{day}} {{month}} "
            f"{{day-of-week}}) or 5 (without seconds), such as {EXAMPLE}; it has {len(parts)}"
        )
    fields = _SIX if len(parts) == 6 else _SIX[1:]
    for text, field in zip(parts, fields, strict=True):
        try:
            _check_field(text, field)
        except ValueError as exc:
            return f"its {field.name} field '{text}' is not valid NCRONTAB: {exc}; example: {EXAMPLE}"
    return None


def _check_field(text: str, field: _Field) -> None:
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and not (step.isascii() and step.isdigit()):
            raise ValueError(f"the step '{step}' is not a whole number")
        if base == "*":
            continue
        first, dash, last = base.partition("-")
        field.value(first)
        if dash:
            field.value(last)

"""PURGE_SCHEDULE checked as the Functions host reads it: NCrontab, 5 fields or 6 (with seconds first).

The host resolves %PURGE_SCHEDULE% itself (azure-webjobs-sdk-extensions, `CronSchedule.TryCreate`), so a value it
cannot read leaves the purge timer in error while HTTP keeps serving: nothing would purge, silently. The rules
follow NCrontab's `CrontabFieldImpl`/`CrontabField` (atifaziz/NCrontab): lists, `*`, ranges (either order),
`/step`, numbers in the field's range, month and weekday names by any prefix of their English name.
"""

from __future__ import annotations

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")  # fmt: skip
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
EXAMPLE = "0 */30 * * * * (every 30 minutes)"
# Each field: its name, lowest and highest value, and the names its values may go by (plain tuples: this module is
# imported on every cold start, where a dataclass would cost more than the whole check).
_Field = tuple[str, int, int, tuple[str, ...]]
_SIX: tuple[_Field, ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)


def schedule_problem(expression: str) -> str | None:
    """What the Functions host would refuse in this NCRONTAB expression, or None."""
    if ":" in expression:  # NCRONTAB has no colon; a TimeSpan such as 00:30:00 has
        return f"has a ':' (a TimeSpan?), which App Service plans run, not Flex Consumption: use NCRONTAB, {EXAMPLE}"
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
            return f"its {field[0]} field '{text}' is not valid NCRONTAB: {exc}; example: {EXAMPLE}"
    return None


def _check_field(text: str, field: _Field) -> None:
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and not (step.isascii() and step.isdigit()):
            raise ValueError(f"the step '{step}' is not a whole number")
        if base == "*":
            continue
        first, dash, last = base.partition("-")
        _value(first, field)
        if dash:
            _value(last, field)


def _value(text: str, field: _Field) -> int:
    _, low, high, names = field
    if text.isascii() and text.isdigit():
        if not low <= int(text) <= high:
            raise ValueError(f"{int(text)} is outside {low}-{high}")
        return int(text)
    for index, name in enumerate(names):
        if text and name.lower().startswith(text.lower()):
            return low + index
    raise ValueError(f"'{text}' is not a number from {low} to {high}" + (" or a name" if names else ""))

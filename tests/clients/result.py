"""What a client run ends with, and every answer it saw on the way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunResult:
    """`ok` is the client's own verdict (a flow run succeeded, an SDK call returned, a delivery was accepted)."""

    ok: bool
    status: int | None
    body: Any
    seen: list[int] = field(default_factory=list)  # every status answered, retries and polls included

    @property
    def meeting_id(self) -> str | None:
        return self.body.get("id") if isinstance(self.body, dict) else None

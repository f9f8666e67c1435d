"""The floor: a plain uvicorn endpoint that returns a stored meeting body and does nothing else."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = json.dumps({"id": "MSofloor", "subject": "floor", "joinWebUrl": "https://teams.microsoft.com/x" * 20}).encode()


async def meeting(request: Request) -> Response:
    await request.body()
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/{path:path}", meeting, methods=["POST", "GET"])])

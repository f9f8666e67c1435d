"""The gateway's single ASGI app (served by uvicorn locally and AsgiFunctionApp in Azure)."""

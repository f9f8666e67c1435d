"""meeting-gateway: an idempotency gateway in front of Microsoft Graph's onlineMeetings/createOrGet.

Import the app from `meetings_core.http.app`; this package keeps its import light for cold starts.
"""

__version__ = "0.1.0"

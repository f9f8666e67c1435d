"""Where the gateway connects: plain http only to loopback, Table Storage connection strings checked like the SDK
reads them, so that a setting set carelessly stops the gateway at start instead of failing every request."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from urllib.parse import urlsplit

from azure.core.utils import parse_connection_string

# azure-data-tables expands this shorthand to Azurite's well-known account on http://127.0.0.1:10002.
_DEVELOPMENT_STORAGE = "usedevelopmentstorage=true"
LOOPBACK = "a loopback host (127.0.0.0/8, ::1, localhost)"


def is_loopback(url: str) -> bool:
    """Whether the URL's host is this machine: 127.0.0.0/8, ::1 or `localhost` (nothing leaves it)."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http(url: str) -> bool:
    """Plain http to another machine: anyone on the path reads (and can change) what is sent and answered."""
    return urlsplit(url).scheme.lower() == "http" and not is_loopback(url)


def connection_string_problem(value: str) -> str | None:
    """What is wrong with a Table Storage connection string, or None; never quotes the string or its key."""
    if value.lower() == _DEVELOPMENT_STORAGE:  # exactly, as the SDK compares it (no surrounding spaces)
        return None
    try:
        parts = parse_connection_string(value)
    except ValueError:
        return "is not a connection string: it must be Key=Value pairs separated by ';', each key once"
    if "accountkey" in parts:
        if "accountname" not in parts:
            return "has an AccountKey but no AccountName"
        if not _is_base64(parts["accountkey"]):
            return "has an AccountKey that is not base64; copy the storage account's key again"
    elif "sharedaccesssignature" not in parts:
        return "needs AccountName and AccountKey, or SharedAccessSignature"
    if "tableendpoint" not in parts and ("tablesecondaryendpoint" in parts or "accountname" not in parts):
        return "needs TableEndpoint, or AccountName, to say where Table Storage is"
    return None


def connection_string_endpoint(value: str) -> str:
    """The Table Storage endpoint a valid connection string names, as azure-data-tables derives it."""
    if value.lower() == _DEVELOPMENT_STORAGE:  # exactly, as the SDK compares it (no surrounding spaces)
        return "http://127.0.0.1:10002"
    parts = parse_connection_string(value)
    if "tableendpoint" in parts:
        return parts["tableendpoint"]
    suffix = parts.get("endpointsuffix", "core.windows.net")
    # The SDK uses DefaultEndpointsProtocol only beside an EndpointSuffix; otherwise https.
    protocol = parts.get("defaultendpointsprotocol", "https") if "endpointsuffix" in parts else "https"
    return f"{protocol}://{parts['accountname']}.table.{suffix}"


def _is_base64(text: str) -> bool:
    """Whether the SDK can sign with the key: it decodes it with `base64.b64decode` at the first request."""
    try:
        return len(base64.b64decode(text)) > 0
    except (binascii.Error, ValueError):
        return False


# The Azure Monitor exporter's rules (azure-monitor-opentelemetry-exporter, _connection_string_parser.py): pairs
# split on ';' and '=' exactly once each, keys in any case, a lower-case UUID instrumentation key, ikey authorization.
_IKEY = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # compiled at the first check, not on import
INSIGHTS_ENDPOINTS = ("ingestionendpoint", "liveendpoint")


def insights_connection_pairs(value: str) -> dict[str, str] | None:
    """The connection string's pairs with lower-case keys, or None where the exporter cannot split it."""
    pairs = [pair.split("=") for pair in value.split(";")]
    if any(len(pair) != 2 for pair in pairs):
        return None
    return {key.lower(): part for key, part in pairs}


def insights_connection_problem(value: str) -> str | None:
    """What the Azure Monitor exporter would refuse (with a traceback at start), or None; never quotes the value."""
    pairs = insights_connection_pairs(value)
    if pairs is None:
        return (
            "is not a connection string the Azure Monitor exporter reads: Key=Value pairs separated by ';' "
            "(no trailing ';'); copy it again from the Application Insights resource"
        )
    if pairs.get("authorization", "ikey").lower() != "ikey":
        return "has an Authorization other than ikey"
    if not re.fullmatch(_IKEY, pairs.get("instrumentationkey", "")):
        return "needs InstrumentationKey=<the resource's key>, a lower-case GUID"
    for name in INSIGHTS_ENDPOINTS:
        if name in pairs and urlsplit(pairs[name]).scheme.lower() not in ("http", "https"):
            return f"has a {name} that is not an http(s) URL"
    return None

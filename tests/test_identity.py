"""azure-identity's real ManagedIdentityCredential reaches the identity emulator via IDENTITY_ENDPOINT/HEADER."""

from __future__ import annotations

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity.aio import ManagedIdentityCredential

from tests.stackutil import Stack

pytestmark = pytest.mark.integration


async def test_managed_identity_credential_gets_a_graph_token(stack: Stack, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{stack.identity}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", stack.identity_header)
    async with ManagedIdentityCredential(client_id="0c0ffee0-0000-4000-8000-000000000001") as credential:
        token = await credential.get_token("https://graph.microsoft.com/.default")
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["appid"] == "0c0ffee0-0000-4000-8000-000000000001"
    assert "OnlineMeetings.ReadWrite.All" in claims["roles"]
    assert (await stack.identity_stats())["token_requests"] == 1


async def test_wrong_identity_header_is_refused(stack: Stack, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{stack.identity}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    async with ManagedIdentityCredential() as credential:
        with pytest.raises(ClientAuthenticationError):
            await credential.get_token("https://graph.microsoft.com/.default")
    assert (await stack.identity_stats())["token_requests"] == 0

"""Who is calling: Entra ID bearer tokens, HMAC-signed partner webhooks, or the host's function keys."""

"""Forwarding to Microsoft Graph with the Function's managed identity."""

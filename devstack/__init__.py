"""The local development stack: Azurite, a Graph emulator, a managed-identity emulator, the gateway."""

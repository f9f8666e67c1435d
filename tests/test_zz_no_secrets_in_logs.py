"""Runs last: every log the suite's processes wrote (gateways at DEBUG) holds no token or secret."""

from __future__ import annotations

import re

import pytest

from devstack.stack import DEV_KEY, LocalStack

pytestmark = pytest.mark.integration

_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}")


def test_no_token_or_secret_in_any_log(local_stack: LocalStack):
    logs = sorted(local_stack.log_dir.glob("gateway*.log"))
    assert logs, "the suite started no gateway"
    secrets = [local_stack.identity_header, DEV_KEY, "partner-secret-value-123"]
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert "graph createOrGet answered" in text  # the logs are real and were captured
    assert not _JWT.search(text)
    for secret in secrets:
        assert secret not in text
    assert "Traceback" not in text

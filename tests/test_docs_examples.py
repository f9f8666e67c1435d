"""The copy-paste examples in the docs work as printed: the partner-signing snippets of docs/POWER_AUTOMATE.md
(Python and curl with openssl) and the README's curl, run against a gateway with only the placeholders filled in.

Before this test no example was run: a signing scheme change would have left partners a snippet that gets 401.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import StackFactory
from tests.stackutil import ORGANIZER, Stack

ROOT = Path(__file__).parent.parent
SECRET = "a-partner-secret-with-32-or-more-characters"
DOC = ROOT / "docs" / "POWER_AUTOMATE.md"
SECTION = "Partner webhooks (HMAC signatures)"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def _blocks(doc: Path, section: str) -> dict[str, str]:
    """The fenced code blocks of one section (`## <section>` to the next `## `), by language."""
    text = doc.read_text().split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return {language: code for language, code in BLOCK.findall(text)}


def _filled(code: str, gateway: str) -> str:
    organizer = ORGANIZER.lower()
    for placeholder, value in {
        "https://<function-app>.azurewebsites.net": gateway,
        "http://127.0.0.1:7071": gateway,
        "<organizer id>": organizer,
        "the-partner-secret": SECRET,
        "1f35f2e6-9cab-44ad-8d5a-b74c14720000": organizer,
    }.items():
        code = code.replace(placeholder, value)
    assert "<" not in code.replace("<<", ""), f"a placeholder is left: {code}"
    return code


@pytest.fixture(scope="module")
async def partner_gateway(module_stack_factory: StackFactory) -> Stack:
    return await module_stack_factory(
        env={
            "CALLER_AUTH": "hmac",
            "PARTNER_SECRETS": json.dumps({"acme": SECRET}),
            "CALLER_POLICY": json.dumps({"hmac:acme": {"organizers": ["*"]}}),
        }
    )


def _run(args: list[str]) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_the_python_signing_example_creates_the_meeting(partner_gateway: Stack):
    code = _filled(_blocks(DOC, SECTION)["python"], partner_gateway.gateway)
    out = _run([sys.executable, "-c", code])
    assert out.startswith(("201 {", "200 {")), out
    assert "'externalId': 'order-4711'" in out  # the partner's own externalId comes back, not the scoped one


@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("curl")), reason="the example needs openssl, curl")
async def test_the_curl_signing_example_creates_the_meeting(partner_gateway: Stack):
    code = _filled(_blocks(DOC, SECTION)["sh"], partner_gateway.gateway)
    meeting = json.loads(_run(["bash", "-c", code]))
    assert meeting["externalId"] == "order-4711"
    assert meeting["id"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="the example is a curl command")
async def test_the_readmes_curl_creates_the_meeting_and_a_second_run_gets_it(stack: Stack):
    (code,) = [c for _, c in BLOCK.findall((ROOT / "README.md").read_text()) if "createOrGet" in c and "curl" in c]
    filled = _filled(code, stack.gateway)
    first, second = (json.loads(_run(["bash", "-c", filled])) for _ in range(2))
    assert first["id"] == second["id"]
    assert first["externalId"] == "order-4711"

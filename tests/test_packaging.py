"""What azd does with the project: `pip install .` in its restore (a pyproject.toml exists), and the zip it
uploads, filtered by .funcignore alone (azure-dev cli/azd/pkg/project/framework_service_python.go, project_utils.go)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pathspec
import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).parent.parent


def requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """Build the wheel `pip install .` would install, from a copy (the build writes build/ and *.egg-info)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "requirements.txt", "function_app.py", "host.json"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("meetings_core", "devstack", "tests", "bench"):  # the flat layout setuptools refused
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return zipfile.ZipFile(next(out.glob("*.whl")))


def test_pip_install_dot_builds_the_gateway_only(wheel: zipfile.ZipFile):
    tops = {name.split("/", 1)[0] for name in wheel.namelist() if not name.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"meetings_core", "function_app.py"}
    assert "meetings_core/http/app.py" in wheel.namelist()


def test_pip_install_dot_installs_requirements_txt(wheel: zipfile.ZipFile):
    metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [
        line.split(": ", 1)[1]
        for line in wheel.read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist")
    ]
    assert sorted(map(Requirement, requires), key=str) == sorted(map(Requirement, requirements()), key=str)


# --- the deployment zip -------------------------------------------------------------------------------------------


def uploaded(paths: list[str]) -> list[str]:
    """The paths azd would zip: .funcignore as gitignore patterns, plus the two names azd always drops."""
    spec = pathspec.GitIgnoreSpec.from_lines((ROOT / ".funcignore").read_text().splitlines())
    return [p for p in paths if not spec.match_file(p) and Path(p).name not in {"local.settings.json", ".funcignore"}]


def test_funcignore_keeps_azds_python_defaults():
    # azd's defaults without an ignore file: every __pycache__ folder, every folder holding pyvenv.cfg (its own
    # restore creates <project folder>_env).
    dropped = [
        "meetings_core/__pycache__/settings.cpython-311.pyc",
        "meetings_core/http/__pycache__/app.cpython-311.pyc",
        "__pycache__/function_app.cpython-311.pyc",
        "meeting-gateway_env/pyvenv.cfg",
        "meeting-gateway_env/lib/python3.11/site-packages/httpx/__init__.py",
        "wt-deploy_env/pyvenv.cfg",
        ".venv/pyvenv.cfg",
        "meeting_gateway.egg-info/PKG-INFO",
        "tests/test_infra.py",
        "infra/main.bicep",
        "local.settings.json",
    ]
    assert uploaded(dropped) == []


def test_funcignore_uploads_what_the_functions_host_needs():
    needed = [
        "function_app.py",
        "host.json",
        "requirements.txt",
        "meetings_core/__init__.py",
        "meetings_core/http/app.py",
    ]
    assert uploaded(needed) == needed


def test_every_runtime_file_in_the_repository_is_uploaded():
    files = [str(p.relative_to(ROOT)) for p in (ROOT / "meetings_core").rglob("*.py") if "__pycache__" not in p.parts]
    assert len(files) > 20
    assert uploaded(files) == files

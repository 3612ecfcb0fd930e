"""infra/check-package.py on packages built here: a good one, and ones broken the ways that matter."""

from __future__ import annotations

import importlib.util
import json
import zipfile

import pytest

from names import ROOT

spec = importlib.util.spec_from_file_location("check_package", ROOT / "infra" / "check-package.py")
check_package = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_package)

HOST = {"version": "2.0", "customHandler": {"description": {"defaultExecutablePath": "tweet-sentiment"}}}


@pytest.fixture
def function_app(tmp_path):
    root = tmp_path / "function-app"
    for name in ("health", "predict"):
        (root / name).mkdir(parents=True)
        (root / name / "function.json").write_text('{"bindings": []}')
    return root


def build(path, *, binary_mode=0o755, functions=("health", "predict"), host=HOST, binary=True):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("host.json", json.dumps(host))
        if binary:
            info = zipfile.ZipInfo("tweet-sentiment")
            info.external_attr = (0o100000 | binary_mode) << 16
            archive.writestr(info, b"\x7fELF")
        for name in functions:
            archive.writestr(f"{name}/function.json", '{"bindings": []}')
    return path


def test_good_package(tmp_path, function_app):
    assert check_package.problems_in(build(tmp_path / "p.zip"), function_app) == []


def test_binary_without_run_bit(tmp_path, function_app):
    problems = check_package.problems_in(build(tmp_path / "p.zip", binary_mode=0o644), function_app)
    assert any("no run bit" in p for p in problems)


def test_missing_binary(tmp_path, function_app):
    problems = check_package.problems_in(build(tmp_path / "p.zip", binary=False), function_app)
    assert any("missing" in p for p in problems)


def test_function_missing_or_extra(tmp_path, function_app):
    assert check_package.problems_in(build(tmp_path / "a.zip", functions=("health",)), function_app)
    assert check_package.problems_in(build(tmp_path / "b.zip", functions=("health", "predict", "old")), function_app)


def test_package_script_output_when_present(function_app):
    """When the package script has run in this checkout, its zip passes the same check."""
    package = ROOT / "target" / "function-app.zip"
    if not package.exists():
        pytest.skip("target/function-app.zip not built in this checkout")
    assert check_package.problems_in(package, ROOT / "function-app") == []

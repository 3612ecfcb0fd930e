"""Reads the names that the Bicep, the function folders, the Rust config, the workflows, azure.yaml
and the docs share, so that tests can check that they agree.

Every reader works on what is on disk at the time: functions are the folders of function-app/ that
hold a function.json, app settings are those of the Bicep function app, environment variables are
those declared in src/config.rs. Nothing here lists them by hand.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
WORKFLOWS = ROOT / ".github" / "workflows"


# ---------------------------------------------------------------------------------------------
# Bicep
# ---------------------------------------------------------------------------------------------


def parse_bicep(path: Path) -> dict[str, Any]:
    """Parses a Bicep file with pycep; raises on a syntax pycep cannot read (checkov would only
    count it as a parsing error and scan nothing)."""
    return BicepParser().parse(text=path.read_text())


@dataclass
class Bicep:
    tree: dict[str, Any]

    @property
    def variables(self) -> dict[str, Any]:
        return {k: v.get("value") for k, v in self.tree.get("variables", {}).items()}

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        return self.tree.get("parameters", {})

    @property
    def outputs(self) -> set[str]:
        return set(self.tree.get("outputs", {}))

    def resolve(self, value: Any) -> Any:
        """pycep writes a reference to a variable or parameter as its bare name: turn a variable
        into its value and a parameter into its default. Anything else is returned as it is."""
        if isinstance(value, str):
            if value in self.variables:
                return self.resolve(self.variables[value])
            if value in self.parameters:
                return self.parameters[value].get("default")
        return value

    def resources_of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {
            name: res
            for name, res in self.tree.get("resources", {}).items()
            if res.get("type", "").lower() == type_.lower()
        }

    def function_app(self) -> dict[str, Any]:
        sites = self.resources_of_type("Microsoft.Web/sites")
        assert len(sites) == 1, f"expected one Microsoft.Web/sites resource, found {sorted(sites)}"
        return next(iter(sites.values()))["config"]

    def app_settings(self) -> dict[str, Any]:
        """App settings of the function app, name to resolved value (non-literal values stay as
        pycep wrote them)."""
        settings = self.function_app()["properties"]["siteConfig"]["appSettings"]
        return {s["name"]: self.resolve(s["value"]) for s in settings}

    def container_names(self) -> set[str]:
        containers = self.resources_of_type("Microsoft.Storage/storageAccounts/blobServices/containers")
        return {self.resolve(c["config"]["name"]) for c in containers.values()}


def main_bicep() -> Bicep:
    return Bicep(parse_bicep(INFRA / "main.bicep"))


# ---------------------------------------------------------------------------------------------
# Rust config
# ---------------------------------------------------------------------------------------------

_ARG_BLOCK = re.compile(r"#\[arg\((.*?)\)\]", re.DOTALL)
_ENV = re.compile(r'\benv\s*=\s*"([A-Za-z_][A-Za-z0-9_]*)"')
_DEFAULT_STR = re.compile(r'\bdefault_value\s*=\s*"([^"]*)"')
_DEFAULT_LIT = re.compile(r"\bdefault_value_t\s*=\s*([^,\s)]+)")


@dataclass
class EnvVar:
    name: str
    default: str | None


def rust_env_vars(config_rs: Path | None = None) -> dict[str, EnvVar]:
    """Environment variables declared in src/config.rs (`#[arg(…, env = "NAME", …)]`), with their
    defaults as text."""
    text = (config_rs or ROOT / "src" / "config.rs").read_text()
    found: dict[str, EnvVar] = {}
    for block in _ARG_BLOCK.findall(text):
        env = _ENV.search(block)
        if not env:
            continue
        default = _DEFAULT_STR.search(block) or _DEFAULT_LIT.search(block)
        found[env.group(1)] = EnvVar(env.group(1), default.group(1) if default else None)
    return found


def rust_value_enum_values(enum_name: str, config_rs: Path | None = None) -> set[str]:
    """Values clap accepts for a ValueEnum: its variants in kebab case."""
    text = (config_rs or ROOT / "src" / "config.rs").read_text()
    match = re.search(r"enum\s+" + re.escape(enum_name) + r"\s*\{(.*?)\n\}", text, re.DOTALL)
    if not match:
        return set()
    body = re.sub(r"//[^\n]*", "", match.group(1))
    variants = re.findall(r"^\s*([A-Z][A-Za-z0-9]*)\s*,", body, re.MULTILINE)
    return {re.sub(r"(?<!^)(?=[A-Z])", "-", v).lower() for v in variants}


def rust_event_fields(event: str, src: Path | None = None) -> set[str]:
    """Field names of the tracing macro call(s) in src/ that log `event = "<event>"`."""
    fields: set[str] = set()
    for path in sorted((src or ROOT / "src").rglob("*.rs")):
        text = path.read_text()
        for call in re.finditer(r"(?:tracing::)?(?:info|warn|error|debug)!\((.*?)\);", text, re.DOTALL):
            body = call.group(1)
            if not re.search(r'\bevent\s*=\s*"' + re.escape(event) + '"', body):
                continue
            fields.update(re.findall(r"^\s*([a-z_][a-z0-9_]*)\s*=", body, re.MULTILINE))
    return fields


def kql_report_fields(alerts_bicep: Path | None = None) -> set[str]:
    """Fields of the report line that the alert queries read (`f.<name>`)."""
    text = (alerts_bicep or INFRA / "modules" / "alerts.bicep").read_text()
    return set(re.findall(r"\bf\.([a-z_][a-z0-9_]*)", text))


# ---------------------------------------------------------------------------------------------
# Function folders
# ---------------------------------------------------------------------------------------------


@dataclass
class Function:
    name: str
    bindings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def trigger(self) -> dict[str, Any]:
        triggers = [b for b in self.bindings if b.get("direction") == "in" and b.get("type", "").endswith("Trigger")]
        assert len(triggers) == 1, f"{self.name}: expected one trigger binding, found {triggers}"
        return triggers[0]

    @property
    def is_http(self) -> bool:
        return self.trigger.get("type") == "httpTrigger"

    @property
    def route(self) -> str:
        return self.trigger.get("route") or self.name

    @property
    def auth_level(self) -> str:
        return self.trigger.get("authLevel", "function")

    def setting_references(self) -> set[str]:
        """App settings named as %NAME% in the bindings (the host substitutes them)."""
        refs: set[str] = set()
        for binding in self.bindings:
            for value in binding.values():
                if isinstance(value, str):
                    refs.update(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)%", value))
        return refs


def functions(function_app: Path | None = None) -> dict[str, Function]:
    root = function_app or ROOT / "function-app"
    found = {}
    for path in sorted(root.glob("*/function.json")):
        found[path.parent.name] = Function(path.parent.name, json.loads(path.read_text()).get("bindings", []))
    return found


# ---------------------------------------------------------------------------------------------
# Workflows, azure.yaml, docs, scripts
# ---------------------------------------------------------------------------------------------


def workflow_texts() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(WORKFLOWS.glob("*.y*ml"))}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def api_routes_in(text: str) -> set[str]:
    """Routes called as `/api/<route>` in a text (URLs in workflows and docs)."""
    return {route.rstrip(".") for route in re.findall(r"/api/([A-Za-z0-9_.-]+)", text)}


def listed_functions_in_docs(text: str) -> set[str]:
    """Function names in the first column of the table between the functions markers."""
    match = re.search(r"<!-- functions:start -->(.*?)<!-- functions:end -->", text, re.DOTALL)
    if not match:
        return set()
    names = set()
    for line in match.group(1).splitlines():
        cell = re.match(r"\s*\|\s*`([^`]+)`\s*\|", line)
        if cell:
            names.add(cell.group(1))
    return names


def package_script_output_dir() -> str | None:
    script = ROOT / "scripts" / "package-function-app.sh"
    if not script.exists():
        return None
    match = re.search(r"^out=([^\s#]+)", script.read_text(), re.MULTILINE)
    return match.group(1) if match else None


def parameter_placeholders(parameters_json: Path | None = None) -> set[str]:
    text = (parameters_json or INFRA / "main.parameters.json").read_text()
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))

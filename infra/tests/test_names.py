"""The names shared across the system agree: containers, app settings and environment variables,
the function list, the deployment outputs, azure.yaml and the docs.

Each check is a function returning the problems it found, so that the tests below can run it on the
real files (expecting none) and on a deliberately broken copy (expecting some): a check that cannot
fail proves nothing.
"""

from __future__ import annotations

import copy
import re

import pytest

import names
from names import ROOT, INFRA

# Settings the Functions host and the platform read, not the handler.
HOST_SETTING_PREFIXES = ("AzureWebJobs", "APPLICATIONINSIGHTS_", "FUNCTIONS_", "WEBSITE_", "AZURE_FUNCTIONS_")

# Flex Consumption rejects these: the runtime and the package location live in functionAppConfig.
FLEX_FORBIDDEN = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "ENABLE_ORYX_BUILD",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_USE_PLACEHOLDER",
    "AzureWebJobsStorage",  # a connection string: we use the identity-based form
}

REQUIRED_SETTINGS = {
    "STORAGE_ACCOUNT_URL",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "METRICS_SCHEDULE",
    "MODEL_POLL_SECONDS",
}

CONTAINER_ENV = {"MODELS_CONTAINER": "models", "LOGS_CONTAINER": "logs", "REPORTS_CONTAINER": "reports",
                 "DATASETS_CONTAINER": "datasets"}


@pytest.fixture(scope="module")
def bicep() -> names.Bicep:
    return names.main_bicep()


@pytest.fixture(scope="module")
def rust_env() -> dict[str, names.EnvVar]:
    env = names.rust_env_vars()
    # The reader must see the config; an empty result would make every comparison pass.
    assert "STORAGE_ACCOUNT_URL" in env, "src/config.rs read, but no env = \"STORAGE_ACCOUNT_URL\" found"
    return env


@pytest.fixture(scope="module")
def functions() -> dict[str, names.Function]:
    found = names.functions()
    assert found, "no function-app/*/function.json found"
    return found


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------


def check_containers(bicep: names.Bicep, settings: dict, rust_env: dict) -> list[str]:
    problems = []
    containers = bicep.container_names()
    for env_name, role in CONTAINER_ENV.items():
        rust_default = rust_env.get(env_name)
        if rust_default is None:
            problems.append(f"src/config.rs declares no env {env_name}")
            continue
        if rust_default.default not in containers:
            problems.append(f"{env_name} defaults to {rust_default.default!r} in src/config.rs; Bicep creates {sorted(containers)}")
        if env_name in settings and settings[env_name] != rust_default.default:
            problems.append(f"app setting {env_name}={settings[env_name]!r} but src/config.rs defaults to {rust_default.default!r}")
        if env_name in settings and settings[env_name] not in containers:
            problems.append(f"app setting {env_name}={settings[env_name]!r} names no container Bicep creates")
    # One more container holds the deployment packages; it must be the one the app deploys from.
    deployment = bicep.function_app()["properties"]["functionAppConfig"]["deployment"]["storage"]
    target = deployment["value"].rsplit("/", 1)[-1]
    target = bicep.resolve(target.strip("${}"))
    if target not in containers:
        problems.append(f"functionAppConfig deploys from container {target!r}; Bicep creates {sorted(containers)}")
    return problems


def check_settings(settings: dict, rust_env: dict, functions: dict) -> list[str]:
    problems = []
    binding_refs = set().union(*(f.setting_references() for f in functions.values())) if functions else set()
    for name in settings:
        if name in FLEX_FORBIDDEN:
            problems.append(f"app setting {name} is not allowed on Flex Consumption")
        elif name.startswith(HOST_SETTING_PREFIXES):
            continue
        elif name not in rust_env and name not in binding_refs:
            problems.append(f"app setting {name} is read neither by src/config.rs nor by a function.json binding")
    for name in REQUIRED_SETTINGS - set(settings):
        problems.append(f"required app setting {name} missing")
    if not any(n.startswith("AzureWebJobsStorage__") for n in settings):
        problems.append("no identity-based AzureWebJobsStorage__* setting")
    for ref in sorted(binding_refs - set(settings)):
        problems.append(f"a function.json uses %{ref}% but no app setting {ref} is set")
    return problems


def check_defaults(bicep: names.Bicep, rust_env: dict) -> list[str]:
    """Where both the Bicep and the Rust config carry a default for the same setting, they agree."""
    problems = []
    settings = bicep.app_settings()
    raw = {s["name"]: s["value"] for s in bicep.function_app()["properties"]["siteConfig"]["appSettings"]}
    for name, var in rust_env.items():
        if name not in settings or var.default is None:
            continue
        value = settings[name]
        if isinstance(value, dict):  # string(param): compare the parameter's default
            param = value.get("function", {}).get("parameters", {}).get("value_to_convert")
            value = bicep.resolve(param) if param else None
        if value is None or isinstance(value, dict):
            continue
        if str(value) != var.default:
            problems.append(f"{name}: Bicep sets {value!r} (from {raw[name]!r}), src/config.rs defaults to {var.default!r}")
    return problems


def check_function_list(functions: dict, documented: set[str]) -> list[str]:
    problems = []
    on_disk = set(functions)
    for name in sorted(on_disk - documented):
        problems.append(f"function {name} is in function-app/ but not in the docs/deploy.md table")
    for name in sorted(documented - on_disk):
        problems.append(f"function {name} is in the docs/deploy.md table but not in function-app/")
    return problems


def check_routes(text: str, where: str, functions: dict, anonymous_only: bool) -> list[str]:
    problems = []
    http = {f.route: f for f in functions.values() if f.is_http}
    for route in sorted(names.api_routes_in(text)):
        if route not in http:
            problems.append(f"{where} calls /api/{route}, which no HTTP function serves (routes: {sorted(http)})")
        elif anonymous_only and http[route].auth_level != "anonymous":
            problems.append(f"{where} calls /api/{route} without a function key, but its authLevel is {http[route].auth_level}")
    return problems


# ---------------------------------------------------------------------------------------------
# Tests on the real files
# ---------------------------------------------------------------------------------------------


def test_every_bicep_file_parses():
    files = sorted(INFRA.rglob("*.bicep"))
    assert files, "no Bicep file under infra/"
    for path in files:
        tree = names.parse_bicep(path)
        assert tree.get("resources"), f"{path.relative_to(ROOT)} parsed to no resources"


def test_containers_agree(bicep, rust_env):
    assert check_containers(bicep, bicep.app_settings(), rust_env) == []


def test_app_settings_are_known_and_complete(bicep, rust_env, functions):
    assert check_settings(bicep.app_settings(), rust_env, functions) == []


def test_defaults_agree(bicep, rust_env):
    assert check_defaults(bicep, rust_env) == []


def test_credential_kind_is_a_value_the_cli_accepts(bicep):
    accepted = names.rust_value_enum_values("CredentialKind")
    assert accepted, "no CredentialKind enum in src/config.rs"
    kind = bicep.app_settings().get("AZURE_CREDENTIAL_KIND")
    if kind is not None:
        assert kind in accepted
    workflow = (ROOT / ".github/workflows/promote-model.yml").read_text()
    for value in re.findall(r"AZURE_CREDENTIAL_KIND:\s*([\w-]+)", workflow):
        assert value in accepted, f"promote-model.yml uses AZURE_CREDENTIAL_KIND={value}; accepted: {sorted(accepted)}"


def test_function_list_agrees_with_docs(functions):
    documented = names.listed_functions_in_docs((ROOT / "docs" / "deploy.md").read_text())
    assert documented, "docs/deploy.md has no functions table between the markers"
    assert check_function_list(functions, documented) == []


def test_timer_schedules_are_app_settings_with_six_field_defaults(bicep, functions):
    timers = [f for f in functions.values() if f.trigger.get("type") == "timerTrigger"]
    settings = bicep.app_settings()
    for timer in timers:
        schedule = timer.trigger.get("schedule", "")
        refs = re.findall(r"^%([A-Za-z0-9_]+)%$", schedule)
        assert refs, f"{timer.name}: schedule {schedule!r} should be an app setting (%NAME%) so that it can change without a deploy"
        value = settings.get(refs[0])
        assert isinstance(value, str) and len(value.split()) == 6, f"{timer.name}: {refs[0]}={value!r} is not a six-field NCRONTAB"


def test_workflows_call_only_anonymous_routes_that_exist(functions):
    """Workflows hold no function key: what they call (directly or through the smoke test script)
    must be anonymous."""
    texts = dict(names.workflow_texts())
    texts["infra/smoke-test.sh"] = (ROOT / "infra" / "smoke-test.sh").read_text()
    assert "smoke-test.sh" in texts.get("deploy.yml", ""), "deploy.yml does not run the smoke test"
    problems = []
    for name, text in texts.items():
        problems += check_routes(text, name, functions, anonymous_only=True)
    assert names.api_routes_in(texts["infra/smoke-test.sh"]), "the smoke test calls no route"
    assert problems == []


def test_docs_call_only_routes_that_exist(functions):
    problems = []
    for doc in [ROOT / "docs" / "deploy.md"]:
        problems += check_routes(doc.read_text(), doc.name, functions, anonymous_only=False)
    assert problems == []


def test_workflows_read_only_outputs_that_exist(bicep):
    text = "\n".join(names.workflow_texts().values())
    read = set(re.findall(r"\.([A-Z][A-Z0-9_]+)\.value", text))
    assert read, "deploy.yml reads no deployment output"
    assert read <= bicep.outputs, f"outputs read but not declared: {sorted(read - bicep.outputs)}"


def test_docs_read_only_outputs_that_exist(bicep):
    text = (ROOT / "docs" / "deploy.md").read_text()
    read = set(re.findall(r"azd env get-value ([A-Z][A-Z0-9_]+)", text))
    assert read <= bicep.outputs, f"docs read outputs that are not declared: {sorted(read - bicep.outputs)}"


def test_parameters_file_matches_bicep(bicep):
    params = names.load_yaml(INFRA / "main.parameters.json")["parameters"]
    unknown = set(params) - set(bicep.parameters)
    assert not unknown, f"main.parameters.json sets parameters main.bicep lacks: {sorted(unknown)}"
    required = {n for n, p in bicep.parameters.items() if p.get("default") is None}
    assert required <= set(params), f"parameters without default missing from main.parameters.json: {sorted(required - set(params))}"


def test_deploy_workflow_fills_every_parameter_placeholder():
    """deploy.yml fills main.parameters.json with envsubst and an explicit variable list: a
    placeholder missing from that list would reach Azure as the literal text ${NAME}."""
    placeholders = names.parameter_placeholders()
    deploy = (ROOT / ".github/workflows/deploy.yml").read_text()
    match = re.search(r"envsubst '([^']*)'", deploy)
    assert match, "deploy.yml does not run envsubst with a variable list"
    substituted = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", match.group(1)))
    assert placeholders == substituted


def test_azure_yaml_matches_bicep_and_package_script(bicep):
    project = names.load_yaml(ROOT / "azure.yaml")
    services = project["services"]
    tags = bicep.function_app()["tags"]
    tag_values = tags["function"]["parameters"]["arg_2"] if "function" in tags else tags
    service_tag = {k.strip("'"): v for k, v in tag_values.items()}.get("azd-service-name")
    assert set(services) == {service_tag}, f"azure.yaml services {sorted(services)}, Bicep tags the app {service_tag!r}"
    api = services[service_tag]
    assert api["host"] == "function"
    assert api["language"] == "custom"
    out_dir = names.package_script_output_dir()
    if out_dir is not None:
        assert api["dist"] == out_dir, f"azure.yaml dist {api['dist']!r}, package script writes {out_dir!r}"
    assert "package-function-app.sh" in api["hooks"]["prepackage"]["run"]


def test_host_runs_the_binary_the_workflows_ship():
    host = names.load_yaml(ROOT / "function-app" / "host.json")
    executable = host["customHandler"]["description"]["defaultExecutablePath"]
    cargo = (ROOT / "Cargo.toml").read_text()
    bins = re.findall(r'\[\[bin\]\]\s*\nname\s*=\s*"([^"]+)"', cargo)
    assert executable in bins, f"host.json runs {executable!r}; Cargo.toml builds {bins}"
    deploy = (ROOT / ".github/workflows/deploy.yml").read_text()
    assert "infra/check-package.py target/function-app.zip" in deploy, "deploy.yml does not check the package"
    azure_yaml = (ROOT / "azure.yaml").read_text()
    assert "infra/check-package.py" in azure_yaml, "the azd prepackage hook does not check the package"
    promote = (ROOT / ".github/workflows/promote-model.yml").read_text()
    assert f"target/release/{executable}" in promote


def test_alert_queries_read_fields_the_report_line_has():
    """The alert rules parse the report's structured log line: every field they read must be one
    the handler logs with event = "metrics_report"."""
    logged = names.rust_event_fields("metrics_report")
    assert logged, 'no tracing call with event = "metrics_report" in src/'
    read = names.kql_report_fields()
    assert {"event", "macro_f1", "bad_buzz", "labelled"} <= read, f"alert queries read {sorted(read)}"
    assert read <= logged, f"alert queries read fields the report line lacks: {sorted(read - logged)}"


def test_storage_account_is_locked_down(bicep):
    accounts = bicep.resources_of_type("Microsoft.Storage/storageAccounts")
    assert len(accounts) == 1
    props = next(iter(accounts.values()))["config"]["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True


def test_function_app_is_flex_custom_handler_with_identity(bicep):
    app = bicep.function_app()
    assert app["identity"]["type"] == "SystemAssigned"
    assert app["properties"]["httpsOnly"] is True
    config = app["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "custom", "version": "1.0"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "SystemAssignedIdentity"
    plans = bicep.resources_of_type("Microsoft.Web/serverfarms")
    assert [p["config"]["sku"]["name"] for p in plans.values()] == ["FC1"]


def test_log_lifecycle_rule_targets_the_logs_container(bicep):
    policies = bicep.resources_of_type("Microsoft.Storage/storageAccounts/managementPolicies")
    assert len(policies) == 1
    rules = next(iter(policies.values()))["config"]["properties"]["policy"]["rules"]
    prefixes = {p for r in rules for p in r["definition"]["filters"]["prefixMatch"]}
    logs = bicep.resolve("logsContainerName")
    assert prefixes == {f"${{logsContainerName}}/"} or prefixes == {f"{logs}/"}
    days = rules[0]["definition"]["actions"]["baseBlob"]["delete"]["daysAfterModificationGreaterThan"]
    assert days in bicep.parameters, "log retention must be a parameter"


# ---------------------------------------------------------------------------------------------
# The checks catch what they are meant to catch
# ---------------------------------------------------------------------------------------------


def test_checks_fail_on_broken_inputs(bicep, rust_env, functions):
    settings = bicep.app_settings()

    renamed = dict(rust_env)
    renamed["LOGS_CONTAINER"] = names.EnvVar("LOGS_CONTAINER", "log")
    assert check_containers(bicep, settings, renamed), "a container renamed on the Rust side went unnoticed"

    assert check_settings({**settings, "WEBSITE_RUN_FROM_PACKAGE": "1"}, rust_env, functions)
    assert check_settings({**settings, "MODEL_POLL_SECOND": "30"}, rust_env, functions)
    assert check_settings({k: v for k, v in settings.items() if k != "METRICS_SCHEDULE"}, rust_env, functions)

    poll = dict(rust_env)
    poll["MODEL_POLL_SECONDS"] = names.EnvVar("MODEL_POLL_SECONDS", "60")
    assert check_defaults(bicep, poll), "a different poll default went unnoticed"

    extra = dict(functions)
    extra["retrain"] = names.Function("retrain", [{"type": "httpTrigger", "direction": "in", "route": "retrain"}])
    assert check_function_list(extra, set(functions))
    assert check_function_list(functions, set(functions) | {"gone"})

    assert check_routes("curl $URL/api/nope", "x", functions, anonymous_only=False)
    keyed = [f.route for f in functions.values() if f.is_http and f.auth_level != "anonymous"]
    if keyed:
        assert check_routes(f"curl $URL/api/{keyed[0]}", "x", functions, anonymous_only=True)


def test_rust_reader_sees_multi_line_and_typed_defaults(tmp_path):
    config = tmp_path / "config.rs"
    config.write_text(
        '#[arg(long, env = "A", default_value_t = 30)]\n'
        "#[arg(\n    long,\n    env = \"B\",\n    value_enum,\n    default_value = \"x-y\"\n)]\n"
        '#[arg(long, env = "C")]\n'
    )
    env = names.rust_env_vars(config)
    assert {k: v.default for k, v in env.items()} == {"A": "30", "B": "x-y", "C": None}


def test_event_field_reader(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.rs").write_text(
        'tracing::info!(\n    event = "metrics_report",\n    macro_f1 = x.macro_f1,\n    labelled = x.labelled,\n    "metrics report"\n);\n'
        'tracing::info!(event = "other", ignored = 1, "x");\n'
    )
    assert names.rust_event_fields("metrics_report", src) == {"event", "macro_f1", "labelled"}


def test_bicep_parse_error_is_raised(tmp_path):
    broken = tmp_path / "broken.bicep"
    broken.write_text("resource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: 'a'\n")
    with pytest.raises(Exception):
        names.parse_bicep(broken)

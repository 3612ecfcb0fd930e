//! The route registry and `function-app/` must describe the same functions: a folder without a
//! route would fail on the host, a route without a folder would never be called.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use tweet_sentiment::functions::{Trigger, FUNCTIONS};

fn function_app() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/function-app"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_function_folder_has_a_route_and_every_route_a_folder() {
    let folders: BTreeSet<String> = std::fs::read_dir(function_app())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("function.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let routes: BTreeSet<String> = FUNCTIONS.iter().map(|f| f.name.to_owned()).collect();
    assert_eq!(
        folders, routes,
        "function-app folders vs the route registry"
    );
}

#[test]
fn bindings_match_the_registry() {
    for function in FUNCTIONS {
        let json = read_json(&function_app().join(function.name).join("function.json"));
        let bindings = json["bindings"].as_array().unwrap();
        let trigger = bindings
            .iter()
            .find(|b| b["direction"] == "in" && b["type"].as_str().unwrap().ends_with("Trigger"))
            .unwrap_or_else(|| panic!("{}: no trigger binding", function.name));
        match function.trigger {
            Trigger::Http { methods, route } => {
                assert_eq!(trigger["type"], "httpTrigger", "{}", function.name);
                assert_eq!(trigger["route"], route, "{}", function.name);
                let declared: BTreeSet<String> = trigger["methods"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap().to_lowercase())
                    .collect();
                let ours: BTreeSet<String> = methods.iter().map(|m| m.to_lowercase()).collect();
                assert_eq!(declared, ours, "{}: methods", function.name);
                // Forwarding the raw request only works with exactly an http output binding.
                assert!(
                    bindings
                        .iter()
                        .any(|b| b["type"] == "http" && b["direction"] == "out"),
                    "{}: needs an http output binding",
                    function.name
                );
            }
            Trigger::Timer => {
                assert_eq!(trigger["type"], "timerTrigger", "{}", function.name);
                assert_eq!(
                    trigger["schedule"], "%METRICS_SCHEDULE%",
                    "{}",
                    function.name
                );
            }
        }
    }
}

#[test]
fn host_json_runs_this_binary_with_forwarding() {
    let host = read_json(&function_app().join("host.json"));
    assert_eq!(host["version"], "2.0");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        env!("CARGO_PKG_NAME")
    );
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
    assert_eq!(host["extensionBundle"]["version"], "[4.*, 5.0.0)");
    assert_eq!(host["extensions"]["http"]["routePrefix"], "api");
}

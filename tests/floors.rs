//! The crate's floors, top to bottom: `main`/`commands`/`config` → `functions` → `service` →
//! `metrics`/`log` → `model` → `store`. Nothing may name a module on a floor above its own; this
//! test reads every source file and fails on the first climb back up.

use std::path::{Path, PathBuf};

/// A module's floor: 0 is the top.
fn floor(module: &str) -> Option<usize> {
    Some(match module {
        "main" | "commands" | "config" | "telemetry" => 0,
        "functions" => 1,
        "service" => 2,
        "metrics" | "log" => 3,
        "model" => 4,
        "store" => 5,
        _ => return None,
    })
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<module>` a file names, outside comments, with its line number.
fn crate_references(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let module: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !module.is_empty() {
                found.push((number + 1, module));
            }
        }
        // `use crate::{a, b}` names several modules at once.
        if let Some(at) = code.find("crate::{") {
            for name in code[at + "crate::{".len()..].split([',', '}']) {
                let module = name.trim().split("::").next().unwrap_or("").to_owned();
                if !module.is_empty() {
                    found.push((number + 1, module));
                }
            }
        }
    }
    found
}

#[test]
fn no_module_imports_from_a_floor_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut climbs = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" {
            continue;
        }
        let own = floor(&top).unwrap_or_else(|| {
            panic!(
                "{} belongs to no floor: add `{top}` to floor()",
                relative.display()
            )
        });
        let text = std::fs::read_to_string(file).unwrap();
        for (line, module) in crate_references(&text) {
            checked += 1;
            match floor(&module) {
                Some(theirs) if theirs < own => climbs.push(format!(
                    "{}:{line} ({top}, floor {own}) uses crate::{module} (floor {theirs})",
                    relative.display()
                )),
                Some(_) => {}
                // Re-exports at the crate root (`crate::serve`) are the top floor's business.
                None => assert!(
                    own == 0,
                    "{}:{line} uses crate::{module}, which is on no floor",
                    relative.display()
                ),
            }
        }
    }
    assert!(checked > 50, "only {checked} crate:: references seen");
    assert!(
        climbs.is_empty(),
        "imports climbing a floor:\n{}",
        climbs.join("\n")
    );
}

#[test]
fn the_reference_scanner_sees_grouped_and_nested_paths() {
    let refs = crate_references(
        "use crate::{log::TextMode, store};\nlet x = crate::model::Sentiment::Positive; // crate::config",
    );
    let modules: Vec<&str> = refs.iter().map(|(_, m)| m.as_str()).collect();
    assert!(modules.contains(&"log") && modules.contains(&"store") && modules.contains(&"model"));
    assert!(!modules.contains(&"config"), "comments are not code");
}

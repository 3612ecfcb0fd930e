//! `docs/openapi.json` against what is served: every route of the registry is described (and
//! nothing else), auth levels match `function-app/`, and every example in the spec, sent to the
//! real binary, is answered with the status it documents and a body that fits the schema.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tweet_sentiment::functions::{openapi::SPEC, wire, Trigger, FUNCTIONS, ROUTE_PREFIX};

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

fn spec() -> Value {
    serde_json::from_str(SPEC).expect("docs/openapi.json is JSON")
}

/// `(path, method)` of every operation in the spec.
fn spec_operations(spec: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.insert((path.clone(), method.to_owned()));
            }
        }
    }
    operations
}

#[test]
fn every_route_of_the_registry_is_described_and_nothing_else() {
    let spec = spec();
    assert_eq!(spec["servers"][0]["url"], ROUTE_PREFIX);
    let mut served = BTreeSet::new();
    let mut timers = BTreeSet::new();
    for function in FUNCTIONS {
        match function.trigger {
            Trigger::Http { methods, route } => {
                for method in methods {
                    served.insert((format!("/{route}"), method.to_lowercase()));
                }
            }
            Trigger::Timer => {
                timers.insert(function.name.to_owned());
            }
        }
    }
    assert_eq!(
        spec_operations(&spec),
        served,
        "spec operations vs FUNCTIONS"
    );
    let described_timers: BTreeSet<String> = spec["x-timer-functions"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(described_timers, timers, "timer functions (host only)");
}

#[test]
fn operations_ask_for_a_key_exactly_where_the_host_does() {
    let spec = spec();
    for function in FUNCTIONS {
        let Trigger::Http { methods, route } = function.trigger else {
            continue;
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("function-app")
            .join(function.name)
            .join("function.json");
        let binding: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let auth_level = binding["bindings"][0]["authLevel"].as_str().unwrap();
        for method in methods {
            let security = &spec["paths"][format!("/{route}")][method]["security"];
            let wants_key = security
                .as_array()
                .unwrap_or_else(|| panic!("/{route} {method}: security must be explicit"))
                .iter()
                .any(|requirement| requirement.get("functionKey").is_some());
            assert_eq!(
                wants_key,
                auth_level != "anonymous",
                "/{route} {method}: authLevel {auth_level} vs the spec's security"
            );
        }
    }
}

// ---- a small JSON Schema check, for the keywords this spec uses ---------------------------

fn resolve<'a>(spec: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local references: {reference}"));
            let target = spec
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling reference {reference}"));
            resolve(spec, target)
        }
        None => node,
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        other => panic!("unknown type {other}"),
    }
}

/// Checks `value` against `schema`; the error names the failing location.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(spec, schema);
    let fail = |why: String| Err(format!("{at}: {why} (value {value})"));
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|option| check(spec, option, value, at).is_ok())
            .count();
        if matching != 1 {
            return fail(format!("matches {matching} of the oneOf schemas, not 1"));
        }
    }
    if let Some(expected) = schema.get("type") {
        let types: Vec<&str> = match expected {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type keyword at {at}"),
        };
        if !types.iter().any(|t| type_matches(t, value)) {
            return fail(format!("not of type {expected}"));
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            return fail(format!("not one of {}", Value::Array(allowed.clone())));
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            return fail(format!("not {constant}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            return fail("below the minimum".into());
        }
        if schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            return fail("above the maximum".into());
        }
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count() as u64;
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| chars < m)
        {
            return fail("too short".into());
        }
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| chars > m)
        {
            return fail("too long".into());
        }
        match schema.get("pattern").and_then(Value::as_str) {
            None => {}
            // The one pattern the spec uses: "holds a character other than white space".
            Some(r"\S") if !s.chars().any(|c| !c.is_whitespace()) => {
                return fail("is blank".into())
            }
            Some(r"\S") => {}
            Some(other) => panic!("{at}: the check does not know the pattern {other}"),
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("uuid") if uuid::Uuid::parse_str(s).is_err() => return fail("not a UUID".into()),
            Some("date-time")
                if time::OffsetDateTime::parse(
                    s,
                    &time::format_description::well_known::Rfc3339,
                )
                .is_err() =>
            {
                return fail("not an RFC 3339 time".into())
            }
            _ => {}
        }
    }
    if let Some(items) = value.as_array() {
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| (items.len() as u64) < m)
        {
            return fail("too few items".into());
        }
        if schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| (items.len() as u64) > m)
        {
            return fail("too many items".into());
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(spec, item_schema, item, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = required.as_str().unwrap();
            if !object.contains_key(name) {
                return fail(format!("lacks the required field {name}"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (name, field) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(field_schema) => check(spec, field_schema, field, &format!("{at}.{name}"))?,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return fail(format!("has the undescribed field {name}"))
                }
                None => {}
            }
        }
    }
    Ok(())
}

#[test]
fn the_schema_check_rejects_what_it_should() {
    let spec = spec();
    let prediction = json!({"$ref": "#/components/schemas/Prediction"});
    let good = json!({
        "id": "019abb2e-4f63-7c1e-9d0a-5b8e2f3c4d5e", "score": 0.2, "sentiment": "negative",
        "model": {"name": "nb", "version": "1"}, "latency_ms": 0.5
    });
    check(&spec, &prediction, &good, "$").unwrap();
    let mut bad = good.clone();
    bad.as_object_mut().unwrap().remove("id");
    assert!(check(&spec, &prediction, &bad, "$").is_err(), "missing id");
    for (field, wrong) in [
        ("score", json!(1.5)),
        ("sentiment", json!("meh")),
        ("id", json!("not-a-uuid")),
        ("model", json!({"name": "nb"})),
    ] {
        let mut bad = good.clone();
        bad[field] = wrong;
        assert!(check(&spec, &prediction, &bad, "$").is_err(), "{field}");
    }
    let request = json!({"$ref": "#/components/schemas/PredictRequest"});
    check(&spec, &request, &json!({"text": "hi"}), "$").unwrap();
    assert!(check(&spec, &request, &json!({"text": "a", "texts": ["b"]}), "$").is_err());
    assert!(check(&spec, &request, &json!({"texts": []}), "$").is_err());
}

#[test]
fn the_documented_response_examples_fit_their_schemas() {
    let spec = spec();
    let mut seen = 0;
    for (path, method) in spec_operations(&spec) {
        let responses = spec["paths"][&path][&method]["responses"]
            .as_object()
            .unwrap();
        for (status, response) in responses {
            let response = resolve(&spec, response);
            for (media, content) in response["content"].as_object().into_iter().flatten() {
                if let Some(example) = content.get("example") {
                    check(
                        &spec,
                        &content["schema"],
                        example,
                        &format!("{path} {method} {status} {media}"),
                    )
                    .unwrap();
                    seen += 1;
                }
            }
        }
    }
    assert!(seen >= 3, "the spec shows example answers");
}

// ---- against the running binary -----------------------------------------------------------

struct Api {
    server: common::InProcess,
    client: reqwest::Client,
}

async fn start() -> Api {
    // Prediction records reach the store quickly, so that a report can count them.
    let server = common::InProcess::start(|_| {}, &["--log-batch-milliseconds", "20"]).await;
    Api {
        client: server.client.clone(),
        server,
    }
}

impl Api {
    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String, Value) {
        let url = self.server.url(&format!("{ROUTE_PREFIX}{path}"));
        let mut request = self
            .client
            .request(method.to_uppercase().parse().unwrap(), url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        let body = if content_type.starts_with("application/json") {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
        } else {
            Value::String(text)
        };
        (status, content_type, body)
    }

    /// Checks an answer against the operation's documented response for its status.
    fn assert_described(
        &self,
        spec: &Value,
        path: &str,
        method: &str,
        answer: &(u16, String, Value),
    ) {
        let (status, content_type, body) = answer;
        let response = spec["paths"][path][method]["responses"]
            .get(status.to_string())
            .unwrap_or_else(|| {
                panic!("{method} {path} answered {status}, which is not documented: {body}")
            });
        let response = resolve(spec, response);
        let media = content_type.split(';').next().unwrap().trim();
        let described = response["content"].get(media).unwrap_or_else(|| {
            panic!("{method} {path} {status}: content type {media} is not documented")
        });
        check(
            spec,
            &described["schema"],
            body,
            &format!("{method} {path} {status}"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // The same answers read back as the wire types the handlers and `predict --url` share.
        let parsed = match (*status, path, media) {
            (200, "/predict", _) if body.get("predictions").is_some() => {
                serde_json::from_value::<wire::BatchAnswer>(body.clone()).map(drop)
            }
            (200, "/predict", _) => {
                serde_json::from_value::<wire::PredictionAnswer>(body.clone()).map(drop)
            }
            (201, "/feedback", _) => {
                serde_json::from_value::<wire::FeedbackAnswer>(body.clone()).map(drop)
            }
            (400.., _, "application/json") => {
                serde_json::from_value::<wire::ErrorBody>(body.clone()).map(drop)
            }
            _ => Ok(()),
        };
        parsed.unwrap_or_else(|e| panic!("{method} {path} {status}: not the wire type: {e}"));
    }
}

#[tokio::test]
async fn every_example_is_answered_as_described() {
    let api = start().await;
    let spec = spec();
    let mut sent = 0;
    for (path, method) in spec_operations(&spec) {
        let operation = &spec["paths"][&path][&method];
        let Some(examples) =
            operation["requestBody"]["content"]["application/json"]["examples"].as_object()
        else {
            continue;
        };
        for (name, example) in examples {
            let expected = example["x-expected-status"]
                .as_u64()
                .unwrap_or_else(|| panic!("{path} example {name}: no x-expected-status"));
            let value = &example["value"];
            let answer = api.send(&method, &path, Some(value)).await;
            assert_eq!(
                u64::from(answer.0),
                expected,
                "{method} {path} example {name}: {}",
                answer.2
            );
            api.assert_described(&spec, &path, &method, &answer);
            if let Some(code) = example.get("x-expected-error-code") {
                assert_eq!(&answer.2["error"]["code"], code, "{path} example {name}");
            }
            // A request example the API accepts must fit the request schema, and one it refuses
            // for its shape or content must not: the spec then says what the API checks.
            let request_schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            let fits = check(&spec, request_schema, value, name).is_ok();
            assert_eq!(
                fits,
                expected < 400,
                "{path} example {name}: fits the request schema = {fits}"
            );
            sent += 1;
        }
    }
    assert!(sent >= 10, "only {sent} examples were sent");

    for path in ["/health", "/ui", "/openapi.json"] {
        let answer = api.send("get", path, None).await;
        assert_eq!(answer.0, 200, "GET {path}");
        api.assert_described(&spec, path, "get", &answer);
    }
    let (_, _, served) = api.send("get", "/openapi.json", None).await;
    assert_eq!(served, spec, "the served spec is docs/openapi.json");
}

/// Lines in every file under a folder of the local store.
fn logged_lines(folder: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                logged_lines(&path)
            } else if path.extension().is_none_or(|e| e != "jsonl") {
                0
            } else {
                std::fs::read_to_string(&path).map_or(0, |text| text.lines().count())
            }
        })
        .sum()
}

#[tokio::test]
async fn the_report_route_answers_404_until_a_report_exists_then_the_report() {
    let api = start().await;
    let spec = spec();
    let answer = api.send("get", "/report", None).await;
    assert_eq!(answer.0, 404, "{}", answer.2);
    assert_eq!(answer.2["error"]["code"], "no_report");
    api.assert_described(&spec, "/report", "get", &answer);

    // A real report: a few labelled predictions, then the aggregation run by the CLI, on the
    // store the handler writes to.
    for (text, label) in [
        ("I love this crew :)", 1),
        ("lost my bag, awful :(", 0),
        ("delayed again :(", 0),
    ] {
        let (status, _, body) = api
            .send(
                "post",
                "/predict",
                Some(&json!({"text": text, "true_label": label})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let data = api.server.data.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while logged_lines(&data.join("logs").join("predictions")) < 3 {
        assert!(
            Instant::now() < deadline,
            "the prediction log never held the 3 records"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tweet-sentiment"))
        .arg("report")
        .env_clear()
        .env("DATA_DIR", &data)
        .env("MODELS_DIR", &api.server.models)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "report: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let answer = api.send("get", "/report", None).await;
    assert_eq!(answer.0, 200, "{}", answer.2);
    api.assert_described(&spec, "/report", "get", &answer);
    let since_start = &answer.2["overall"]["since_start"];
    assert_eq!(since_start["predictions"], 3, "{since_start}");
    assert_eq!(since_start["labelled"], 3, "{since_start}");

    // A report that is not JSON is our fault, said as such.
    std::fs::write(data.join("reports").join("latest.json"), b"{cut short").unwrap();
    let answer = api.send("get", "/report", None).await;
    assert_eq!(answer.0, 500);
    assert_eq!(answer.2["error"]["code"], "report_unreadable");
    api.assert_described(&spec, "/report", "get", &answer);
}

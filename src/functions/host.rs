//! The Functions host's custom-handler protocol for non-HTTP triggers.
//!
//! HTTP functions are forwarded as they are (`enableForwardingHttpRequest`). A timer invocation
//! arrives as `POST /<function-name>` with an [`InvokeRequest`] and must be answered with an
//! [`InvokeResponse`]. A non-2xx status tells the host the invocation failed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// What the host sends: trigger and input binding data by binding name, plus metadata.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvokeRequest {
    #[serde(default)]
    pub data: HashMap<String, serde_json::Value>,
    #[serde(default)]
    pub metadata: HashMap<String, serde_json::Value>,
}

/// What the host expects back: output bindings, log lines it forwards to its own logs, and a
/// return value.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvokeResponse {
    pub outputs: HashMap<String, serde_json::Value>,
    pub logs: Vec<String>,
    pub return_value: Option<serde_json::Value>,
}

/// The timer trigger's binding data (`Data.timer`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimerInfo {
    #[serde(default)]
    pub is_past_due: bool,
    #[serde(default)]
    pub schedule_status: Option<serde_json::Value>,
}

impl InvokeRequest {
    /// The timer binding of a timer invocation, if present and well formed.
    pub fn timer(&self) -> Option<TimerInfo> {
        self.data
            .get("timer")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_timer_envelope_and_answers_in_pascal_case() {
        let raw = r#"{"Data":{"timer":{"Schedule":{"AdjustForDST":true},"ScheduleStatus":null,"IsPastDue":false}},
                      "Metadata":{"sys":{"MethodName":"metrics-report","UtcNow":"2026-11-25T10:15:00Z"}}}"#;
        let request: InvokeRequest = serde_json::from_str(raw).unwrap();
        assert!(!request.timer().unwrap().is_past_due);
        assert!(request.metadata.contains_key("sys"));
        let response = InvokeResponse {
            logs: vec!["done".into()],
            ..Default::default()
        };
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["Logs"][0], "done");
        assert!(json["Outputs"].is_object());
        assert!(json["ReturnValue"].is_null());
    }
}

//! The HTTP client behind `predict --url`: scores texts with a running app (deployed, or a local
//! `serve`), through the same `POST /predict` any other caller uses.

use std::time::Duration;

use anyhow::{anyhow, Context};
use reqwest::header::HeaderValue;
use url::Url;

use crate::config::FunctionKey;
use crate::functions::wire::{BatchAnswer, ErrorBody, PredictRequest, PredictionAnswer};

/// Header the Functions host reads a function key from.
pub const FUNCTION_KEY_HEADER: &str = "x-functions-key";

pub struct ApiClient {
    http: reqwest::Client,
    predict_url: Url,
    key: Option<HeaderValue>,
}

impl ApiClient {
    /// `base` is the API root (`…/api`); a trailing slash is optional.
    pub fn new(base: &Url, key: Option<&FunctionKey>) -> anyhow::Result<Self> {
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let predict_url = base.join("predict").context("building the predict URL")?;
        let key = key
            .map(|k| {
                let mut value = HeaderValue::from_str(k.expose())
                    .map_err(|_| anyhow!("the function key holds characters a header cannot"))?;
                value.set_sensitive(true);
                Ok::<_, anyhow::Error>(value)
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            predict_url,
            key,
        })
    }

    /// Scores one text, with its true label if known.
    pub async fn predict_one(
        &self,
        text: &str,
        true_label: Option<u8>,
    ) -> anyhow::Result<PredictionAnswer> {
        self.post(&PredictRequest {
            text: Some(text.to_owned()),
            true_label,
            ..PredictRequest::default()
        })
        .await
    }

    /// Scores a batch (at most the API's batch size); predictions come back in the texts' order.
    pub async fn predict_batch(&self, texts: &[String]) -> anyhow::Result<Vec<PredictionAnswer>> {
        let answer: BatchAnswer = self
            .post(&PredictRequest {
                texts: Some(texts.to_vec()),
                ..PredictRequest::default()
            })
            .await?;
        if answer.predictions.len() != texts.len() {
            return Err(anyhow!(
                "the API answered {} predictions for {} texts",
                answer.predictions.len(),
                texts.len()
            ));
        }
        Ok(answer.predictions)
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        body: &PredictRequest,
    ) -> anyhow::Result<T> {
        let mut request = self.http.post(self.predict_url.clone()).json(body);
        if let Some(key) = &self.key {
            request = request.header(FUNCTION_KEY_HEADER, key.clone());
        }
        // The URL is shown without its query: a key passed as `?code=` must not be printed.
        let shown = shown_url(&self.predict_url);
        let response = request
            .send()
            .await
            .map_err(|e| anyhow!("could not reach {shown}: {}", causes(e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| anyhow!("reading the answer from {shown}: {}", causes(e)))?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(ErrorBody { error, .. }) => anyhow!(
                    "{shown} answered {status} ({}): {}{}",
                    error.code,
                    error.message,
                    hint(status)
                ),
                Err(_) => anyhow!("{shown} answered {status}{}", hint(status)),
            });
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{shown} answered {status} with an unexpected body"))
    }
}

/// An HTTP error with its causes ("connection refused" is in a source, not in the top error),
/// and without the URL, which is shown separately without its query.
fn causes(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    let _ = shown.set_password(None);
    shown.to_string()
}

fn hint(status: reqwest::StatusCode) -> &'static str {
    match status.as_u16() {
        401 | 403 => "; the app needs a function key: --key or TWEET_SENTIMENT_KEY",
        404 => "; is --url the API base, ending in /api?",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predict_url_is_under_the_api_base_with_or_without_a_slash() {
        for base in ["https://app.example/api", "https://app.example/api/"] {
            let client = ApiClient::new(&Url::parse(base).unwrap(), None).unwrap();
            assert_eq!(
                client.predict_url.as_str(),
                "https://app.example/api/predict"
            );
        }
    }

    #[test]
    fn shown_urls_drop_keys_passed_in_the_query() {
        let url = Url::parse("https://user:pw@app.example/api/predict?code=secret").unwrap();
        let shown = shown_url(&url);
        assert!(
            !shown.contains("secret") && !shown.contains("pw"),
            "{shown}"
        );
    }

    #[test]
    fn bodies_follow_the_api_contract() {
        let body = |r: PredictRequest| serde_json::to_value(r).unwrap();
        let one = body(PredictRequest {
            text: Some("hi".into()),
            ..PredictRequest::default()
        });
        assert_eq!(one, serde_json::json!({"text": "hi"}));
        let labelled = body(PredictRequest {
            text: Some("hi".into()),
            true_label: Some(0),
            ..PredictRequest::default()
        });
        assert_eq!(labelled, serde_json::json!({"text": "hi", "true_label": 0}));
        let batch = body(PredictRequest {
            texts: Some(vec!["a".into(), "b".into()]),
            ..PredictRequest::default()
        });
        assert_eq!(batch, serde_json::json!({"texts": ["a", "b"]}));
    }
}

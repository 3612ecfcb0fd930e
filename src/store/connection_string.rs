//! Parsing of Azure Storage connection strings (`UseDevelopmentStorage=true` or an account-key form).

use std::fmt;

use url::Url;

use super::{StoreError, StoreResult};

/// Azurite's documented, public development account. It is not a secret: every emulator ships it.
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// What a connection string resolves to. The key is kept out of `Debug` output.
#[derive(Clone)]
pub struct ConnectionString {
    pub account_name: String,
    pub account_key: String,
    /// The blob service endpoint, without a trailing slash.
    pub blob_endpoint: Url,
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("account_name", &self.account_name)
            .field("account_key", &"<redacted>")
            .field("blob_endpoint", &self.blob_endpoint.as_str())
            .finish()
    }
}

impl ConnectionString {
    pub fn parse(raw: &str) -> StoreResult<Self> {
        let mut use_dev = false;
        let mut protocol = "https".to_owned();
        let (mut name, mut key, mut endpoint, mut suffix) = (None, None, None, None);
        for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            // Values (keys in particular) may contain '=', so split on the first one only.
            let (k, v) = part.split_once('=').ok_or_else(|| {
                StoreError::Config("connection string has a part without '='".into())
            })?;
            match k {
                "UseDevelopmentStorage" => use_dev = v.eq_ignore_ascii_case("true"),
                "DefaultEndpointsProtocol" => protocol = v.to_owned(),
                "AccountName" => name = Some(v.to_owned()),
                "AccountKey" => key = Some(v.to_owned()),
                "BlobEndpoint" => endpoint = Some(v.to_owned()),
                "EndpointSuffix" => suffix = Some(v.to_owned()),
                // Queue/table endpoints and the like do not concern the blob store.
                _ => {}
            }
        }
        if use_dev {
            name.get_or_insert_with(|| DEV_ACCOUNT.to_owned());
            key.get_or_insert_with(|| DEV_KEY.to_owned());
            endpoint.get_or_insert_with(|| format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"));
        }
        let account_name =
            name.ok_or_else(|| StoreError::Config("connection string has no AccountName".into()))?;
        let account_key =
            key.ok_or_else(|| StoreError::Config("connection string has no AccountKey".into()))?;
        let endpoint = endpoint.unwrap_or_else(|| {
            format!(
                "{protocol}://{account_name}.blob.{}",
                suffix.as_deref().unwrap_or("core.windows.net")
            )
        });
        Ok(Self {
            account_name,
            account_key,
            blob_endpoint: parse_endpoint(&endpoint)?,
        })
    }
}

/// Parses a blob endpoint and strips trailing slashes: with a path-style endpoint
/// (`http://127.0.0.1:10000/devstoreaccount1/`) the slash would produce `//container` URLs that the
/// service rejects.
pub fn parse_endpoint(raw: &str) -> StoreResult<Url> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = Url::parse(trimmed)
        .map_err(|e| StoreError::Config(format!("invalid blob endpoint {trimmed:?}: {e}")))?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err(StoreError::Config(format!(
            "blob endpoint {trimmed:?} is not an http(s) URL"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_storage_points_at_local_azurite() {
        let cs = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(cs.account_name, "devstoreaccount1");
        assert_eq!(
            cs.blob_endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
    }

    #[test]
    fn account_key_form_with_and_without_explicit_endpoint() {
        let cs = ConnectionString::parse(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5==;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(cs.account_key, "a2V5==");
        assert_eq!(
            cs.blob_endpoint.as_str(),
            "https://acct.blob.core.windows.net/"
        );
        let cs = ConnectionString::parse(
            "AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;",
        )
        .unwrap();
        assert_eq!(
            cs.blob_endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
    }

    #[test]
    fn key_never_shows_in_debug_and_missing_parts_are_reported() {
        let cs = ConnectionString::parse("AccountName=a;AccountKey=c2VjcmV0").unwrap();
        assert!(!format!("{cs:?}").contains("c2VjcmV0"));
        assert!(ConnectionString::parse("AccountName=a").is_err());
        assert!(ConnectionString::parse("garbage").is_err());
    }
}

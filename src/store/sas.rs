//! Account SAS signing.
//!
//! The official SDK authenticates with Entra ID tokens only. For an account-key connection string
//! (Azurite, or a developer's own account) we sign a short-lived account SAS with the key and
//! attach it to the container URLs; the store re-signs before it expires.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{StoreError, StoreResult};

/// The service version the signature is computed for.
const SAS_VERSION: &str = "2022-11-02";

/// A signed account SAS query string and when it stops being valid.
#[derive(Clone)]
pub struct AccountSas {
    pub query: String,
    pub expires_at: OffsetDateTime,
}

/// Signs an account SAS for the blob service, for all resource types, with the permissions the
/// product uses (read, add, create, write, delete, list), valid from a little before `now` (clock
/// skew) until `now + lifetime`.
pub fn sign_account_sas(
    account_name: &str,
    account_key_base64: &str,
    now: OffsetDateTime,
    lifetime: time::Duration,
) -> StoreResult<AccountSas> {
    let key = STANDARD
        .decode(account_key_base64)
        .map_err(|_| StoreError::Config("AccountKey is not valid base64".into()))?;
    let start = format_time(now - time::Duration::minutes(5))?;
    let expires_at = now + lifetime;
    let expiry = format_time(expires_at)?;
    let (permissions, services, resource_types, protocols) = ("racwdl", "b", "sco", "https,http");
    // Field order and the trailing empty lines (IP, encryption scope) are fixed by the service.
    let string_to_sign = format!(
        "{account_name}\n{permissions}\n{services}\n{resource_types}\n{start}\n{expiry}\n\n{protocols}\n{SAS_VERSION}\n\n"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| StoreError::Config("AccountKey has an invalid length".into()))?;
    mac.update(string_to_sign.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("sv", SAS_VERSION)
        .append_pair("ss", services)
        .append_pair("srt", resource_types)
        .append_pair("sp", permissions)
        .append_pair("st", &start)
        .append_pair("se", &expiry)
        .append_pair("spr", protocols)
        .append_pair("sig", &signature)
        .finish();
    Ok(AccountSas { query, expires_at })
}

fn format_time(t: OffsetDateTime) -> StoreResult<String> {
    // The service wants whole seconds in UTC: `2026-11-25T10:00:00Z`.
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| StoreError::Config(e.to_string()))?;
    t.format(&Rfc3339)
        .map_err(|e| StoreError::Config(e.to_string()))
}

/// Removes SAS signatures from text that may contain URLs (SDK error messages do), so that it
/// can be logged or returned.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("sig=") {
        out.push_str(&rest[..pos + 4]);
        out.push_str("REDACTED");
        let tail = &rest[pos + 4..];
        let end = tail
            .find(|c: char| c == '&' || c == '"' || c == '\'' || c.is_whitespace() || c == ')')
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_hmac_of_the_documented_string() {
        let now = time::macros::datetime!(2026-11-25 10:00:00 UTC);
        let sas = sign_account_sas("acct", "a2V5", now, time::Duration::hours(1)).unwrap();
        assert!(sas.query.contains("se=2026-11-25T11%3A00%3A00Z"));
        assert!(sas.query.contains("st=2026-11-25T09%3A55%3A00Z"));
        let expected_input = "acct\nracwdl\nb\nsco\n2026-11-25T09:55:00Z\n2026-11-25T11:00:00Z\n\nhttps,http\n2022-11-02\n\n";
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(expected_input.as_bytes());
        let expected = STANDARD.encode(mac.finalize().into_bytes());
        let sig: String = url::form_urlencoded::parse(sas.query.as_bytes())
            .find(|(k, _)| k == "sig")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        assert_eq!(sig, expected);
    }

    #[test]
    fn redact_hides_every_signature() {
        let text = "GET http://h/c/b?sv=1&sig=abc%2Bdef&se=2 failed; again sig=xyz";
        let red = redact(text);
        assert!(!red.contains("abc") && !red.contains("xyz"), "{red}");
        assert!(red.contains("sig=REDACTED&se=2"));
    }

    #[test]
    fn bad_key_is_a_config_error() {
        let now = OffsetDateTime::now_utc();
        assert!(sign_account_sas("a", "not base64!", now, time::Duration::hours(1)).is_err());
    }
}

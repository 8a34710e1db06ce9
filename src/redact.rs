//! The one redaction step for text that came from a server: it removes the secrets this process
//! knows (the service principal's client secret, the access tokens it was given) and anything
//! shaped like a credential, before the text reaches a CloudFormation reason, a log line or an
//! invocation result.
//!
//! Servers should never echo credentials, but an accounts host that misbehaves, or a TLS-
//! intercepting proxy in front of it, can: an error body that repeats the Authorization header,
//! or a token answer whose `token_type` is the secret. Knows nothing of where the text goes.

use std::sync::LazyLock;

use base64::Engine as _;
use regex_lite::Regex;

/// What a removed secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Known secrets shorter than this are not looked for verbatim: they would match ordinary words.
/// Real client secrets and access tokens are dozens of characters long.
const MIN_SECRET_CHARS: usize = 8;

/// Credential shapes, whoever issued them:
/// - an HTTP `Authorization` value (`Bearer …`, `Basic …`), the scheme word kept;
/// - a JSON Web Token (three base64url parts, the first starting `eyJ`, as Databricks OAuth
///   access tokens are);
/// - Databricks personal access tokens (`dapi` and 32 hex digits) and OAuth secrets (`dose` and
///   alphanumerics), the prefixes Databricks documents for its secret scanning;
/// - the value after a credential field name (`access_token`, `client_secret`, …) in JSON or in a
///   form body.
static SHAPES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    SHAPE_PATTERNS
        .iter()
        .filter_map(|(pattern, replacement)| Some((Regex::new(pattern).ok()?, *replacement)))
        .collect()
});

/// The patterns behind [`SHAPES`]; a test checks that every one compiles. A credential after
/// `Bearer`/`Basic` must hold a digit, so that prose ("basic authentication") is left alone.
const SHAPE_PATTERNS: [(&str, &str); 4] = [
    (
        r"(?i)\b(bearer|basic)(\s+|%20|\+)[A-Za-z0-9\-._~+/]*[0-9][A-Za-z0-9\-._~+/]*=*",
        "${1}${2}[REDACTED]",
    ),
    (
        r"eyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*",
        REDACTED,
    ),
    (
        r"\b(dapi[0-9a-f]{32}(-[0-9]+)?|dose[0-9A-Za-z]{16,})\b",
        REDACTED,
    ),
    (
        r#"(?i)("?\b(access_token|refresh_token|id_token|client_secret|password)"?\s*[:=]\s*"?)[^"\s,&}]+"#,
        "${1}[REDACTED]",
    ),
];

/// Removes `known` secrets (and the forms they travel in) and every credential shape from
/// server text. Built per Databricks client, which holds the secrets.
#[derive(Clone, Default)]
pub struct Redactor {
    known: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.known.len())
    }
}

impl Redactor {
    /// A client secret is also looked for as HTTP Basic sends it (base64 of `client_id:secret`)
    /// and URL-encoded, as a form body carries it.
    pub fn for_client(client_id: &str, client_secret: &str) -> Self {
        let mut redactor = Self::default();
        redactor.add(client_secret);
        redactor.add(
            &base64::engine::general_purpose::STANDARD
                .encode(format!("{client_id}:{client_secret}")),
        );
        redactor.add(&form_encoded(client_secret));
        redactor
    }

    /// Looks for `secret` verbatim from now on (an access token once it is issued).
    pub fn add(&mut self, secret: &str) {
        if secret.chars().count() >= MIN_SECRET_CHARS && !self.known.iter().any(|k| k == secret) {
            self.known.push(secret.to_owned());
        }
    }

    /// `text` without any known secret or credential shape.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.known {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        scrub(&out)
    }
}

/// `text` without anything shaped like a credential (no known secrets needed): the last step
/// before a reason leaves the function, whatever produced it.
pub fn scrub(text: &str) -> String {
    let mut out = std::borrow::Cow::Borrowed(text);
    for (pattern, replacement) in SHAPES.iter() {
        if pattern.is_match(&out) {
            out = std::borrow::Cow::Owned(pattern.replace_all(&out, *replacement).into_owned());
        }
    }
    out.into_owned()
}

/// `application/x-www-form-urlencoded` form of `text`.
fn form_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "dose0123456789abcdefXYZ/+=secret";
    const TOKEN: &str = "emu00112233445566778899aabbccddeeff";

    #[test]
    fn known_secrets_are_removed_in_every_form_they_travel_in() {
        let mut redactor = Redactor::for_client("sp-client", SECRET);
        redactor.add(TOKEN);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("sp-client:{SECRET}"));
        for echoed in [
            format!("invalid client sp-client/{SECRET}"),
            format!("expected nothing, got {TOKEN}!"),
            format!("header was {basic}"),
            format!("client_secret={}", form_encoded(SECRET)),
            format!("token_type {SECRET:?}"),
        ] {
            let clean = redactor.text(&echoed);
            assert!(!clean.contains(SECRET), "{clean}");
            assert!(!clean.contains(TOKEN), "{clean}");
            assert!(!clean.contains(&basic), "{clean}");
            assert!(!clean.contains("0123456789abcdef"), "{clean}");
            assert!(clean.contains(REDACTED), "{clean}");
        }
        // The client id is not a secret and stays readable.
        assert!(
            redactor
                .text("client sp-client unknown")
                .contains("sp-client")
        );
    }

    #[test]
    fn credential_shapes_are_removed_without_knowing_the_secret() {
        for (text, gone) in [
            ("Authorization: Bearer abc.def-ghi_jkl9", "abc.def-ghi_jkl9"),
            ("authorization=basic c3A6c2VjcmV0==", "c3A6c2VjcmV0"),
            (
                "token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzcCJ9.c2lnbmF0dXJl here",
                "eyJzdWIiOiJzcCJ9",
            ),
            (
                "pat dapi0123456789abcdef0123456789abcdef-2 leaked",
                "dapi0123",
            ),
            ("secret dose1234567890ABCDEFGH leaked", "dose1234567890"),
            (
                r#"{"access_token":"opaque-value-1","x":1}"#,
                "opaque-value-1",
            ),
            ("refresh_token = opaque-value-2&next", "opaque-value-2"),
        ] {
            let clean = scrub(text);
            assert!(!clean.contains(gone), "{text} -> {clean}");
            assert!(clean.contains(REDACTED), "{text} -> {clean}");
        }
        assert!(scrub("Bearer abc1").starts_with("Bearer [REDACTED]"));
        assert_eq!(
            SHAPES.len(),
            SHAPE_PATTERNS.len(),
            "a pattern does not compile"
        );
    }

    #[test]
    fn ordinary_messages_pass_unchanged() {
        let redactor = Redactor::for_client("sp", "short");
        for text in [
            "Network configuration 3f2a... is in use by workspace 1234567890",
            "INVALID_PARAMETER_VALUE: vpce-0a1b2c3d4e5f60718 is not in region us-east-1",
            "the basic tier does not support PrivateLink; use bearer authentication",
            "short secrets are not looked for: short",
        ] {
            assert_eq!(redactor.text(text), text);
        }
    }
}

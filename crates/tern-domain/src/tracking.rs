//! Signed tracking tokens: what the open pixel, click redirect and unsubscribe links carry.
//!
//! A token is `<key id>.<base64url(payload ‖ tag)>`: the payload encodes the claims compactly (the message
//! id as its 16 raw bytes, the click URL without its scheme), and the tag is HMAC-SHA256 over the key id and
//! the payload, truncated to 128 bits. The click URL is inside the signed payload, so the redirect only ever
//! goes where the sender's email pointed (no open redirect), and nobody can forge an unsubscribe for another
//! message. The key id lets keys rotate: sign with the newest, verify with any still listed.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::delivery::request::{MESSAGE_ID_PREFIX, is_message_id};
use crate::templates::LinkTracker;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC kept in a token: 128 bits, as much as forging needs to guess.
const TAG_BYTES: usize = 16;
/// The first payload byte; a new layout gets a new number.
const FORMAT_VERSION: u8 = 1;
/// Separates tracking tags from any other use of the same key.
const DOMAIN: &[u8] = b"tern-tracking-v1";
/// The shortest secret a key may have.
pub const MIN_SECRET_BYTES: usize = 32;
/// The longest key id.
pub const MAX_KEY_ID_CHARS: usize = 8;

/// What a token is for; a token of one kind is refused where another is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Open,
    Click,
    Unsubscribe,
}

impl TokenKind {
    const fn code(self) -> u8 {
        match self {
            Self::Open => 1,
            Self::Click => 2,
            Self::Unsubscribe => 3,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Open),
            2 => Some(Self::Click),
            3 => Some(Self::Unsubscribe),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Click => "click",
            Self::Unsubscribe => "unsubscribe",
        }
    }
}

/// What a token says. `link_index` and `url` are set for clicks only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub workspace_id: String,
    pub message_id: String,
    pub user_id: String,
    pub kind: TokenKind,
    pub link_index: Option<u32>,
    pub url: Option<String>,
}

impl Claims {
    fn new(workspace_id: &str, message_id: &str, user_id: &str, kind: TokenKind) -> Self {
        Self {
            workspace_id: workspace_id.to_string(),
            message_id: message_id.to_string(),
            user_id: user_id.to_string(),
            kind,
            link_index: None,
            url: None,
        }
    }

    pub fn open(workspace_id: &str, message_id: &str, user_id: &str) -> Self {
        Self::new(workspace_id, message_id, user_id, TokenKind::Open)
    }

    pub fn unsubscribe(workspace_id: &str, message_id: &str, user_id: &str) -> Self {
        Self::new(workspace_id, message_id, user_id, TokenKind::Unsubscribe)
    }

    pub fn click(
        workspace_id: &str,
        message_id: &str,
        user_id: &str,
        link_index: u32,
        url: &str,
    ) -> Self {
        Self {
            link_index: Some(link_index),
            url: Some(url.to_string()),
            ..Self::new(workspace_id, message_id, user_id, TokenKind::Click)
        }
    }
}

/// Why a token or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was signed with a key that is not known (or no longer)")]
    UnknownKey,
    #[error("the token's signature does not match")]
    BadSignature,
    #[error("the token is for {found}, not {expected}")]
    WrongKind {
        expected: &'static str,
        found: &'static str,
    },
    #[error("{field}: {reason}")]
    InvalidKey { field: &'static str, reason: String },
}

/// One signing key: a short id that goes into every token, and the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TrackingKey {
    id: String,
    secret: Vec<u8>,
}

impl fmt::Debug for TrackingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackingKey")
            .field("id", &self.id)
            .field("secret", &"<hidden>")
            .finish()
    }
}

impl TrackingKey {
    /// A key from stored parts: the id is 1 to 8 characters of `[a-z0-9]`, the secret at least 32 bytes.
    pub fn new(id: &str, secret: Vec<u8>) -> Result<Self, TokenError> {
        let id_ok = !id.is_empty()
            && id.len() <= MAX_KEY_ID_CHARS
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !id_ok {
            return Err(TokenError::InvalidKey {
                field: "id",
                reason: format!("{id:?} must be 1 to {MAX_KEY_ID_CHARS} characters of [a-z0-9]"),
            });
        }
        if secret.len() < MIN_SECRET_BYTES {
            return Err(TokenError::InvalidKey {
                field: "secret",
                reason: format!("must be at least {MIN_SECRET_BYTES} bytes"),
            });
        }
        Ok(Self {
            id: id.to_string(),
            secret,
        })
    }

    /// A new key with 32 random bytes from the thread-local CSPRNG.
    pub fn generate(id: &str) -> Result<Self, TokenError> {
        let mut secret = vec![0u8; MIN_SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        Self::new(id, secret)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret, for storing it.
    pub fn expose_secret(&self) -> &[u8] {
        &self.secret
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        mac.update(DOMAIN);
        mac.update(&(self.id.len() as u64).to_be_bytes());
        mac.update(self.id.as_bytes());
        mac.update(payload);
        mac
    }
}

/// Signs `claims` with `key`.
pub fn sign(key: &TrackingKey, claims: &Claims) -> String {
    let mut bytes = encode(claims);
    let tag = key.mac(&bytes).finalize().into_bytes();
    bytes.extend_from_slice(&tag[..TAG_BYTES]);
    format!("{}.{}", key.id, URL_SAFE_NO_PAD.encode(bytes))
}

/// Checks a token's signature against the key its id names (any of `keys`) and that it is of the
/// `expected` kind, and returns its claims.
pub fn verify(
    keys: &[TrackingKey],
    token: &str,
    expected: TokenKind,
) -> Result<Claims, TokenError> {
    let (key_id, body) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let key = keys
        .iter()
        .find(|key| key.id == key_id)
        .ok_or(TokenError::UnknownKey)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| TokenError::Malformed)?;
    if bytes.len() <= TAG_BYTES {
        return Err(TokenError::Malformed);
    }
    let (payload, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
    key.mac(payload)
        .verify_truncated_left(tag)
        .map_err(|_| TokenError::BadSignature)?;
    let claims = decode(payload).ok_or(TokenError::Malformed)?;
    if claims.kind != expected {
        return Err(TokenError::WrongKind {
            expected: expected.as_str(),
            found: claims.kind.as_str(),
        });
    }
    Ok(claims)
}

/// Flag bits of the second payload byte, above the two bits of the kind.
const PACKED_MESSAGE_ID: u8 = 1 << 2;
const URL_HTTPS: u8 = 1 << 3;
const URL_HTTP: u8 = 1 << 4;

fn encode(claims: &Claims) -> Vec<u8> {
    let mut flags = claims.kind.code();
    let packed_id = packed_message_id(&claims.message_id);
    if packed_id.is_some() {
        flags |= PACKED_MESSAGE_ID;
    }
    let url = claims.url.as_deref().map(|url| {
        if let Some(rest) = url.strip_prefix("https://") {
            flags |= URL_HTTPS;
            rest
        } else if let Some(rest) = url.strip_prefix("http://") {
            flags |= URL_HTTP;
            rest
        } else {
            url
        }
    });
    let mut out = vec![FORMAT_VERSION, flags];
    put_bytes(&mut out, claims.workspace_id.as_bytes());
    match packed_id {
        Some(raw) => out.extend_from_slice(&raw),
        None => put_bytes(&mut out, claims.message_id.as_bytes()),
    }
    put_bytes(&mut out, claims.user_id.as_bytes());
    if claims.kind == TokenKind::Click {
        put_varint(&mut out, u64::from(claims.link_index.unwrap_or(0)));
        put_bytes(&mut out, url.unwrap_or("").as_bytes());
    }
    out
}

fn decode(payload: &[u8]) -> Option<Claims> {
    let mut reader = Reader(payload);
    if reader.byte()? != FORMAT_VERSION {
        return None;
    }
    let flags = reader.byte()?;
    let kind = TokenKind::from_code(flags & 0b11)?;
    let workspace_id = reader.string()?;
    let message_id = if flags & PACKED_MESSAGE_ID != 0 {
        format!("{MESSAGE_ID_PREFIX}{}", hex::encode(reader.take(16)?))
    } else {
        reader.string()?
    };
    let user_id = reader.string()?;
    let (link_index, url) = if kind == TokenKind::Click {
        let index = u32::try_from(reader.varint()?).ok()?;
        let rest = reader.string()?;
        let scheme = match (flags & URL_HTTPS != 0, flags & URL_HTTP != 0) {
            (true, false) => "https://",
            (false, true) => "http://",
            (false, false) => "",
            (true, true) => return None,
        };
        (Some(index), Some(format!("{scheme}{rest}")))
    } else {
        (None, None)
    };
    reader.0.is_empty().then_some(Claims {
        workspace_id,
        message_id,
        user_id,
        kind,
        link_index,
        url,
    })
}

/// The 16 bytes behind a `msg_<32 hex>` id, which half its length in a token.
fn packed_message_id(id: &str) -> Option<[u8; 16]> {
    if !is_message_id(id) {
        return None;
    }
    let mut raw = [0u8; 16];
    hex::decode_to_slice(&id[MESSAGE_ID_PREFIX.len()..], &mut raw).ok()?;
    Some(raw)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

struct Reader<'b>(&'b [u8]);

impl<'b> Reader<'b> {
    fn take(&mut self, count: usize) -> Option<&'b [u8]> {
        if self.0.len() < count {
            return None;
        }
        let (head, rest) = self.0.split_at(count);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|bytes| bytes[0])
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.varint()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

/// Where tracking requests arrive: `base` is the public URL of the tracking function (an API Gateway stage
/// may add a path, kept as is); `mailto_domain`, when set, receives `List-Unsubscribe` mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingUrls {
    base: String,
    mailto_domain: Option<String>,
}

impl TrackingUrls {
    pub fn new(base: &str, mailto_domain: Option<&str>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            mailto_domain: mailto_domain.map(str::to_string),
        }
    }

    /// The open pixel: `{base}/t/o/{token}`.
    pub fn open(&self, token: &str) -> String {
        format!("{}/t/o/{token}", self.base)
    }

    /// The click redirect: `{base}/t/c/{token}`; the destination is inside the token.
    pub fn click(&self, token: &str) -> String {
        format!("{}/t/c/{token}", self.base)
    }

    /// The unsubscribe page (GET) and RFC 8058 one-click endpoint (POST): `{base}/t/u/{token}`.
    pub fn unsubscribe(&self, token: &str) -> String {
        format!("{}/t/u/{token}", self.base)
    }

    /// `mailto:unsubscribe@{domain}?subject={token}`. The token goes in the subject, not in the address
    /// (`unsubscribe+token@…`), because a token is longer than the 64 octets RFC 5321 allows a local part.
    pub fn unsubscribe_mailto(&self, token: &str) -> Option<String> {
        let domain = self.mailto_domain.as_deref()?;
        Some(format!("mailto:unsubscribe@{domain}?subject={token}"))
    }
}

/// The links of one message: signed click URLs and open pixel for `render_email`, and the unsubscribe
/// URLs for the render context and the envelope.
#[derive(Debug, Clone)]
pub struct SignedLinks<'k> {
    key: &'k TrackingKey,
    urls: &'k TrackingUrls,
    workspace_id: String,
    message_id: String,
    user_id: String,
    track_opens: bool,
    track_clicks: bool,
}

impl<'k> SignedLinks<'k> {
    /// Links for one message, with opens and clicks tracked.
    pub fn new(
        key: &'k TrackingKey,
        urls: &'k TrackingUrls,
        workspace_id: &str,
        message_id: &str,
        user_id: &str,
    ) -> Self {
        Self {
            key,
            urls,
            workspace_id: workspace_id.to_string(),
            message_id: message_id.to_string(),
            user_id: user_id.to_string(),
            track_opens: true,
            track_clicks: true,
        }
    }

    /// Turns open and click tracking on or off (unsubscribe links are always signed).
    pub fn tracking(mut self, opens: bool, clicks: bool) -> Self {
        self.track_opens = opens;
        self.track_clicks = clicks;
        self
    }

    fn claims(&self, kind: TokenKind) -> Claims {
        Claims::new(&self.workspace_id, &self.message_id, &self.user_id, kind)
    }

    /// The unsubscribe page and one-click endpoint of this message.
    pub fn unsubscribe_url(&self) -> String {
        self.urls
            .unsubscribe(&sign(self.key, &self.claims(TokenKind::Unsubscribe)))
    }

    /// The `mailto:` entry of `List-Unsubscribe`, when a domain receives it.
    pub fn unsubscribe_mailto(&self) -> Option<String> {
        self.urls
            .unsubscribe_mailto(&sign(self.key, &self.claims(TokenKind::Unsubscribe)))
    }
}

impl LinkTracker for SignedLinks<'_> {
    /// Only http(s) links are tracked; `mailto:`, `tel:` and anchors stay as written.
    fn click_url(&self, index: usize, original: &str) -> Option<String> {
        if !self.track_clicks {
            return None;
        }
        let lower = original.get(..8).unwrap_or(original).to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return None;
        }
        let index = u32::try_from(index).ok()?;
        let claims = Claims::click(
            &self.workspace_id,
            &self.message_id,
            &self.user_id,
            index,
            original,
        );
        Some(self.urls.click(&sign(self.key, &claims)))
    }

    fn open_pixel_url(&self) -> Option<String> {
        self.track_opens.then(|| {
            self.urls
                .open(&sign(self.key, &self.claims(TokenKind::Open)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::request::{SendSource, message_id};

    fn key(id: &str, fill: u8) -> TrackingKey {
        TrackingKey::new(id, vec![fill; 32]).unwrap()
    }

    fn msg() -> String {
        message_id(
            "ws_abc123",
            &SendSource::Broadcast {
                broadcast_id: "bc_1".into(),
            },
            1,
            "user-42",
            None,
        )
    }

    fn click() -> Claims {
        Claims::click(
            "ws_abc123",
            &msg(),
            "user-42",
            3,
            "https://shop.example.com/sale?utm=1",
        )
    }

    #[test]
    fn every_kind_round_trips() {
        let key = key("k1", 7);
        for claims in [
            Claims::open("ws_abc123", &msg(), "user-42"),
            Claims::unsubscribe("ws_abc123", "custom-message-id", "ü@example.com"),
            click(),
            Claims::click("ws_abc123", &msg(), "u", 0, "http://a.example/"),
            Claims::click("ws_abc123", &msg(), "u", 70_000, "ftp://odd.example/"),
        ] {
            let token = sign(&key, &claims);
            assert!(token.starts_with("k1."), "{token}");
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{token}"
            );
            assert_eq!(
                verify(std::slice::from_ref(&key), &token, claims.kind),
                Ok(claims)
            );
        }
    }

    #[test]
    fn tampering_and_truncation_are_refused() {
        let key = key("k1", 7);
        let keys = [key.clone()];
        let token = sign(&key, &click());
        let (prefix, body) = token.split_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        // Change one byte of the URL: the tag no longer matches.
        let index = bytes.len() - TAG_BYTES - 3;
        bytes[index] ^= 0x01;
        let forged = format!("{prefix}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(
            verify(&keys, &forged, TokenKind::Click),
            Err(TokenError::BadSignature)
        );
        for cut in [1, 4, 20, body.len() - 2] {
            let truncated = &token[..token.len() - cut];
            assert!(verify(&keys, truncated, TokenKind::Click).is_err(), "{cut}");
        }
        assert_eq!(
            verify(&keys, "k1", TokenKind::Click),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify(&keys, "k1.!!!", TokenKind::Click),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify(&keys, "", TokenKind::Click),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token = sign(&key("k1", 8), &click());
        assert_eq!(
            verify(&[key("k1", 7)], &token, TokenKind::Click),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn unknown_key_ids_are_refused_and_old_keys_still_verify() {
        let old = key("k1", 7);
        let new = key("k2", 9);
        let token = sign(&old, &click());
        assert_eq!(
            verify(std::slice::from_ref(&new), &token, TokenKind::Click),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(
            verify(&[new.clone(), old.clone()], &token, TokenKind::Click),
            Ok(click())
        );
        // The key id is signed too: relabelling a token with another key's id fails.
        let relabelled = token.replacen("k1.", "k2.", 1);
        assert_eq!(
            verify(&[key("k2", 7)], &relabelled, TokenKind::Click),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_of_another_kind_is_refused() {
        let key = key("k1", 7);
        let open = sign(&key, &Claims::open("ws_abc123", &msg(), "user-42"));
        assert_eq!(
            verify(std::slice::from_ref(&key), &open, TokenKind::Unsubscribe),
            Err(TokenError::WrongKind {
                expected: "unsubscribe",
                found: "open"
            })
        );
    }

    #[test]
    fn keys_are_validated_and_hide_their_secret() {
        assert!(TrackingKey::new("K1", vec![0; 32]).is_err());
        assert!(TrackingKey::new("k1.", vec![0; 32]).is_err());
        assert!(TrackingKey::new("toolongid", vec![0; 32]).is_err());
        assert!(matches!(
            TrackingKey::new("k1", vec![0; 31]),
            Err(TokenError::InvalidKey {
                field: "secret",
                ..
            })
        ));
        let generated = TrackingKey::generate("k3").unwrap();
        assert_ne!(
            generated.expose_secret(),
            TrackingKey::generate("k3").unwrap().expose_secret()
        );
        assert!(!format!("{generated:?}").contains(&format!("{:?}", generated.expose_secret())));
    }

    #[test]
    fn a_click_token_for_a_200_character_link_fits_in_a_url() {
        let path = "p".repeat(200 - "https://shop.example.com/".len());
        let url = format!("https://shop.example.com/{path}");
        assert_eq!(url.len(), 200);
        let claims = Claims::click(
            "ws_abcdefghijklmnop",
            &msg(),
            "user_0123456789abcdef",
            12,
            &url,
        );
        let token = sign(&key("k1", 7), &claims);
        assert!(token.len() < 400, "{} characters", token.len());
    }

    #[test]
    fn urls_and_signed_links() {
        let key = key("k1", 7);
        let urls = TrackingUrls::new("https://t.example.com/prod/", Some("mail.example.com"));
        let message = msg();
        let links = SignedLinks::new(&key, &urls, "ws_abc123", &message, "user-42");
        let keys = [key.clone()];

        let click = links
            .click_url(3, "https://shop.example.com/sale?utm=1")
            .unwrap();
        let token = click
            .strip_prefix("https://t.example.com/prod/t/c/")
            .unwrap();
        assert_eq!(
            verify(&keys, token, TokenKind::Click),
            Ok(super::tests::click())
        );

        let pixel = links.open_pixel_url().unwrap();
        let token = pixel
            .strip_prefix("https://t.example.com/prod/t/o/")
            .unwrap();
        assert_eq!(
            verify(&keys, token, TokenKind::Open).unwrap().message_id,
            message
        );

        let unsubscribe = links.unsubscribe_url();
        let token = unsubscribe
            .strip_prefix("https://t.example.com/prod/t/u/")
            .unwrap();
        assert_eq!(
            verify(&keys, token, TokenKind::Unsubscribe)
                .unwrap()
                .user_id,
            "user-42"
        );

        let mailto = links.unsubscribe_mailto().unwrap();
        let token = mailto
            .strip_prefix("mailto:unsubscribe@mail.example.com?subject=")
            .unwrap();
        assert!(verify(&keys, token, TokenKind::Unsubscribe).is_ok());

        assert_eq!(links.click_url(0, "mailto:a@example.com"), None);
        assert_eq!(links.click_url(0, "#top"), None);
        let quiet = links.clone().tracking(false, false);
        assert_eq!(quiet.open_pixel_url(), None);
        assert_eq!(quiet.click_url(0, "https://example.com/"), None);
        assert_eq!(
            TrackingUrls::new("https://t.example.com", None).unsubscribe_mailto("x"),
            None
        );
    }

    #[test]
    fn signed_links_drive_render_email() {
        use crate::templates::{CompiledTemplate, RenderContext, TemplateDefinition, render_email};
        let definition = TemplateDefinition::from_json(&serde_json::json!({
            "channel": "email",
            "from": "Shop <shop@example.com>",
            "subject": "Sale",
            "body": {"html": "<p><a href=\"https://shop.example.com/sale\">Sale</a> <a href=\"mailto:help@example.com\">Help</a></p>"},
        }))
        .unwrap();
        let CompiledTemplate::Email(email) = definition.compile().unwrap() else {
            panic!("an email template");
        };
        let key = key("k1", 7);
        let urls = TrackingUrls::new("https://t.example.com", None);
        let message = msg();
        let links = SignedLinks::new(&key, &urls, "ws_abc123", &message, "user-42");
        let context = RenderContext {
            user_id: "user-42".into(),
            email: "ada@example.com".into(),
            traits: serde_json::Map::new(),
            time_zone: jiff::tz::TimeZone::UTC,
            now: "2026-11-23T12:00:00Z".parse().unwrap(),
            variables: serde_json::Map::new(),
            unsubscribe_url: links.unsubscribe_url(),
            preferences_url: "https://t.example.com/p".into(),
        };
        let rendered = render_email(&email, &context, &links).unwrap();
        assert_eq!(rendered.links.len(), 1, "{:?}", rendered.links);
        let link = &rendered.links[0];
        assert_eq!(link.original, "https://shop.example.com/sale");
        let token = link
            .click_url
            .strip_prefix("https://t.example.com/t/c/")
            .unwrap();
        let claims = verify(std::slice::from_ref(&key), token, TokenKind::Click).unwrap();
        assert_eq!(claims.url.as_deref(), Some("https://shop.example.com/sale"));
        assert!(rendered.html.contains(&link.click_url));
        assert!(rendered.html.contains("https://t.example.com/t/o/k1."));
        assert!(rendered.html.contains("mailto:help@example.com"));
    }
}

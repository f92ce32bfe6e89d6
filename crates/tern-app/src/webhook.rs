//! The webhook channel's outbound call: one rendered webhook sent through the SSRF guard.
//!
//! The URL is checked before anything else (`tern_domain::delivery::ssrf`); a host name is resolved here,
//! every address it resolves to is checked, and the connection is pinned to those addresses, so that a
//! second DNS answer cannot swap in a private address between the check and the connection. Redirects are
//! not followed, proxies from the environment are ignored (they would connect elsewhere), the call has a
//! connect and a total timeout, and at most `max_response_bytes` of the response are read.

use std::net::SocketAddr;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use tern_domain::delivery::ssrf::{CheckedUrl, Refusal, check_address, check_url};
use tern_domain::delivery::{parse_retry_after, retry_delay};
use tern_domain::templates::RenderedWebhook;

/// How webhook calls are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookClient {
    pub connect_timeout: Duration,
    /// From the start of the call to the end of the response body.
    pub total_timeout: Duration,
    /// The most of a response body kept (for the message record); the rest is not read.
    pub max_response_bytes: usize,
    pub user_agent: String,
}

impl Default for WebhookClient {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024,
            user_agent: "Tern-Webhook/1".to_string(),
        }
    }
}

/// A call the endpoint accepted (a 2xx status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOutcome {
    pub status: u16,
    /// The start of the response body, at most `max_response_bytes`.
    pub body: Vec<u8>,
    /// Whether the body was longer than what was kept.
    pub truncated: bool,
}

/// Why a webhook call did not succeed, classified for the sender: retry later or record as failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The URL or one of its addresses is not allowed; nothing was sent.
    #[error("refused: {0}")]
    Refused(#[from] Refusal),
    /// The rendered call cannot be made (a method or header HTTP does not allow).
    #[error("invalid webhook: {0}")]
    Invalid(String),
    /// A passing failure (timeout, connection, 408, 429, 5xx): retry after a backoff, at least
    /// `retry_after` when the endpoint said so.
    #[error("retryable failure: {reason}")]
    Retryable {
        reason: String,
        status: Option<u16>,
        retry_after: Option<Duration>,
    },
    /// The endpoint refused the call (another 4xx, or a redirect, which is not followed).
    #[error("permanent failure: {reason}")]
    Permanent { reason: String, status: u16 },
}

impl WebhookError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// How long to wait before retry number `attempt` (1 for the first), or `None` when retrying is
    /// pointless.
    pub fn retry_delay(&self, attempt: u32) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. } => Some(retry_delay(attempt, *retry_after)),
            _ => None,
        }
    }
}

/// Sends one rendered webhook. `allowed_hosts` are the hosts the workspace allows explicitly; they skip the
/// address check (an internal endpoint), every other host must resolve to public addresses only.
pub async fn send_webhook(
    client: &WebhookClient,
    webhook: &RenderedWebhook,
    allowed_hosts: &[String],
) -> Result<WebhookOutcome, WebhookError> {
    let checked = check_url(&webhook.url, allowed_hosts)?;
    let pinned = if checked.check_resolved {
        Some(resolve_checked(&checked).await?)
    } else {
        None
    };
    send_checked(client, webhook, &checked, pinned.as_deref()).await
}

/// The addresses of the URL's host, every one of them checked: one refused address refuses the call (the
/// connection could otherwise land on it).
async fn resolve_checked(checked: &CheckedUrl) -> Result<Vec<SocketAddr>, WebhookError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((checked.host.as_str(), checked.port))
        .await
        .map_err(|error| WebhookError::Retryable {
            reason: format!("could not resolve {}: {error}", checked.host),
            status: None,
            retry_after: None,
        })?
        .collect();
    if addresses.is_empty() {
        return Err(Refusal::Unresolved(checked.host.clone()).into());
    }
    for address in &addresses {
        check_address(address.ip())?;
    }
    Ok(addresses)
}

/// Makes the call; with `pinned`, the host connects only to those addresses.
async fn send_checked(
    client: &WebhookClient,
    webhook: &RenderedWebhook,
    checked: &CheckedUrl,
    pinned: Option<&[SocketAddr]>,
) -> Result<WebhookOutcome, WebhookError> {
    let method = Method::from_bytes(webhook.method.as_bytes())
        .map_err(|_| WebhookError::Invalid(format!("method {:?}", webhook.method)))?;
    let headers = header_map(&webhook.headers)?;
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(client.connect_timeout)
        .timeout(client.total_timeout)
        .user_agent(client.user_agent.as_str());
    if let Some(addresses) = pinned {
        builder = builder.resolve_to_addrs(&checked.host, addresses);
    }
    let http = builder
        .build()
        .map_err(|error| WebhookError::Invalid(format!("HTTP client: {error}")))?;
    let response = http
        .request(method, checked.url.clone())
        .headers(headers)
        .body(webhook.body.clone())
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, Timestamp::now()));
    let (body, truncated) = read_capped(response, client.max_response_bytes).await;
    classify(status, retry_after, body, truncated)
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, WebhookError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| WebhookError::Invalid(format!("header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| WebhookError::Invalid(format!("the value of header {name:?}")))?;
        map.append(header, value);
    }
    Ok(map)
}

fn transport_error(error: reqwest::Error) -> WebhookError {
    let reason = if error.is_timeout() {
        "the endpoint did not answer in time".to_string()
    } else if error.is_connect() {
        format!("could not connect: {error}")
    } else {
        format!("the call failed: {error}")
    };
    WebhookError::Retryable {
        reason,
        status: None,
        retry_after: None,
    }
}

/// Reads at most `cap` bytes of the body; a body that fails midway keeps what arrived (the status already
/// decides the outcome).
async fn read_capped(mut response: reqwest::Response, cap: usize) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return (body, true);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return (body, false),
            Err(_) => return (body, true),
        }
    }
}

fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
    truncated: bool,
) -> Result<WebhookOutcome, WebhookError> {
    let code = status.as_u16();
    if status.is_success() {
        return Ok(WebhookOutcome {
            status: code,
            body,
            truncated,
        });
    }
    let retryable = status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error();
    if retryable {
        return Err(WebhookError::Retryable {
            reason: format!("the endpoint answered {status}"),
            status: Some(code),
            retry_after,
        });
    }
    let reason = if status.is_redirection() {
        format!("the endpoint answered {status}; redirects are not followed")
    } else {
        format!("the endpoint answered {status}")
    };
    Err(WebhookError::Permanent {
        reason,
        status: code,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
    use axum::response::IntoResponse;
    use axum::routing::{any, post};

    use super::*;

    #[derive(Clone, Default)]
    struct Hits(Arc<AtomicUsize>);

    impl Hits {
        fn count(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    async fn echo(
        State(hits): State<Hits>,
        headers: AxumHeaders,
        body: String,
    ) -> impl IntoResponse {
        hits.0.fetch_add(1, Ordering::SeqCst);
        let signature = headers
            .get("x-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (AxumStatus::OK, format!("{signature}:{body}"))
    }

    async fn serve() -> (SocketAddr, Hits) {
        let hits = Hits::default();
        let app = Router::new()
            .route("/ok", post(echo))
            .route(
                "/throttled",
                any(|| async {
                    (
                        AxumStatus::TOO_MANY_REQUESTS,
                        [("retry-after", "7")],
                        "slow down",
                    )
                }),
            )
            .route("/broken", any(|| async { AxumStatus::SERVICE_UNAVAILABLE }))
            .route("/bad", any(|| async { (AxumStatus::BAD_REQUEST, "no") }))
            .route(
                "/moved",
                any(|| async { (AxumStatus::FOUND, [("location", "/ok")]) }),
            )
            .route("/big", any(|| async { "x".repeat(100_000) }))
            .route(
                "/slow",
                any(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (address, hits)
    }

    fn webhook(url: String) -> RenderedWebhook {
        RenderedWebhook {
            method: "POST".into(),
            url,
            headers: vec![("X-Signature".into(), "sig-1".into())],
            body: b"{\"event\":\"signup\"}".to_vec(),
        }
    }

    fn loopback() -> Vec<String> {
        vec!["127.0.0.1".to_string()]
    }

    #[tokio::test]
    async fn an_allowed_loopback_host_receives_the_call() {
        let (address, hits) = serve().await;
        let outcome = send_webhook(
            &WebhookClient::default(),
            &webhook(format!("http://{address}/ok")),
            &loopback(),
        )
        .await
        .unwrap();
        assert_eq!(outcome.status, 200);
        assert_eq!(outcome.body, b"sig-1:{\"event\":\"signup\"}");
        assert!(!outcome.truncated);
        assert_eq!(hits.count(), 1);
    }

    #[tokio::test]
    async fn the_same_url_without_the_allowance_is_refused_before_connecting() {
        let (address, hits) = serve().await;
        let error = send_webhook(
            &WebhookClient::default(),
            &webhook(format!("http://{address}/ok")),
            &[],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, WebhookError::Refused(Refusal::Address { .. })),
            "{error}"
        );
        assert!(!error.is_retryable());
        assert_eq!(hits.count(), 0);
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_before_connecting() {
        let (address, hits) = serve().await;
        let url = format!("http://localhost:{}/ok", address.port());
        let error = send_webhook(&WebhookClient::default(), &webhook(url), &[])
            .await
            .unwrap_err();
        assert!(
            matches!(error, WebhookError::Refused(Refusal::Address { .. })),
            "{error}"
        );
        assert_eq!(hits.count(), 0);
    }

    #[tokio::test]
    async fn a_pinned_host_connects_to_the_checked_address_without_dns() {
        let (address, hits) = serve().await;
        // `hooks.tern.invalid` has no DNS record: the call only works because it is pinned.
        let checked = check_url(
            &format!("http://hooks.tern.invalid:{}/ok", address.port()),
            &[],
        )
        .unwrap();
        assert!(checked.check_resolved);
        let outcome = send_checked(
            &WebhookClient::default(),
            &webhook(checked.url.to_string()),
            &checked,
            Some(&[address]),
        )
        .await
        .unwrap();
        assert_eq!(outcome.status, 200);
        assert_eq!(hits.count(), 1);
    }

    #[tokio::test]
    async fn failures_are_classified() {
        let (address, hits) = serve().await;
        let client = WebhookClient::default();
        let call = |path: &str| {
            let hook = webhook(format!("http://{address}{path}"));
            let client = client.clone();
            async move { send_webhook(&client, &hook, &loopback()).await }
        };

        let throttled = call("/throttled").await.unwrap_err();
        assert_eq!(
            throttled,
            WebhookError::Retryable {
                reason: "the endpoint answered 429 Too Many Requests".into(),
                status: Some(429),
                retry_after: Some(Duration::from_secs(7)),
            }
        );
        assert!(throttled.retry_delay(1).unwrap() >= Duration::from_secs(7));

        let broken = call("/broken").await.unwrap_err();
        assert!(matches!(
            broken,
            WebhookError::Retryable {
                status: Some(503),
                ..
            }
        ));

        let bad = call("/bad").await.unwrap_err();
        assert!(matches!(bad, WebhookError::Permanent { status: 400, .. }));
        assert_eq!(bad.retry_delay(1), None);

        let moved = call("/moved").await.unwrap_err();
        assert!(matches!(moved, WebhookError::Permanent { status: 302, .. }));
        assert_eq!(hits.count(), 0, "the redirect was not followed");
    }

    #[tokio::test]
    async fn the_response_body_is_capped() {
        let (address, _) = serve().await;
        let client = WebhookClient {
            max_response_bytes: 1000,
            ..WebhookClient::default()
        };
        let outcome = send_webhook(
            &client,
            &webhook(format!("http://{address}/big")),
            &loopback(),
        )
        .await
        .unwrap();
        assert_eq!(outcome.body.len(), 1000);
        assert!(outcome.truncated);
    }

    #[tokio::test]
    async fn a_slow_endpoint_is_a_retryable_timeout() {
        let (address, _) = serve().await;
        let client = WebhookClient {
            total_timeout: Duration::from_millis(200),
            ..WebhookClient::default()
        };
        let error = send_webhook(
            &client,
            &webhook(format!("http://{address}/slow")),
            &loopback(),
        )
        .await
        .unwrap_err();
        assert!(error.is_retryable(), "{error}");
    }

    #[tokio::test]
    async fn invalid_methods_and_headers_are_refused() {
        let mut hook = webhook("http://127.0.0.1:9/ok".into());
        hook.method = "PO ST".into();
        let error = send_webhook(&WebhookClient::default(), &hook, &loopback())
            .await
            .unwrap_err();
        assert!(matches!(error, WebhookError::Invalid(_)));
        let mut hook = webhook("http://127.0.0.1:9/ok".into());
        hook.headers = vec![("X-Bad".into(), "a\nb".into())];
        let error = send_webhook(&WebhookClient::default(), &hook, &loopback())
            .await
            .unwrap_err();
        assert!(matches!(error, WebhookError::Invalid(_)));
    }
}

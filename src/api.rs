//! HTTP to the API server, shared by discovery and log streams: bounded
//! retries (429 with Retry-After, 5xx, dropped connections), `Status` bodies
//! decoded into `Failure`, and transport errors turned into sentences.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde::de::DeserializeOwned;

use crate::connect::Connection;
use crate::error::Error;

/// A request the API server answered with an error `Status`.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: u16,
    pub reason: String,
    pub message: String,
}

impl Failure {
    /// The user-facing error for a failure that stops the whole run.
    pub fn into_error(
        self,
        server: &str,
        verb: &str,
        resource: &str,
        namespace: Option<&str>,
    ) -> Error {
        match self.code {
            401 => Error::Unauthorized {
                server: server.to_string(),
            },
            403 => Error::Forbidden {
                verb: verb.to_string(),
                resource: resource.to_string(),
                scope: match namespace {
                    Some(ns) => format!(" in namespace {ns}"),
                    None => " at cluster scope".to_string(),
                },
                message: self.message,
            },
            code => Error::Api {
                what: format!("{verb} {resource}"),
                code,
                message: self.message,
            },
        }
    }
}

#[derive(Debug)]
pub enum ApiError {
    /// The server answered, with an error status.
    Status(Failure),
    /// No usable answer: connection, TLS, timeout. Already a sentence.
    Transport(Error),
}

/// Retry and timeout settings for one request.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest `Retry-After` we honour; a server asking for more is asked again sooner.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// Exponential backoff with jitter (half fixed, half random) so that many
    /// workers hit by one outage do not come back in lockstep.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        exp / 2 + exp.mul_f64(fastrand::f64() / 2.0)
    }

    fn retry_after(&self, seconds: u64) -> Duration {
        Duration::from_secs(seconds).min(self.max_retry_after)
            + Duration::from_millis(fastrand::u64(0..=1000))
    }
}

#[derive(Clone)]
pub struct ApiClient {
    pub conn: Connection,
    pub policy: RetryPolicy,
    /// Whole-request limit for non-streaming calls (lists).
    pub request_timeout: Duration,
    lists: Arc<RateLimit>,
}

impl ApiClient {
    pub fn new(conn: Connection, policy: RetryPolicy) -> Self {
        ApiClient::with_list_rate(conn, policy, 20.0, 50)
    }

    /// Lists are rate limited (`--list-qps`/`--list-burst`); log streams are
    /// capped by `--concurrency` instead.
    pub fn with_list_rate(conn: Connection, policy: RetryPolicy, qps: f64, burst: u32) -> Self {
        ApiClient {
            conn,
            policy,
            request_timeout: Duration::from_secs(60),
            lists: Arc::new(RateLimit::new(qps, burst)),
        }
    }

    pub fn server(&self) -> &str {
        &self.conn.server
    }

    /// Send a request (rebuilt by `make` for each attempt) and return the
    /// response once it has a success status. Only the response head is
    /// awaited: the caller streams the body.
    pub async fn send(
        &self,
        make: impl Fn() -> Request<Vec<u8>>,
    ) -> Result<Response<Body>, ApiError> {
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let last = attempt >= self.policy.max_attempts;
            let (generation, client) = self.conn.client();
            let response = match client.send(make().map(Body::from)).await {
                Ok(response) => response,
                Err(err) => {
                    let err = classify_transport(&self.conn.server, &err);
                    let retryable = matches!(err, Error::Unreachable { .. });
                    if retryable && !last {
                        tracing::debug!(attempt, error = %err, "request failed, retrying");
                        tokio::time::sleep(self.policy.backoff(attempt)).await;
                        continue;
                    }
                    return Err(ApiError::Transport(err));
                }
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            // Bound tokens rotate (about hourly): on a 401, read the
            // credentials again once and retry; a second 401 stands.
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                refreshed = true;
                if let Err(e) = self.conn.refresh_credentials(generation) {
                    return Err(ApiError::Transport(e));
                }
                attempt -= 1;
                continue;
            }
            let retry_after = retry_after_seconds(&response);
            let failure = read_failure(response).await;
            let delay = match status {
                StatusCode::TOO_MANY_REQUESTS => {
                    Some(self.policy.retry_after(retry_after.unwrap_or(1)))
                }
                StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT => Some(match retry_after {
                    Some(secs) => self.policy.retry_after(secs),
                    None => self.policy.backoff(attempt),
                }),
                _ => None,
            };
            match delay {
                Some(delay) if !last => {
                    tracing::debug!(
                        attempt,
                        code = failure.code,
                        ?delay,
                        "server asked to retry"
                    );
                    tokio::time::sleep(delay).await;
                }
                _ => return Err(ApiError::Status(failure)),
            }
        }
    }

    /// GET a JSON object (a list page), with retries and a whole-request timeout.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        make: impl Fn() -> Request<Vec<u8>>,
    ) -> Result<T, ApiError> {
        let fetch = async {
            self.lists.acquire().await;
            let response = self.send(&make).await?;
            let body = collect(response.into_body(), &self.conn.server).await?;
            serde_json::from_slice::<T>(&body).map_err(|e| {
                ApiError::Transport(Error::Api {
                    what: make().uri().path().to_string(),
                    code: 200,
                    message: format!("the answer is not the JSON expected ({e})"),
                })
            })
        };
        match tokio::time::timeout(self.request_timeout, fetch).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::Transport(Error::Unreachable {
                server: self.conn.server.clone(),
                message: format!("no answer within {}s", self.request_timeout.as_secs()),
            })),
        }
    }
}

/// A token bucket: `burst` requests at once, then `qps` a second.
struct RateLimit {
    qps: f64,
    burst: f64,
    bucket: tokio::sync::Mutex<(f64, tokio::time::Instant)>,
}

impl RateLimit {
    fn new(qps: f64, burst: u32) -> Self {
        let burst = burst.max(1) as f64;
        RateLimit {
            qps,
            burst,
            bucket: tokio::sync::Mutex::new((burst, tokio::time::Instant::now())),
        }
    }

    async fn acquire(&self) {
        loop {
            let wait = {
                let mut bucket = self.bucket.lock().await;
                let now = tokio::time::Instant::now();
                let (tokens, last) = *bucket;
                let tokens =
                    (tokens + now.duration_since(last).as_secs_f64() * self.qps).min(self.burst);
                if tokens >= 1.0 {
                    *bucket = (tokens - 1.0, now);
                    return;
                }
                *bucket = (tokens, now);
                Duration::from_secs_f64((1.0 - tokens) / self.qps)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

async fn collect(body: Body, server: &str) -> Result<Bytes, ApiError> {
    body.collect().await.map(|c| c.to_bytes()).map_err(|e| {
        ApiError::Transport(Error::Unreachable {
            server: server.to_string(),
            message: format!("the connection broke while reading the answer ({e})"),
        })
    })
}

fn retry_after_seconds(response: &Response<Body>) -> Option<u64> {
    response
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Decode an error answer. The API server sends a `Status` object; anything
/// else (a proxy's HTML page) is summarised by its status line.
async fn read_failure(response: Response<Body>) -> Failure {
    #[derive(serde::Deserialize)]
    struct Status {
        #[serde(default)]
        message: String,
        #[serde(default)]
        reason: String,
    }
    let code = response.status().as_u16();
    let canonical = response
        .status()
        .canonical_reason()
        .unwrap_or("error")
        .to_string();
    // Error bodies are small; cap what we read from a misbehaving peer.
    let body = http_body_util::Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    match serde_json::from_slice::<Status>(&body) {
        Ok(status) if !status.message.is_empty() => Failure {
            code,
            reason: status.reason,
            message: status.message,
        },
        _ => {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            Failure {
                code,
                reason: canonical.clone(),
                message: if text.is_empty() || text.len() > 200 || text.starts_with('<') {
                    canonical
                } else {
                    text.to_string()
                },
            }
        }
    }
}

/// Turn a client error into the sentence a user needs: which TLS check failed,
/// or that the server cannot be reached.
pub fn classify_transport(server: &str, err: &kube::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut chain = Vec::new();
    while let Some(e) = source {
        if let Some(tls) = find_rustls_error(e) {
            return tls_error(server, tls);
        }
        chain.push(e.to_string());
        source = e.source();
    }
    chain.dedup();
    let message = chain
        .last()
        .cloned()
        .unwrap_or_else(|| "unknown error".to_string());
    if chain
        .iter()
        .any(|m| m.contains("certificate") || m.contains("TLS") || m.contains("tls"))
    {
        return Error::Tls {
            server: server.to_string(),
            detail: message,
        };
    }
    Error::Unreachable {
        server: server.to_string(),
        message,
    }
}

/// The rustls error behind `e`, looking inside nested `io::Error`s (whose
/// `source()` skips the error they wrap).
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let mut io = e.downcast_ref::<std::io::Error>();
    while let Some(inner) = io.and_then(|io| io.get_ref()) {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        io = inner.downcast_ref::<std::io::Error>();
    }
    None
}

fn tls_error(server: &str, err: &rustls::Error) -> Error {
    use rustls::CertificateError;
    let server = server.to_string();
    let detail = err.to_string();
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Error::TlsHostMismatch { server, detail }
            }
            CertificateError::UnknownIssuer
            | CertificateError::BadSignature
            | CertificateError::BadEncoding => Error::TlsUnknownCa { server, detail },
            _ => Error::Tls { server, detail },
        },
        _ => Error::Tls { server, detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::new(5);
        for attempt in 1..30 {
            let d = policy.backoff(attempt);
            assert!(d <= policy.max_delay, "{attempt}: {d:?}");
        }
        assert!(policy.backoff(1) >= Duration::from_millis(100));
        assert!(policy.backoff(1) <= Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn list_rate_allows_a_burst_then_qps() {
        let limit = RateLimit::new(10.0, 5);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            limit.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(1),
            "the burst is free"
        );
        for _ in 0..10 {
            limit.acquire().await;
        }
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(990) && waited <= Duration::from_millis(1100),
            "{waited:?}"
        );
    }

    #[test]
    fn retry_after_is_capped_with_jitter() {
        let policy = RetryPolicy::new(5);
        let d = policy.retry_after(3600);
        assert!(
            d >= policy.max_retry_after && d <= policy.max_retry_after + Duration::from_secs(1)
        );
    }
}

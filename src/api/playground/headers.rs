//! Security headers of every playground response. The page loads only its own files (no
//! inline script or style, no other origin), talks only to this server, cannot be framed and
//! sends no Referer (a share link carries the code in its fragment, which browsers never
//! send, but the page's own URL is nobody else's business either).

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;

/// The page's Content-Security-Policy. The editor lives in a shadow root, where CodeMirror
/// styles itself through constructed style sheets (`adoptedStyleSheets`) rather than
/// `<style>` elements, so no nonce or `'unsafe-inline'` is needed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The headers and their values.
pub const HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
];

/// Adds [`HEADERS`] to a playground response (a layer of the playground's routes only).
pub async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    // Error bodies are JSON from the API's error type; keep them from being sniffed too.
    headers
        .entry(header::CONTENT_TYPE)
        .or_insert(HeaderValue::from_static("application/octet-stream"));
    response
}

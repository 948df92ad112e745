//! From a service's [`Error`] to an HTTP answer: the status each [`Kind`] means, and the JSON
//! error body. Also the body extractors every handler uses, which turn a bad body into the same
//! JSON error.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sigil_primitives::{ErrorBody, ErrorFields};

use crate::error::{Error, Kind};

/// An error as clients see it: a status and `{"error": {code, message, logs}}`.
#[derive(Clone, Debug)]
pub struct ApiError {
    status: StatusCode,
    error: Error,
}

impl ApiError {
    /// 405, which only the router knows.
    pub(super) fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            error: Error::new(
                Kind::Invalid,
                "METHOD_NOT_ALLOWED",
                "wrong HTTP method for this endpoint",
            ),
        }
    }
}

/// The status a kind of failure answers with.
pub fn status(kind: Kind) -> StatusCode {
    match kind {
        Kind::Invalid => StatusCode::BAD_REQUEST,
        Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
        Kind::Forbidden => StatusCode::FORBIDDEN,
        Kind::NotFound => StatusCode::NOT_FOUND,
        Kind::Conflict => StatusCode::CONFLICT,
        Kind::TimedOut => StatusCode::REQUEST_TIMEOUT,
        Kind::Failed => StatusCode::UNPROCESSABLE_ENTITY,
        Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Kind::Upstream => StatusCode::BAD_GATEWAY,
        Kind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Kind::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self {
            status: status(error.kind()),
            error,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.error.retry_after();
        let (_, code, message, logs) = self.error.into_parts();
        let body = ErrorBody {
            error: ErrorFields { code, message, logs },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Turns a body extraction failure (too large, unreadable) into our JSON error.
pub fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        let status = e.status();
        let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
            Error::new(
                Kind::TooLarge,
                "BODY_TOO_LARGE",
                format!("request body too large: {}", e.body_text()),
            )
        } else {
            Error::new(Kind::Invalid, "BAD_BODY", e.body_text())
        };
        ApiError { status, error }
    })
}

/// A JSON body of type `T`; `BAD_JSON` if it is not JSON, `BAD_REQUEST` if it is not a `T`.
pub fn parse_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            "BAD_JSON"
        } else {
            "BAD_REQUEST"
        };
        Error::new(Kind::Invalid, code, format!("request body: {e}")).into()
    })
}

/// The body of a `POST` as a `T`.
pub fn json_body<T: for<'de> Deserialize<'de>>(raw: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    parse_json(&body(raw)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_answers_503_with_retry_after_and_a_full_store_507() {
        let busy = ApiError::from(Error::busy("all slots taken", 2)).into_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers().get(header::RETRY_AFTER).unwrap(), "2");
        let full = ApiError::from(Error::new(Kind::StorageFull, "ACTION_STORE_FULL", "full")).into_response();
        assert_eq!(full.status(), StatusCode::INSUFFICIENT_STORAGE);
        assert!(full.headers().get(header::RETRY_AFTER).is_none());
    }
}

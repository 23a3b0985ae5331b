//! `[metrics] require_header`: a header every request to the metrics listener (`/metrics`, the
//! dashboard API and page) must carry, off by default. Meant for Prometheus' scrape
//! `authorization` (`credentials_file`), which sends `Authorization: Bearer <file content>`: a
//! token file without a scheme is therefore also accepted as `Bearer <token>`, so Prometheus and
//! tokentray can read the same file. The value comes from a file or the keychain, as for
//! `serve --require-header`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::receiver::auth::{self, AuthError};
use crate::receiver::constant_time_eq;

/// The header to check and the values that pass.
#[derive(Clone)]
pub(crate) struct ScrapeAuth {
    name: String,
    accepted: Arc<Vec<String>>,
}

impl ScrapeAuth {
    /// Resolves `NAME=@file:PATH` / `NAME=@keychain`; `None` when unset.
    pub(crate) fn resolve(spec: Option<&str>) -> Result<Option<ScrapeAuth>, AuthError> {
        let Some(spec) = spec.filter(|s| !s.trim().is_empty()) else { return Ok(None) };
        let (name, value) = auth::resolve(spec)?;
        let mut accepted = vec![value.clone()];
        if !value.contains(' ') {
            accepted.push(format!("Bearer {value}"));
        }
        Ok(Some(ScrapeAuth { name: name.to_ascii_lowercase(), accepted: Arc::new(accepted) }))
    }

    fn admits(&self, got: Option<&[u8]>) -> Result<(), String> {
        let Some(got) = got else { return Err(format!("missing {} header", self.name)) };
        // Every accepted value is compared, without an early exit on the first match.
        let matched = self
            .accepted
            .iter()
            .fold(false, |ok, want| ok | constant_time_eq(got, want.as_bytes()));
        if matched {
            Ok(())
        } else {
            Err(format!("wrong {} header", self.name))
        }
    }
}

/// The middleware: 401 with the reason (never the secret) unless the header matches.
pub(crate) async fn require(
    State(auth): State<ScrapeAuth>,
    request: Request,
    next: Next,
) -> Response {
    match auth.admits(request.headers().get(&auth.name).map(|v| v.as_bytes())) {
        Ok(()) => next.run(request).await,
        Err(reason) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            format!("{reason}: this listener requires [metrics] require_header\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_token_file_is_also_a_bearer_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cr3t\n").expect("write");
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
        let auth = ScrapeAuth::resolve(Some(&format!("Authorization=@file:{}", file.display())))
            .expect("resolve")
            .expect("set");
        assert!(auth.admits(Some(b"Bearer s3cr3t")).is_ok());
        assert!(auth.admits(Some(b"s3cr3t")).is_ok());
        let wrong = auth.admits(Some(b"Bearer nope")).expect_err("wrong token");
        assert!(!wrong.contains("s3cr3t"), "{wrong}");
        assert!(auth.admits(None).is_err());
        assert!(ScrapeAuth::resolve(None).expect("unset").is_none());
    }
}

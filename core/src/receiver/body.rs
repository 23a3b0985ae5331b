//! Request bodies: content type, content encoding, and size limits that hold after
//! decompression too, so a small gzip bomb cannot inflate into gigabytes.

use std::io::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// From a `Content-Type` header; parameters such as `charset` are ignored.
    pub(crate) fn from_content_type(value: &str) -> Option<Encoding> {
        let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum BodyError {
    #[error("request body is larger than the limit of {limit} bytes{after}", after = if *.decompressed { " once decompressed" } else { "" })]
    TooLarge { limit: usize, decompressed: bool },
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
    #[error("unsupported Content-Encoding '{0}' (use gzip or none)")]
    UnsupportedEncoding(String),
}

/// Undoes `Content-Encoding`, reading at most `limit` bytes of output.
pub(crate) fn decode(
    content_encoding: Option<&str>,
    body: bytes_like::Bytes,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let encoding = content_encoding.map(|e| e.trim().to_ascii_lowercase()).unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => {
            if body.len() > limit {
                return Err(BodyError::TooLarge { limit, decompressed: false });
            }
            Ok(body.to_vec())
        }
        "gzip" | "x-gzip" => gunzip_limited(&body, limit),
        other => Err(BodyError::UnsupportedEncoding(other.to_string())),
    }
}

/// Gunzips at most `limit` bytes; one byte more means the body is too large.
pub(crate) fn gunzip_limited(compressed: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    let decoder = flate2::read::MultiGzDecoder::new(compressed);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::BadGzip(e.to_string()))?;
    if out.len() > limit {
        return Err(BodyError::TooLarge { limit, decompressed: true });
    }
    Ok(out)
}

/// Re-export so callers need not name the `bytes` crate.
pub(crate) mod bytes_like {
    pub(crate) use axum::body::Bytes;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).expect("compress");
        e.finish().expect("finish")
    }

    #[test]
    fn gzip_within_and_over_the_limit() {
        let body = gzip(&[7u8; 1000]);
        assert_eq!(gunzip_limited(&body, 1000).expect("fits").len(), 1000);
        assert_eq!(
            gunzip_limited(&body, 999),
            Err(BodyError::TooLarge { limit: 999, decompressed: true })
        );
        assert!(matches!(gunzip_limited(b"not gzip", 10), Err(BodyError::BadGzip(_))));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("Application/X-Protobuf"), Some(Encoding::Protobuf));
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }
}

//! gRPC: HTTP/2 whose requests carry `content-type: application/grpc*`. The HTTP/2 parser
//! ([`crate::http2`]) recognises it and names its operations `package.Service/Method`; this
//! module holds the status codes and the RPC conventions.

use crate::conventions::RPC;
use crate::{Protocol, ProtocolSpec, Side, Str};

pub const SPEC: ProtocolSpec = ProtocolSpec {
    protocol: Protocol::Grpc,
    name: "grpc",
    // never detected on its own: a connection is HTTP/2, some of its streams are gRPC
    detect: None,
    ports: &[],
    new_parser: None,
    conventions: RPC,
};

/// Status code names, by code (`grpc-status`).
const STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of a status code; None for codes the specification does not define.
pub fn status_name(code: u32) -> Option<&'static str> {
    STATUS_NAMES.get(code as usize).copied()
}

/// `error.type` of a failed call: the status name, `UNKNOWN` for an undefined code.
pub fn error_type(code: u32) -> &'static str {
    status_name(code).unwrap_or("UNKNOWN")
}

/// `rpc.response.status_code`: the status name, or the number itself for an undefined code
/// (so that no information is lost).
pub fn status_attribute(code: u32) -> Str {
    match status_name(code) {
        Some(name) => Str::Borrowed(name),
        None => Str::Owned(code.to_string()),
    }
}

/// Whether a status is an error for this side: every non-OK status for clients; for servers
/// only those that say the server failed (semantic conventions).
pub fn is_error(side: Side, code: u32) -> bool {
    match side {
        Side::Client => code != 0,
        // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
        Side::Server => matches!(code, 2 | 4 | 12 | 13 | 14 | 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_fallbacks() {
        assert_eq!(status_name(0), Some("OK"));
        assert_eq!(status_name(16), Some("UNAUTHENTICATED"));
        assert_eq!(status_name(17), None);
        assert_eq!(error_type(14), "UNAVAILABLE");
        assert_eq!(error_type(42), "UNKNOWN");
        assert_eq!(status_attribute(5), "NOT_FOUND");
        assert_eq!(status_attribute(42), "42");
        assert!(is_error(Side::Client, 5) && !is_error(Side::Server, 5));
        assert!(is_error(Side::Server, 13) && !is_error(Side::Client, 0));
    }
}

//! `http.route` for a path that no configured pattern matches: segments that look like
//! identifiers become `*`, so that metrics stay low-cardinality without configuration.

use std::borrow::Cow;

/// Whether a path segment looks like an identifier rather than a word.
fn looks_like_id(seg: &str) -> bool {
    if seg.bytes().any(|c| c.is_ascii_digit()) || seg.len() > 32 {
        return true;
    }
    // random-looking: several upper/lower case switches (base64, tokens) or a long run of
    // consonants that words rarely have
    let mut switches = 0;
    let mut prev_upper: Option<bool> = None;
    let mut consonants = 0;
    let mut max_consonants = 0;
    for c in seg.chars() {
        if c.is_ascii_alphabetic() {
            let up = c.is_ascii_uppercase();
            if prev_upper.is_some_and(|p| p != up) {
                switches += 1;
            }
            prev_upper = Some(up);
            if "aeiouyAEIOUY".contains(c) {
                consonants = 0;
            } else {
                consonants += 1;
                max_consonants = max_consonants.max(consonants);
            }
        } else {
            consonants = 0;
            if !matches!(c, '-' | '_' | '.' | '~') {
                return true;
            }
        }
    }
    switches >= 3 || max_consonants >= 6
}

/// `/users/123/orders/9f8e7a` → `/users/*/orders/*`; the path itself (no allocation) when no
/// segment looks like an id.
pub fn heuristic(path: &str) -> Cow<'_, str> {
    if !path.is_empty()
        && !path
            .split('/')
            .any(|seg| !seg.is_empty() && looks_like_id(seg))
    {
        return Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if !seg.is_empty() && looks_like_id(seg) {
            out.push('*');
        } else {
            out.push_str(seg);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heuristic_routes() {
        assert_eq!(heuristic("/users/123/orders/9f8e7a"), "/users/*/orders/*");
        assert_eq!(heuristic("/api/hello.world"), "/api/hello.world");
        assert_eq!(heuristic("/"), "/");
        assert_eq!(heuristic(""), "/");
        assert_eq!(heuristic("/t/aZkQpWmX"), "/t/*");
        assert_eq!(heuristic("/t/xkcdqzrt"), "/t/*");
        assert_eq!(heuristic("/search/strengths"), "/search/strengths");
        assert_eq!(
            heuristic("/u/550e8400-e29b-41d4-a716-446655440000/"),
            "/u/*/"
        );
    }
}

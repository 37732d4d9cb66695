//! `http.route`: configured patterns first, then the `unmatched` policy, with a per-service
//! bound on distinct routes so that a scanner cannot blow up metric cardinality.

use std::borrow::Cow;

use serde::Deserialize;
use tapline_core::data::Str;

use crate::lru::{fast_map, FastMap};
use tapline_protocols::route::heuristic;

/// The route given to every further new route of a service once it has `max_routes`.
pub const OVERFLOW_ROUTE: &str = "/**";
/// The route of every unmatched request under `unmatched: wildcard`.
pub const WILDCARD_ROUTE: &str = "/**";

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// Segments with digits or random-looking text become `*`.
    #[default]
    Heuristic,
    /// The path as is (query dropped); still bounded by `max_routes`.
    Path,
    /// Every unmatched request gets `/**`.
    Wildcard,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Literal(Box<str>),
    /// `{name}`, `:name` or `*`: exactly one segment.
    Param,
    /// `**` as the last segment: anything, including nothing.
    Rest,
}

/// A compiled route pattern (`/users/{id}`, `/users/:id/orders/*`, `/static/**`).
#[derive(Clone, Debug)]
pub struct Pattern {
    text: Str,
    segs: Vec<Seg>,
}

impl Pattern {
    pub fn parse(p: &str) -> Result<Pattern, String> {
        if !p.starts_with('/') {
            return Err(format!("route pattern {p:?} must start with `/`"));
        }
        let parts: Vec<&str> = p[1..].split('/').collect();
        let mut segs = Vec::with_capacity(parts.len());
        for (i, s) in parts.iter().enumerate() {
            let seg = if *s == "**" {
                if i + 1 != parts.len() {
                    return Err(format!(
                        "route pattern {p:?}: `**` must be the last segment"
                    ));
                }
                Seg::Rest
            } else if *s == "*"
                || (s.starts_with('{') && s.ends_with('}') && s.len() > 2)
                || (s.starts_with(':') && s.len() > 1)
            {
                Seg::Param
            } else if s.contains(['{', '}']) {
                return Err(format!(
                    "route pattern {p:?}: segment {s:?} mixes text and a `{{param}}`; a parameter must be a whole segment"
                ));
            } else {
                Seg::Literal((*s).into())
            };
            segs.push(seg);
        }
        Ok(Pattern {
            text: Str::from(p.to_string()),
            segs,
        })
    }

    pub fn matches(&self, path: &str) -> bool {
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
        for seg in &self.segs {
            match seg {
                Seg::Rest => return true,
                Seg::Param => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                Seg::Literal(l) => match parts.next() {
                    Some(p) if p == &**l => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

#[derive(Clone, Debug, Default)]
pub struct RoutesConfig {
    pub patterns: Vec<Pattern>,
    pub ignored: Vec<Pattern>,
    pub unmatched: Unmatched,
    pub max_routes: usize,
}

/// The routes of one service: interned so that repeated routes cost no allocation.
#[derive(Debug, Default)]
struct ServiceRoutes {
    seen: FastMap<Box<str>, Str>,
}

/// Maps request paths to routes, per service.
#[derive(Debug)]
pub struct Router {
    cfg: RoutesConfig,
    services: FastMap<Str, ServiceRoutes>,
}

impl Router {
    pub fn new(cfg: RoutesConfig) -> Self {
        Router {
            cfg,
            services: fast_map(0),
        }
    }

    /// Whether requests to `path` are not reported at all.
    pub fn is_ignored(&self, path: &str) -> bool {
        self.cfg.ignored.iter().any(|p| p.matches(path))
    }

    /// The route of `path` (no query) for `service`.
    pub fn route(&mut self, service: &Str, path: &str) -> Str {
        if let Some(p) = self.cfg.patterns.iter().find(|p| p.matches(path)) {
            return p.text.clone();
        }
        let routes = match self.services.get_mut(service.as_str()) {
            Some(r) => r,
            None => self.services.entry(service.clone()).or_default(),
        };
        let candidate: Cow<'_, str> = match self.cfg.unmatched {
            Unmatched::Wildcard => return Str::from_static(WILDCARD_ROUTE),
            Unmatched::Path => path.into(),
            Unmatched::Heuristic => heuristic(path),
        };
        if let Some(r) = routes.seen.get(&*candidate) {
            return r.clone();
        }
        if routes.seen.len() >= self.cfg.max_routes {
            return Str::from_static(OVERFLOW_ROUTE);
        }
        let s = Str::from(candidate.to_string());
        routes.seen.insert(candidate.into_owned().into(), s.clone());
        s
    }

    /// Forgets a service's routes (its last process exited).
    pub fn forget_service(&mut self, service: &str) {
        self.services.remove(service);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(patterns: &[&str], unmatched: Unmatched, max: usize) -> Router {
        Router::new(RoutesConfig {
            patterns: patterns
                .iter()
                .map(|p| Pattern::parse(p).unwrap())
                .collect(),
            ignored: vec![Pattern::parse("/health").unwrap()],
            unmatched,
            max_routes: max,
        })
    }

    #[test]
    fn patterns_first() {
        let mut r = router(
            &["/users/{id}", "/a/:x/b", "/static/**"],
            Unmatched::Heuristic,
            10,
        );
        let svc = Str::from("svc");
        assert_eq!(r.route(&svc, "/users/42"), "/users/{id}");
        assert_eq!(r.route(&svc, "/users/42/x"), "/users/*/x");
        assert_eq!(r.route(&svc, "/a/q/b"), "/a/:x/b");
        assert_eq!(r.route(&svc, "/static/css/x.css"), "/static/**");
        assert_eq!(r.route(&svc, "/static"), "/static/**");
        assert!(r.is_ignored("/health") && !r.is_ignored("/health/x"));
        assert!(Pattern::parse("users").is_err());
        assert!(Pattern::parse("/a/**/b").is_err());
        assert!(Pattern::parse("/a/x{id}").is_err());
    }

    #[test]
    fn bounded_per_service() {
        let mut r = router(&[], Unmatched::Path, 3);
        let a = Str::from("a");
        let b = Str::from("b");
        for i in 0..3 {
            assert_eq!(r.route(&a, &format!("/p{i}")), format!("/p{i}").as_str());
        }
        assert_eq!(r.route(&a, "/p3"), OVERFLOW_ROUTE);
        assert_eq!(r.route(&a, "/p1"), "/p1");
        assert_eq!(r.route(&b, "/p3"), "/p3");
        let mut w = router(&[], Unmatched::Wildcard, 3);
        assert_eq!(w.route(&a, "/x/1"), WILDCARD_ROUTE);
    }
}

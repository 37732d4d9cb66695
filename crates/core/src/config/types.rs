//! Value types that components share in their configs, each validated while it is parsed so a
//! bad value is reported at its own config path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// A size in bytes, written as `4096`, `64KiB`, `1MiB`, `10MB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("invalid size {s:?}: expected a number with an optional unit like 64KiB")
        })?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            u => {
                return Err(format!(
                    "invalid size {s:?}: unknown unit {u:?} (use B, KB, KiB, MB, MiB, GB, GiB)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("invalid size {s:?}: too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

/// A glob pattern (`http_*`, `/usr/bin/*`), compiled when the config is read.
#[derive(Clone, Debug)]
pub struct Glob {
    pub pattern: String,
    matcher: globset::GlobMatcher,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("invalid glob {pattern:?}: {}", e.kind()))?;
        Ok(Glob {
            pattern: pattern.to_string(),
            matcher: glob.compile_matcher(),
        })
    }
    pub fn is_match(&self, s: &str) -> bool {
        self.matcher.is_match(s)
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Glob::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A name matcher: an exact name, or a regular expression written between slashes (`/^veth/`).
#[derive(Clone, Debug)]
pub enum NamePattern {
    Exact(String),
    Regex(regex::Regex),
}

impl NamePattern {
    pub fn is_match(&self, s: &str) -> bool {
        match self {
            NamePattern::Exact(e) => e == s,
            NamePattern::Regex(r) => r.is_match(s),
        }
    }
}

impl FromStr for NamePattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            Some(re) if s.len() >= 2 => regex::Regex::new(re)
                .map(NamePattern::Regex)
                .map_err(|e| format!("invalid regular expression {s:?}: {e}")),
            _ => Ok(NamePattern::Exact(s.to_string())),
        }
    }
}

impl<'de> Deserialize<'de> for NamePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Durations are written as humantime strings: `5s`, `250ms`, `1m 30s`.
pub mod duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?}: {e} (write e.g. 5s, 250ms, 1m)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("64KiB".parse::<ByteSize>().unwrap().0, 65536);
        assert_eq!("10MB".parse::<ByteSize>().unwrap().0, 10_000_000);
        assert_eq!("4096".parse::<ByteSize>().unwrap().0, 4096);
        assert!("4 parsecs"
            .parse::<ByteSize>()
            .unwrap_err()
            .contains("unknown unit"));
        assert!("KiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn patterns() {
        let p: NamePattern = "/^veth/".parse().unwrap();
        assert!(p.is_match("veth0") && !p.is_match("eth0"));
        let e: NamePattern = "eth0".parse().unwrap();
        assert!(e.is_match("eth0") && !e.is_match("eth01"));
        assert!("/[/".parse::<NamePattern>().is_err());
        assert!(Glob::new("http_*")
            .unwrap()
            .is_match("http_server_duration"));
        assert!(Glob::new("a[").is_err());
    }
}

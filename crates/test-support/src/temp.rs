//! Temporary directories, removed when the returned guard drops (also when the test fails).

pub use tempfile::{NamedTempFile, TempDir};

/// A fresh directory named after `tag`, readable by every user: peers that drop privileges
/// (nginx workers, postgres, dnsmasq) must be able to reach the files a test puts there.
pub fn tempdir(tag: &str) -> TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(&format!("tapline-{tag}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("creating a temporary directory for {tag}: {e}"));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("opening {} to every user: {e}", dir.path().display()));
    dir
}

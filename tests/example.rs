//! The embedding example builds and runs: its own `team` processor tags every data point.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use tapline_test_support::{eventually, tempdir, ChildGuard};

fn example_bin() -> PathBuf {
    // target/<profile>/deps/example-<hash> → target/<profile>/examples/custom_processor
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("custom_processor");
    assert!(
        bin.exists(),
        "{} not built (cargo test builds examples)",
        bin.display()
    );
    bin
}

#[test]
fn custom_processor_example_tags_every_point() {
    let yaml = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/custom_processor.yaml"
    );
    let out = Command::new(example_bin())
        .arg("components")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.lines().any(|l| l.starts_with("processor")
            && l.contains("team")
            && l.contains("metrics,traces")),
        "{listing}"
    );
    let out = Command::new(example_bin())
        .args([
            "validate",
            "--config",
            yaml,
            "--set",
            "processors.team.team=",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("processors.team"));

    let dir = tempdir("example");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut example = ChildGuard::spawn(
        "custom_processor",
        Command::new(example_bin())
            .args(["run", "--config", yaml])
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap()),
    );
    let stdout = || std::fs::read_to_string(&out_path).unwrap_or_default();
    eventually(
        "the two batches to be printed",
        Duration::from_secs(20),
        || stdout().lines().filter(|l| l.starts_with("    {")).count() >= 6,
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(example.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    let status = eventually("the example to exit", Duration::from_secs(20), || {
        example.exited()
    });
    assert!(start.elapsed() < Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));
    let stdout = stdout();
    let points: Vec<&str> = stdout.lines().filter(|l| l.starts_with("    {")).collect();
    assert_eq!(points.len(), 6, "2 batches of 3 points:\n{stdout}");
    assert!(
        points.iter().all(|l| l.contains("team=payments")),
        "{stdout}"
    );
}

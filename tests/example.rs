//! The embedding example builds and runs: its own `team` processor tags every data point.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

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

    let child = Command::new(example_bin())
        .args(["run", "--config", yaml])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    std::thread::sleep(Duration::from_millis(1200));
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let start = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(15));
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let points: Vec<&str> = stdout.lines().filter(|l| l.starts_with("    {")).collect();
    assert_eq!(points.len(), 6, "2 batches of 3 points:\n{stdout}");
    assert!(
        points.iter().all(|l| l.contains("team=payments")),
        "{stdout}"
    );
}

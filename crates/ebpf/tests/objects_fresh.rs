//! The committed objects must be built from the committed C sources: `objects/SOURCES.sha256`
//! must equal the hash of src/bpf/*.{c,h} (sources-hash.sh), and, when clang is installed, a
//! rebuild into a temporary directory must give byte-identical objects.
use std::{path::Path, process::Command};

const FIX: &str = "run `crates/ebpf/build-objects.sh` and commit crates/ebpf/objects/";

#[test]
fn sources_hash_matches_committed_objects() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(dir.join("sources-hash.sh"))
        .output()
        .expect("running sources-hash.sh");
    assert!(
        out.status.success(),
        "sources-hash.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = String::from_utf8(out.stdout).unwrap();
    let committed = std::fs::read_to_string(dir.join("objects/SOURCES.sha256"))
        .unwrap_or_else(|e| panic!("objects/SOURCES.sha256: {e}; {FIX}"));
    assert_eq!(
        now.trim(),
        committed.trim(),
        "the eBPF C sources changed since the objects were built: {FIX}"
    );
}

#[test]
fn rebuilt_objects_are_byte_identical() {
    let have_clang = Command::new("clang").arg("--version").output().is_ok()
        && Command::new("llvm-strip").arg("--version").output().is_ok();
    if !have_clang {
        eprintln!("clang/llvm-strip not installed: rebuild comparison not done (the hash test still runs)");
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = std::env::temp_dir().join(format!("tapline-objects-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let st = Command::new("bash")
        .arg(dir.join("build-objects.sh"))
        .env("TAPLINE_OBJ_OUT", &tmp)
        .status()
        .unwrap();
    assert!(st.success(), "build-objects.sh failed");
    let mut compared = 0;
    for e in std::fs::read_dir(&tmp).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_owned();
        let committed = std::fs::read(dir.join("objects").join(&name))
            .unwrap_or_else(|e| panic!("objects/{name:?}: {e}; {FIX}"));
        assert!(
            std::fs::read(&p).unwrap() == committed,
            "objects/{name:?} differs from a fresh build of its source: {FIX}"
        );
        compared += 1;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(compared > 0);
}

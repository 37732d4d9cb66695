//! The Rust mirrors in src/flows/abi.rs must match the C structs of src/bpf/flows.h: this
//! compiles a tiny C program printing sizeof/offsetof of every field and compares. Needs a C compiler
//! (`cc`, `clang` or `gcc`); fails loudly without one (CI installs clang).
use std::{mem::offset_of, path::Path, process::Command};

use tapline_ebpf::flows::{FlowEvent, FlowKey, FlowSlot, FlowStats};

fn c_layout(fields: &[(&str, &str)]) -> Vec<u64> {
    let dir = std::env::temp_dir().join(format!("tapline-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hdr = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bpf");
    let mut src = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/types.h>\n#include \"flows.h\"\nint main(void) {\n",
    );
    for (ty, field) in fields {
        if field.is_empty() {
            src += &format!("printf(\"%zu\\n\", sizeof(struct {ty}));\n");
        } else {
            src += &format!("printf(\"%zu\\n\", offsetof(struct {ty}, {field}));\n");
        }
    }
    src += "return 0; }\n";
    let c = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&c, src).unwrap();
    let compiler = ["cc", "clang", "gcc"]
        .into_iter()
        .find(|cc| Command::new(cc).arg("--version").output().is_ok())
        .expect("no C compiler (cc/clang/gcc) to check the C layout: install clang");
    let st = Command::new(compiler)
        .arg("-I")
        .arg(&hdr)
        .arg(&c)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(st.success(), "compiling the layout probe failed");
    let out = Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn flow_structs_match_the_c_header() {
    let k = "tapline_flow_key";
    let s = "tapline_flow_stats";
    let e = "tapline_flow_event";
    let c = "tapline_flow_slot";
    let fields = [
        (k, ""),
        (k, "src_addr"),
        (k, "dst_addr"),
        (k, "src_port"),
        (k, "dst_port"),
        (k, "protocol"),
        (k, "family"),
        (k, "direction"),
        (k, "_pad"),
        (k, "ifindex"),
        (s, ""),
        (s, "bytes"),
        (s, "packets"),
        (s, "first_ns"),
        (s, "last_ns"),
        (s, "tcp_flags"),
        (s, "_pad"),
        (e, ""),
        (e, "key"),
        (e, "_pad"),
        (e, "stats"),
        (c, ""),
        (c, "key"),
        (c, "epoch"),
        (c, "stats"),
    ];
    let rust = [
        size_of::<FlowKey>(),
        offset_of!(FlowKey, src_addr),
        offset_of!(FlowKey, dst_addr),
        offset_of!(FlowKey, src_port),
        offset_of!(FlowKey, dst_port),
        offset_of!(FlowKey, protocol),
        offset_of!(FlowKey, family),
        offset_of!(FlowKey, direction),
        offset_of!(FlowKey, _pad),
        offset_of!(FlowKey, ifindex),
        size_of::<FlowStats>(),
        offset_of!(FlowStats, bytes),
        offset_of!(FlowStats, packets),
        offset_of!(FlowStats, first_ns),
        offset_of!(FlowStats, last_ns),
        offset_of!(FlowStats, tcp_flags),
        offset_of!(FlowStats, _pad),
        size_of::<FlowEvent>(),
        offset_of!(FlowEvent, key),
        offset_of!(FlowEvent, _pad),
        offset_of!(FlowEvent, stats),
        size_of::<FlowSlot>(),
        offset_of!(FlowSlot, key),
        offset_of!(FlowSlot, epoch),
        offset_of!(FlowSlot, stats),
    ];
    let from_c = c_layout(&fields);
    for (i, (ty, f)) in fields.iter().enumerate() {
        assert_eq!(
            rust[i] as u64,
            from_c[i],
            "struct {ty} {}",
            if f.is_empty() { "size" } else { f }
        );
    }
    // No implicit padding in the hash key (padding bytes would make equal keys hash apart).
    assert_eq!(size_of::<FlowKey>(), 16 + 16 + 2 + 2 + 4 + 4);
    // The kernel reads the key as 8-byte words (the last one half used) and each per-CPU copy
    // of a slot is 8-byte aligned.
    assert_eq!(offset_of!(FlowSlot, epoch), 44);
    assert_eq!(size_of::<FlowSlot>() % 8, 0);
}

//! The `#[repr(C)]` mirrors in `tapline_ebpf::app::raw` match the C side: struct layouts from
//! the BTF of the committed `objects/app.o` (via `bpftool`), constants from `src/bpf/app.h`.

use std::collections::HashMap;
use std::process::Command;

use tapline_ebpf::app::raw;

struct BtfType {
    kind: String,
    size: Option<usize>,
    type_id: Option<u32>,
    nr_elems: Option<usize>,
    /// (name, type id, bit offset)
    members: Vec<(String, u32, usize)>,
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Parses `bpftool btf dump file <obj> format raw`.
fn btf_types(obj: &str) -> (HashMap<u32, BtfType>, HashMap<String, u32>) {
    let out = Command::new("bpftool")
        .args(["btf", "dump", "file", obj, "format", "raw"])
        .output()
        .expect("bpftool is needed for the layout test (apt-get install bpftool)");
    assert!(out.status.success(), "bpftool failed on {obj}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut types = HashMap::new();
    let mut structs = HashMap::new();
    let mut current: Option<u32> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('[') {
            let (id, rest) = rest.split_once("] ").unwrap();
            let id: u32 = id.parse().unwrap();
            let mut words = rest.split_whitespace();
            let kind = words.next().unwrap().to_string();
            let name = rest.split('\'').nth(1).unwrap_or("").to_string();
            if kind == "STRUCT" {
                structs.insert(name.clone(), id);
            }
            types.insert(
                id,
                BtfType {
                    size: field(rest, "size").and_then(|s| s.parse().ok()),
                    type_id: field(rest, "type_id").and_then(|s| s.parse().ok()),
                    nr_elems: field(rest, "nr_elems").and_then(|s| s.parse().ok()),
                    kind,
                    members: Vec::new(),
                },
            );
            current = Some(id);
        } else if let (Some(id), Some(member)) = (current, line.strip_prefix('\t')) {
            let name = member.split('\'').nth(1).unwrap_or("").to_string();
            // struct/union members only (enum values and func params have no bits_offset)
            let (Some(tid), Some(bits)) = (field(member, "type_id"), field(member, "bits_offset"))
            else {
                continue;
            };
            let (tid, bits) = (tid.parse().unwrap(), bits.parse().unwrap());
            types.get_mut(&id).unwrap().members.push((name, tid, bits));
        }
    }
    (types, structs)
}

fn size_of(types: &HashMap<u32, BtfType>, id: u32) -> usize {
    let t = &types[&id];
    match t.kind.as_str() {
        "TYPEDEF" | "CONST" | "VOLATILE" => size_of(types, t.type_id.unwrap()),
        "ARRAY" => t.nr_elems.unwrap() * size_of(types, t.type_id.unwrap()),
        "PTR" => 8,
        _ => t.size.unwrap(),
    }
}

fn c_layout(name: &str) -> (usize, Vec<(String, usize, usize)>) {
    let obj = concat!(env!("CARGO_MANIFEST_DIR"), "/objects/app.o");
    let (types, structs) = btf_types(obj);
    let id = *structs
        .get(name)
        .unwrap_or_else(|| panic!("struct {name} not in the BTF of {obj}"));
    let t = &types[&id];
    let fields = t
        .members
        .iter()
        .map(|(n, tid, bits)| {
            assert_eq!(bits % 8, 0, "bitfield {n}");
            (n.clone(), bits / 8, size_of(&types, *tid))
        })
        .collect();
    (t.size.unwrap(), fields)
}

fn rust_layout(fields: Vec<(&str, usize, usize)>) -> Vec<(String, usize, usize)> {
    fields
        .into_iter()
        .map(|(n, o, s)| (n.to_string(), o, s))
        .collect()
}

#[test]
fn app_event_matches_btf() {
    let (size, fields) = c_layout("app_event");
    assert_eq!(size, std::mem::size_of::<raw::RawAppEvent>());
    assert_eq!(size, raw::RAW_APP_EVENT_SIZE);
    assert_eq!(fields, rust_layout(raw::app_event_fields()));
}

#[test]
fn app_http_matches_btf() {
    let (size, fields) = c_layout("app_http");
    assert_eq!(size, raw::RAW_HTTP_SIZE);
    assert_eq!(fields, rust_layout(raw::app_http_fields()));
    // a pair record is the event header, then struct app_http
    let (record, members) = c_layout("app_http_record");
    assert_eq!(record, raw::RAW_APP_EVENT_SIZE + raw::RAW_HTTP_SIZE);
    assert_eq!(
        members
            .iter()
            .map(|(n, o, _)| (n.as_str(), *o))
            .collect::<Vec<_>>(),
        [("ev", 0), ("http", raw::RAW_APP_EVENT_SIZE)]
    );
}

#[test]
fn app_config_matches_btf() {
    let (size, fields) = c_layout("app_config");
    assert_eq!(size, std::mem::size_of::<raw::RawAppConfig>());
    assert_eq!(fields, rust_layout(raw::app_config_fields()));
}

#[test]
fn constants_match_header() {
    let header = include_str!("../src/bpf/app.h");
    let mut defined = HashMap::new();
    for line in header.lines() {
        let mut w = line.split_whitespace();
        if w.next() != Some("#define") {
            continue;
        }
        let (Some(name), Some(value)) = (w.next(), w.next()) else {
            continue; // include guard
        };
        defined.insert(name.to_string(), value.parse::<i64>().unwrap());
    }
    let rust: HashMap<String, i64> = raw::constants()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    assert_eq!(
        defined, rust,
        "app.h #defines vs tapline_ebpf::app::raw constants"
    );
}

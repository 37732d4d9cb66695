//! docs/configuration.md documents every field of every component's config: the fields are
//! discovered from the real typed config structs (which reject unknown fields and name the
//! ones they expect), so a field added without documentation fails this test.
//!
//! `TAPLINE_PRINT_CONFIG_FIELDS=1 cargo test --test config_reference -- --nocapture` prints
//! the discovered tree.

use serde_json::{json, Value};
use tapline::core::config::ComponentConfig;
use tapline::core::ComponentKind;

const PROBE: &str = "__tapline_probe__";

/// The fields serde expects at `path` inside a component's config, if it is a struct there.
fn expected_fields(
    kind: ComponentKind,
    type_name: &str,
    path: &[String],
    as_list: bool,
) -> Option<Vec<String>> {
    let mut value = json!({ PROBE: 1 });
    for (i, seg) in path.iter().enumerate().rev() {
        value = if as_list && i == path.len() - 1 {
            json!({ seg: [value] })
        } else {
            json!({ seg: value })
        };
    }
    let registry = tapline::builtin_registry();
    let err = registry
        .check_config(kind, type_name, &ComponentConfig::new("c", value))
        .err()?;
    let d = err
        .items
        .iter()
        .find(|d| d.message.contains(&format!("unknown field `{PROBE}`")))?;
    let msg = &d.message;
    if msg.contains("there are no fields") {
        return Some(Vec::new());
    }
    let list = msg.split("expected ").nth(1)?;
    Some(
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

fn discover(kind: ComponentKind, type_name: &str, path: Vec<String>, out: &mut Vec<String>) {
    if path.len() > 3 {
        return;
    }
    let Some(fields) = expected_fields(kind, type_name, &path, false).or_else(|| {
        (!path.is_empty())
            .then(|| expected_fields(kind, type_name, &path, true))
            .flatten()
    }) else {
        return;
    };
    for f in fields {
        let mut p = path.clone();
        p.push(f);
        out.push(p.join("."));
        discover(kind, type_name, p, out);
    }
}

/// The text of the `### <kind> \`type\`` section.
fn section<'a>(doc: &'a str, kind: ComponentKind, type_name: &str) -> Option<&'a str> {
    let heading = format!("### {} `{type_name}`", kind.as_str());
    let start = doc.find(&heading)? + heading.len();
    let end = doc[start..]
        .find("\n### ")
        .map(|e| start + e)
        .unwrap_or(doc.len());
    Some(&doc[start..end])
}

#[test]
fn every_config_field_is_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let registry = tapline::builtin_registry();
    let print = std::env::var_os("TAPLINE_PRINT_CONFIG_FIELDS").is_some();
    let mut missing = Vec::new();
    let mut total = 0;
    for l in registry.listings() {
        let mut fields = Vec::new();
        discover(l.kind, l.type_name, Vec::new(), &mut fields);
        if l.kind == ComponentKind::Exporter {
            // The exporter helper's blocks, taken before the exporter parses its config.
            fields.extend(
                [
                    "queue",
                    "queue.size",
                    "queue.when_full",
                    "queue.concurrency",
                    "retry",
                    "retry.enabled",
                    "retry.initial_interval",
                    "retry.max_interval",
                    "retry.max_elapsed_time",
                ]
                .map(String::from),
            );
        }
        if print {
            println!("{} {}: {}", l.kind.as_str(), l.type_name, fields.join(", "));
        }
        if l.hidden {
            continue;
        }
        let Some(text) = section(&doc, l.kind, l.type_name) else {
            missing.push(format!(
                "no section `### {} `{}``",
                l.kind.as_str(),
                l.type_name
            ));
            continue;
        };
        for f in fields {
            total += 1;
            if !text.contains(&format!("`{f}`")) {
                missing.push(format!("{} {}: field `{f}`", l.kind.as_str(), l.type_name));
            }
        }
    }
    assert!(
        total > 20,
        "discovery found only {total} fields: the probe is broken"
    );
    assert!(
        missing.is_empty(),
        "undocumented in docs/configuration.md:\n{}",
        missing.join("\n")
    );
}

#[test]
fn probe_discovers_nested_fields() {
    // The debug exporter has exactly one field; attributes has a list of structs.
    assert_eq!(
        expected_fields(ComponentKind::Exporter, "debug", &[], false),
        Some(vec!["verbosity".to_string()])
    );
    let mut fields = Vec::new();
    discover(
        ComponentKind::Processor,
        "attributes",
        Vec::new(),
        &mut fields,
    );
    assert_eq!(
        fields,
        ["actions", "actions.key", "actions.value", "actions.action"]
    );
    let _ = Value::Null;
}

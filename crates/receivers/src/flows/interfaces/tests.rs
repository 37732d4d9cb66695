use std::collections::BTreeSet;

use tapline_core::config::ComponentConfig;
use tapline_core::data::{Attributes, Resource, Str};

use super::*;
use crate::flows::convert::ConverterOptions;

/// A host whose links and attach outcomes the test sets; records what was attached.
#[derive(Default)]
struct FakeHost {
    links: Vec<(u32, String)>,
    /// Names whose attach is refused for lack of privileges.
    denied: BTreeSet<String>,
    /// Names whose attach fails for another reason.
    failing: BTreeSet<String>,
    attached: BTreeSet<String>,
    /// Names whose programs someone else detached (until attached again).
    detached_by_others: BTreeSet<String>,
    /// Attach calls made, in order.
    attach_calls: Vec<String>,
}

impl Host for FakeHost {
    fn links(&self) -> io::Result<Vec<(u32, String)>> {
        Ok(self.links.clone())
    }
    fn attach(&mut self, name: &str, _dir: AttachDirection) -> Result<(), EbpfError> {
        let refused = |hint| EbpfError::Attach {
            program: "tapline_tc_in".into(),
            target: format!("interface {name} (ingress)"),
            cause: "refused".into(),
            hint,
        };
        if self.denied.contains(name) {
            return Err(refused(Some("permission denied")));
        }
        if self.failing.contains(name) {
            return Err(refused(None));
        }
        self.attach_calls.push(name.to_owned());
        self.attached.insert(name.to_owned());
        self.detached_by_others.remove(name);
        Ok(())
    }
    fn detach(&mut self, name: &str) {
        self.attached.remove(name);
    }
    fn exists(&self, name: &str) -> bool {
        self.links.iter().any(|(_, n)| n == name)
    }
    fn detached_directions(&self, name: &str) -> Result<Vec<&'static str>, EbpfError> {
        Ok(if self.detached_by_others.contains(name) {
            vec!["ingress", "egress"]
        } else {
            Vec::new()
        })
    }
}

fn links(list: &[(u32, &str)]) -> Vec<(u32, String)> {
    list.iter().map(|(i, n)| (*i, n.to_string())).collect()
}

fn interfaces(host: FakeHost, config: serde_json::Value) -> Interfaces<FakeHost> {
    let cfg: FlowsConfig = ComponentConfig::new("receivers.flows", config)
        .parse()
        .unwrap();
    Interfaces::new(host, "receivers.flows", &cfg)
}

fn converter() -> Converter {
    Converter::new(ConverterOptions {
        attributes: Default::default(),
        deduplicate: true,
        agent_ip: Str::from_static("192.0.2.1"),
        memory: 16,
        resource: Resource::new(Attributes::new()),
    })
}

fn attached(i: &Interfaces<FakeHost>) -> Vec<&str> {
    i.capture.attached.iter().map(String::as_str).collect()
}

#[test]
fn reconcile_attaches_to_the_wanted_links_only() {
    let host = FakeHost {
        links: links(&[(1, "lo"), (2, "eth0"), (3, "veth1"), (4, "docker0")]),
        ..Default::default()
    };
    let mut i = interfaces(
        host,
        serde_json::json!({"exclude_interfaces": ["lo", "/^docker/"]}),
    );
    i.reconcile(&mut converter()).unwrap();
    assert_eq!(attached(&i), ["eth0", "veth1"]);
    assert_eq!(i.attached(), 2);
}

#[test]
fn link_events_attach_detach_and_follow_renames() {
    let mut i = interfaces(FakeHost::default(), serde_json::json!({}));
    let mut conv = converter();
    let present = |index, name: &str| LinkEvent::Present {
        index,
        name: name.into(),
    };
    i.apply(&mut conv, present(5, "veth5")).unwrap();
    i.apply(&mut conv, present(6, "veth6")).unwrap();
    // A repeated event (up/down) changes nothing.
    i.apply(&mut conv, present(5, "veth5")).unwrap();
    assert_eq!(attached(&i), ["veth5", "veth6"]);
    // Renamed: attached under the new name only.
    i.apply(&mut conv, present(5, "uplink")).unwrap();
    assert_eq!(attached(&i), ["uplink", "veth6"]);
    i.apply(
        &mut conv,
        LinkEvent::Removed {
            index: 6,
            name: "veth6".into(),
        },
    )
    .unwrap();
    assert_eq!(attached(&i), ["uplink"]);
    assert_eq!(i.removed, [6], "kept until the next eviction");
    i.forget_removed(&mut conv);
    assert!(i.removed.is_empty());
}

#[test]
fn resync_detaches_links_that_went_away_unseen() {
    let host = FakeHost {
        links: links(&[(2, "eth0"), (3, "veth1")]),
        ..Default::default()
    };
    let mut i = interfaces(host, serde_json::json!({}));
    let mut conv = converter();
    i.reconcile(&mut conv).unwrap();
    i.capture.links = links(&[(2, "eth0"), (4, "veth2")]);
    i.apply(&mut conv, LinkEvent::Resync).unwrap();
    assert_eq!(attached(&i), ["eth0", "veth2"]);
    assert_eq!(i.removed, [3]);
}

#[test]
fn only_a_permission_error_stops_the_receiver() {
    let host = FakeHost {
        links: links(&[(2, "eth0"), (3, "flaky0")]),
        failing: ["flaky0", "gone0"].into_iter().map(String::from).collect(),
        denied: ["eth1"].into_iter().map(String::from).collect(),
        ..Default::default()
    };
    let mut i = interfaces(host, serde_json::json!({}));
    let mut conv = converter();
    // A failing interface (present or vanished) is skipped, not fatal.
    i.reconcile(&mut conv).unwrap();
    i.attach(&mut conv, 9, "gone0").unwrap();
    assert_eq!(attached(&i), ["eth0"]);
    let err = i.attach(&mut conv, 4, "eth1").unwrap_err().to_string();
    assert!(
        err.starts_with("receivers.flows: cannot attach to interface eth1:"),
        "{err}"
    );
    assert!(err.contains("permission denied"), "{err}");
    assert_eq!(i.attached(), 1);
}

#[test]
fn readiness_waits_for_interfaces_that_refuse_the_attach_until_they_go() {
    let host = FakeHost {
        links: links(&[(2, "eth0"), (3, "eth1")]),
        failing: ["eth1".to_owned()].into(),
        ..Default::default()
    };
    let mut i = interfaces(host, serde_json::json!({}));
    let mut conv = converter();
    assert_eq!(i.readiness(), Ok("no interface matches yet".to_owned()));
    i.reconcile(&mut conv).unwrap();
    let why = i.readiness().unwrap_err();
    assert!(why.starts_with("cannot attach to eth1: "), "{why}");
    // eth1 goes away: nothing wanted is left unattached.
    i.capture.links.retain(|(_, n)| n != "eth1");
    i.apply(
        &mut conv,
        LinkEvent::Removed {
            index: 3,
            name: "eth1".into(),
        },
    )
    .unwrap();
    assert_eq!(i.readiness(), Ok("attached to eth0".to_owned()));
}

#[test]
fn programs_detached_by_someone_else_are_attached_again() {
    let host = FakeHost {
        links: links(&[(2, "eth0"), (3, "eth1")]),
        ..Default::default()
    };
    let mut i = interfaces(host, serde_json::json!({}));
    let mut conv = converter();
    i.reconcile(&mut conv).unwrap();
    assert_eq!(i.restore_detached(&mut conv).unwrap(), 0);
    i.capture.detached_by_others.insert("eth1".into());
    assert_eq!(i.restore_detached(&mut conv).unwrap(), 1);
    assert_eq!(i.capture.attach_calls, ["eth0", "eth1", "eth1"]);
    assert_eq!(attached(&i), ["eth0", "eth1"]);
    assert_eq!(i.readiness(), Ok("attached to eth0, eth1".to_owned()));
    assert_eq!(
        i.restore_detached(&mut conv).unwrap(),
        0,
        "once back, left alone"
    );
}

//! A DNS message parser for answers seen on the wire: what `rdns` learns names from without
//! asking anyone. It reads the header, the question, and the answer section; A and AAAA
//! records become address → name, with CNAME chains followed back to the name that was asked
//! for (a client that asked for `www.example` and got `www.example CNAME edge.cdn`,
//! `edge.cdn A 192.0.2.7` talks to 192.0.2.7 as `www.example`).
//!
//! Input is whatever a socket filter passed, so it is untrusted: every read is bounds-checked,
//! name compression pointers are followed a bounded number of times and only backwards, and
//! nothing panics or allocates beyond the message's own size.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Labels plus pointers followed while reading one name.
const MAX_NAME_STEPS: usize = 128;
/// A name's presentation form is at most 253 characters.
const MAX_NAME_LEN: usize = 253;
/// CNAME links followed from an answer back to the question.
const MAX_CNAME_HOPS: usize = 16;
/// Answers read from one message.
const MAX_ANSWERS: usize = 64;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

/// What one response teaches: each answered address with the name the client asked for, and
/// the record's TTL in seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learnt {
    pub address: IpAddr,
    pub name: String,
    pub ttl: u32,
}

fn u16_at(m: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*m.get(at)?, *m.get(at + 1)?]))
}

fn u32_at(m: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(m.get(at..at + 4)?.try_into().ok()?))
}

/// Reads the name at `at`; returns it (lowercase, no trailing dot) and the offset just after
/// it in the record (after the first pointer, when there is one).
fn read_name(m: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    // Pointers must go strictly backwards: with the step bound, no loop survives.
    let mut limit = at;
    for _ in 0..MAX_NAME_STEPS {
        let len = *m.get(at)? as usize;
        match len & 0xC0 {
            0x00 if len == 0 => {
                return Some((name, end.unwrap_or(at + 1)));
            }
            0x00 => {
                let label = m.get(at + 1..at + 1 + len)?;
                if !name.is_empty() {
                    name.push('.');
                }
                for &c in label {
                    // Printable ASCII as is; anything else escaped as the presentation format does.
                    if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                        name.push(c.to_ascii_lowercase() as char);
                    } else {
                        name.push_str(&format!("\\{c:03}"));
                    }
                }
                if name.len() > MAX_NAME_LEN {
                    return None;
                }
                at += 1 + len;
            }
            0xC0 => {
                let target = (u16_at(m, at)? & 0x3FFF) as usize;
                if target >= limit {
                    return None;
                }
                end.get_or_insert(at + 2);
                limit = target;
                at = target;
            }
            _ => return None, // 0x40 and 0x80: extended label types, not in use
        }
    }
    None
}

/// Parses a DNS response; `None` when it is not a well-formed answer to one question.
/// Records of other types (and of other classes) are skipped.
pub fn parse_response(m: &[u8]) -> Option<Vec<Learnt>> {
    let flags = u16_at(m, 2)?;
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xF;
    let rcode = flags & 0xF;
    if !is_response || opcode != 0 || rcode != 0 {
        return None;
    }
    let qdcount = u16_at(m, 4)?;
    let ancount = u16_at(m, 6)? as usize;
    if qdcount != 1 {
        return None;
    }
    let (question, mut at) = read_name(m, 12)?;
    at += 4; // QTYPE, QCLASS
    if at > m.len() {
        return None;
    }
    // (owner, canonical target) of CNAMEs, and the address records, in answer order.
    let mut cnames: Vec<(String, String)> = Vec::new();
    let mut addresses: Vec<(String, IpAddr, u32)> = Vec::new();
    for _ in 0..ancount.min(MAX_ANSWERS) {
        let (owner, after) = read_name(m, at)?;
        let rtype = u16_at(m, after)?;
        let class = u16_at(m, after + 2)?;
        let ttl = u32_at(m, after + 4)?;
        let rdlen = u16_at(m, after + 8)? as usize;
        let rdata_at = after + 10;
        let rdata = m.get(rdata_at..rdata_at + rdlen)?;
        at = rdata_at + rdlen;
        if class != CLASS_IN {
            continue;
        }
        match (rtype, rdlen) {
            (TYPE_A, 4) => {
                let b: [u8; 4] = rdata.try_into().ok()?;
                addresses.push((owner, IpAddr::V4(Ipv4Addr::from(b)), ttl));
            }
            (TYPE_AAAA, 16) => {
                let b: [u8; 16] = rdata.try_into().ok()?;
                addresses.push((owner, IpAddr::V6(Ipv6Addr::from(b)), ttl));
            }
            (TYPE_CNAME, _) => {
                let (target, _) = read_name(m, rdata_at)?;
                cnames.push((owner, target));
            }
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(addresses.len());
    for (owner, address, ttl) in addresses {
        // Walk from the record's owner back through the CNAMEs that point at it.
        let mut name = owner;
        for _ in 0..MAX_CNAME_HOPS {
            if name == question {
                break;
            }
            match cnames.iter().find(|(_, target)| *target == name) {
                Some((from, _)) => name = from.clone(),
                None => break,
            }
        }
        // Only answers to the question are believed (not unrelated additional data).
        if name == question && !name.is_empty() {
            out.push(Learnt { address, name, ttl });
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in n.split('.') {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    fn header(ancount: u16) -> Vec<u8> {
        let mut m = vec![0xab, 0xcd, 0x81, 0x80, 0, 1];
        m.extend_from_slice(&ancount.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0]);
        m
    }

    fn record(m: &mut Vec<u8>, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) {
        m.extend_from_slice(owner);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }

    #[test]
    fn a_and_aaaa_with_compression() {
        let mut m = header(2);
        m.extend(name("Web.Example"));
        m.extend_from_slice(&[0, 1, 0, 1]);
        record(&mut m, &[0xC0, 12], TYPE_A, 60, &[192, 0, 2, 7]);
        let mut v6 = [0u8; 16];
        v6[0] = 0xfd;
        v6[15] = 1;
        record(&mut m, &[0xC0, 12], TYPE_AAAA, 30, &v6);
        let got = parse_response(&m).unwrap();
        assert_eq!(
            got,
            vec![
                Learnt {
                    address: "192.0.2.7".parse().unwrap(),
                    name: "web.example".into(),
                    ttl: 60
                },
                Learnt {
                    address: "fd00::1".parse().unwrap(),
                    name: "web.example".into(),
                    ttl: 30
                },
            ]
        );
    }

    #[test]
    fn cname_chain_names_the_question() {
        let mut m = header(3);
        m.extend(name("www.example"));
        m.extend_from_slice(&[0, 1, 0, 1]);
        let edge_at = m.len() + 2 + 10; // where the first CNAME's rdata starts
        record(&mut m, &[0xC0, 12], TYPE_CNAME, 300, &name("edge.cdn"));
        let lb_at = m.len() + 2 + 10;
        record(
            &mut m,
            &[0xC0, edge_at as u8],
            TYPE_CNAME,
            300,
            &name("lb.cdn"),
        );
        record(&mut m, &[0xC0, lb_at as u8], TYPE_A, 20, &[198, 51, 100, 9]);
        let got = parse_response(&m).unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].name, "www.example");
        assert_eq!(got[0].address, "198.51.100.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn unrelated_records_queries_and_errors_teach_nothing() {
        let mut m = header(1);
        m.extend(name("a.example"));
        m.extend_from_slice(&[0, 1, 0, 1]);
        record(&mut m, &name("other.example"), TYPE_A, 60, &[10, 0, 0, 1]);
        assert_eq!(parse_response(&m).unwrap(), vec![]);
        let mut q = m.clone();
        q[2] = 0x01; // a query, not a response
        assert_eq!(parse_response(&q), None);
        let mut nx = m.clone();
        nx[3] = 0x83; // NXDOMAIN
        assert_eq!(parse_response(&nx), None);
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_rejected() {
        let mut m = header(1);
        m.extend_from_slice(&[0xC0, 12]); // the question points at itself
        m.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(parse_response(&m), None);
        let mut m = header(0);
        m.extend_from_slice(&[0xC0, 40]); // forward
        m.extend_from_slice(&[0, 1, 0, 1]);
        assert_eq!(parse_response(&m), None);
    }

    #[test]
    fn truncated_messages_never_panic() {
        let mut m = header(1);
        m.extend(name("web.example"));
        m.extend_from_slice(&[0, 1, 0, 1]);
        record(&mut m, &[0xC0, 12], TYPE_A, 60, &[192, 0, 2, 7]);
        for n in 0..m.len() {
            let _ = parse_response(&m[..n]);
        }
        assert_eq!(parse_response(&m).unwrap().len(), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = parse_response(&bytes);
        }
        #[test]
        fn mutated_answers_never_panic(flips in proptest::collection::vec((0usize..64, proptest::prelude::any::<u8>()), 1..8)) {
            let mut m = header(2);
            m.extend(name("www.example"));
            m.extend_from_slice(&[0, 1, 0, 1]);
            record(&mut m, &[0xC0, 12], TYPE_CNAME, 300, &name("edge.cdn"));
            record(&mut m, &[0xC0, 41], TYPE_A, 20, &[198, 51, 100, 9]);
            for (at, b) in flips {
                let i = at % m.len();
                m[i] = b;
            }
            if let Some(learnt) = parse_response(&m) {
                for l in learnt {
                    proptest::prop_assert!(l.name.len() <= MAX_NAME_LEN);
                }
            }
        }
    }
}

//! Which protocol a connection speaks, from its first bytes and the server's port.

use crate::{Protocol, PROTOCOLS};

/// Candidate protocols of a connection, most likely first, from the first bytes the client
/// sent (empty when none seen yet), the first bytes the server sent (MySQL servers speak
/// first), and the server's port (only a tie-breaker). Empty when nothing fits.
pub fn detect(first_client: &[u8], first_server: Option<&[u8]>, server_port: u16) -> Vec<Protocol> {
    let server = first_server.unwrap_or(&[]);
    let client = first_client;
    // (score, protocol): 3 = a signature only this protocol has, 2 = well-formed, 1 = plausible
    let mut scored: Vec<(u8, Protocol)> = PROTOCOLS
        .iter()
        .filter_map(|spec| {
            let score = (spec.detect?)(client, server);
            (score > 0).then_some((score, spec.protocol))
        })
        .collect();

    let hinted = port_hint(server_port);
    for (score, p) in scored.iter_mut() {
        if Some(*p) == hinted {
            // the port breaks ties, never overrides a signature
            *score = score.saturating_mul(2).saturating_add(1);
        } else {
            *score = score.saturating_mul(2);
        }
    }
    if let Some(p) = hinted {
        if !scored.iter().any(|(_, q)| *q == p) && client.is_empty() && server.is_empty() {
            scored.push((1, p));
        }
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, p)| p).collect()
}

/// The protocol whose well-known server ports include `port`.
fn port_hint(port: u16) -> Option<Protocol> {
    PROTOCOLS
        .iter()
        .find(|spec| spec.ports.contains(&port))
        .map(|spec| spec.protocol)
}

//! `mode: sniff`: the background task that learns names from DNS answers seen on the wire.
//!
//! It opens a [`DnsSniffer`] (an `AF_PACKET` socket per interface, or one for all, whose eBPF
//! filter passes only UDP from port 53), decodes each frame down to the DNS message and feeds
//! every answered address into the shared [`NameCache`]. It sends nothing. One task runs per
//! `rdns` component, however many pipelines list it; cancelling it closes the sockets, which
//! detaches the filter.

use std::sync::Arc;
use std::time::Duration;

use tapline_core::telemetry::{Counter, Telemetry};
use tapline_ebpf::dns::{udp_datagram, DnsSniffer, DNS_PORT, MAX_FRAME};
use tapline_ebpf::load::EbpfError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::NameCache;

/// How often the kernel's count of answers dropped on a full socket queue is read.
const DROPS_EVERY: Duration = Duration::from_secs(5);

/// What the sniffer counts, as self-telemetry labelled with the processor id.
#[derive(Clone)]
pub struct SniffCounters {
    /// DNS answers read off the wire (UDP datagrams from port 53).
    pub answers: Counter,
    /// Addresses named from them.
    pub names: Counter,
    /// Answers the kernel dropped because the socket queue was full.
    pub dropped: Counter,
}

impl SniffCounters {
    pub fn new(telemetry: &Telemetry, processor: &str) -> Self {
        let labels = [("processor", processor)];
        SniffCounters {
            answers: telemetry.counter(
                "tapline_rdns_sniffed_answers_total",
                "DNS answers (UDP from port 53) the rdns sniffer read off the wire.",
                &labels,
            ),
            names: telemetry.counter(
                "tapline_rdns_sniffed_names_total",
                "Addresses the rdns sniffer named from DNS answers.",
                &labels,
            ),
            dropped: telemetry.counter(
                "tapline_rdns_sniff_dropped_total",
                "DNS answers the kernel dropped because the rdns sniffer's socket queue was full.",
                &labels,
            ),
        }
    }
}

/// Everything the task needs besides the cache.
#[derive(Clone)]
pub struct SniffSettings {
    /// Processor id, for logs.
    pub id: String,
    /// Interfaces to watch; `None`: every interface of the agent's network namespace.
    pub interfaces: Option<Vec<String>>,
    /// The configured `ttl`: no learnt name is trusted longer.
    pub max_ttl: Duration,
    pub counters: SniffCounters,
}

/// Learns from one frame as the sniffer delivered it (`protocol`: its EtherType). Returns how
/// many addresses were named; `None` when the frame is not UDP from port 53. Never panics:
/// whatever fails to parse teaches nothing.
pub fn learn_from_frame(
    cache: &NameCache,
    frame: &[u8],
    protocol: u16,
    max_ttl: Duration,
) -> Option<usize> {
    let d = udp_datagram(frame, protocol)?;
    if d.src.port() != DNS_PORT {
        return None;
    }
    Some(cache.learn_from_response(d.payload, max_ttl))
}

/// Opens the sniffer in the calling thread's network namespace (inside a Tokio runtime).
pub fn open(settings: &SniffSettings) -> Result<DnsSniffer, EbpfError> {
    DnsSniffer::open(settings.interfaces.as_deref())
}

/// Opens the sniffer and serves it until `cancel`. A sniffer that cannot open (missing
/// capabilities, unknown interface) is one error in the log: the pipeline still runs, and
/// addresses pass named by themselves.
pub async fn run(cache: Arc<NameCache>, settings: SniffSettings, cancel: CancellationToken) {
    match open(&settings) {
        Ok(sniffer) => serve(sniffer, cache, settings, cancel).await,
        Err(e) => error!(
            processor = %settings.id,
            "rdns mode sniff cannot watch DNS answers, so no address gets a name: {e}"
        ),
    }
}

enum Event {
    Stop,
    CheckDrops,
    Frame(std::io::Result<tapline_ebpf::dns::Frame>),
}

/// Reads answers from `sniffer` into `cache` until `cancel`; the sniffer (its sockets) is
/// dropped on return.
pub async fn serve(
    mut sniffer: DnsSniffer,
    cache: Arc<NameCache>,
    settings: SniffSettings,
    cancel: CancellationToken,
) {
    debug!(
        processor = %settings.id,
        program_id = ?sniffer.program_id(),
        interfaces = ?settings.interfaces,
        "rdns: sniffing DNS answers"
    );
    let c = &settings.counters;
    let mut buf = vec![0u8; MAX_FRAME];
    let mut drops = tokio::time::interval(DROPS_EVERY);
    loop {
        let event = tokio::select! {
            biased;
            _ = cancel.cancelled() => Event::Stop,
            _ = drops.tick() => Event::CheckDrops,
            r = sniffer.recv(&mut buf) => Event::Frame(r),
        };
        match event {
            Event::Stop => break,
            Event::CheckDrops => {
                let n = sniffer.take_drops();
                if n > 0 {
                    c.dropped.add(n);
                    warn!(processor = %settings.id, dropped = n, "rdns: DNS answers dropped on a full socket queue");
                }
            }
            Event::Frame(Ok(frame)) => {
                let bytes = buf.get(..frame.len).unwrap_or(&buf);
                c.answers.add(1);
                if let Some(n) = learn_from_frame(&cache, bytes, frame.protocol, settings.max_ttl) {
                    c.names.add(n as u64);
                }
            }
            Event::Frame(Err(e)) => {
                // e.g. ENETDOWN once when a watched interface goes down; back off a little
                // so a persistent error cannot spin.
                warn!(processor = %settings.id, error = %e, "rdns: reading DNS answers");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
    debug!(processor = %settings.id, "rdns: sniffer closed");
}

//! `rdns`: names flow ends by DNS, in one of two modes.
//!
//! ```yaml
//! processors:
//!   rdns:
//!     mode: resolve           # or sniff
//!     nameservers: ["10.0.0.2", "127.0.0.1:5353"]   # resolve only; default: /etc/resolv.conf
//!     cache_size: 100000      # addresses remembered
//!     ttl: 5m                 # how long a name is trusted
//!     negative_ttl: 1m        # how long "no name" (NXDOMAIN, refused, timeout) is trusted
//!     max_in_flight: 256      # lookups running at once
//!     timeout: 2s             # per lookup
//!     interfaces: [eth0]      # sniff only; default: every interface
//!     extension: dns_names    # optional: the names cache (and sniffer) of a `dns_names` extension
//! ```
//!
//! `mode: resolve` (the default) asks a DNS server for PTR records.
//! Sets `src.name` / `dst.name` where an earlier processor (k8s) left them unset. A batch never
//! waits for DNS: an address not in the cache passes named by itself (`10.1.2.3`) while a
//! lookup starts in the background, and the points after the answer get the name. Lookups
//! beyond `max_in_flight` are not started (the address is tried again by a later batch), so a
//! dead server costs at most `max_in_flight` pending lookups and never slows the pipeline.
//!
//! `mode: sniff` asks nobody: a background task ([`sniff`]) reads the DNS answers that clients
//! on this host already receive (an eBPF socket filter passes only UDP from port 53 to it) and
//! names each answered A/AAAA address as the name the client asked for, following CNAMEs
//! ([`wire`]), trusted for the record's TTL capped at `ttl` (at least [`MIN_LEARNT_TTL`]).
//! No resolver is built and no lookup ever starts; an address no answer mentioned passes
//! named by itself. The task runs once per component, from start to shutdown, which closes
//! its sockets.
//!
//! The cache and the sniffer are what several components may share: the `dns_names`
//! extension ([`DnsNamesExtension`]) holds both, and `rdns` processors naming it with
//! `extension:` read (and, resolving, fill) its cache. Without `extension`, each `rdns`
//! processor keeps its own cache (and, sniffing, its own sniffer), sized by its own
//! `cache_size` and `interfaces`.
//!
//! This is a [`BatchFn`], not a hand-written async service, precisely because no batch waits:
//! the asynchronous part is the lookup tasks (or the sniffer task) beside it.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use serde::Deserialize;
use tapline_core::config::types::duration;
use tapline_core::data::{Attributes, Signal, SignalKind, Str};
use tapline_core::pipeline::{BatchFn, BatchLayer, ProcessorLayer};
use tapline_core::{BuildContext, Component, ConfigErrors, ExtensionComponent, ProcessorComponent};

pub mod sniff;
pub mod wire;

use crate::net::{self, fast_map, End, EndSlots, FastMap, Layouts};

pub const SIGNALS: &[SignalKind] = &[SignalKind::Metrics, SignalKind::Traces];

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Ask a DNS server for PTR records.
    #[default]
    Resolve,
    /// Learn names from the DNS answers seen on the wire; ask nothing.
    Sniff,
}

/// The shortest time a sniffed name is trusted (a TTL of 0 would otherwise name nothing), unless
/// the configured `ttl` is shorter.
pub const MIN_LEARNT_TTL: Duration = Duration::from_secs(5);

fn default_cache_size() -> usize {
    100_000
}
fn default_ttl() -> Duration {
    Duration::from_secs(300)
}
fn default_negative_ttl() -> Duration {
    Duration::from_secs(60)
}
fn default_in_flight() -> usize {
    256
}
fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RdnsConfig {
    #[serde(default)]
    pub mode: Mode,
    /// `ip` or `ip:port`; empty means the system's resolv.conf.
    #[serde(default)]
    pub nameservers: Vec<String>,
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    #[serde(default = "default_ttl", with = "duration")]
    pub ttl: Duration,
    #[serde(default = "default_negative_ttl", with = "duration")]
    pub negative_ttl: Duration,
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// `mode: sniff` only: interfaces to read answers on; unset means every interface.
    #[serde(default)]
    pub interfaces: Option<Vec<String>>,
    /// A `dns_names` extension whose cache (and sniffer) to use instead of its own.
    #[serde(default)]
    pub extension: Option<String>,
}

impl Default for RdnsConfig {
    fn default() -> Self {
        tapline_core::config::all_defaults()
    }
}

#[derive(Clone, Debug)]
enum Entry {
    /// A lookup is running.
    Pending,
    Named(Str, Instant),
    /// No name (NXDOMAIN, no PTR, refused, timed out) until the instant.
    Unnamed(Instant),
}

/// The names learnt so far, shared by every pipeline that lists the same `rdns` processor.
pub struct NameCache {
    entries: Mutex<FastMap<IpAddr, Entry>>,
    capacity: usize,
}

impl NameCache {
    pub fn new(capacity: usize) -> Self {
        NameCache {
            entries: Mutex::new(fast_map()),
            capacity: capacity.max(1),
        }
    }

    /// Records an answer.
    pub fn insert(&self, ip: IpAddr, name: Option<Str>, valid_for: Duration) {
        let until = Instant::now() + valid_for;
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        Self::make_room(&mut map, self.capacity);
        map.insert(
            ip,
            match name {
                Some(n) => Entry::Named(n, until),
                None => Entry::Unnamed(until),
            },
        );
    }

    fn make_room(map: &mut FastMap<IpAddr, Entry>, capacity: usize) {
        if map.len() < capacity {
            return;
        }
        let now = Instant::now();
        map.retain(|_, e| match e {
            Entry::Pending => true,
            Entry::Named(_, t) | Entry::Unnamed(t) => *t > now,
        });
        // Still full of live entries: drop an arbitrary tenth rather than grow.
        if map.len() >= capacity {
            let drop_n = (capacity / 10).max(1);
            let victims: Vec<IpAddr> = map
                .iter()
                .filter(|(_, e)| !matches!(e, Entry::Pending))
                .map(|(ip, _)| *ip)
                .take(drop_n)
                .collect();
            for ip in victims {
                map.remove(&ip);
            }
        }
    }

    /// The name of `ip`, if known and fresh.
    pub fn get(&self, ip: &IpAddr) -> Option<Str> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(ip) {
            Some(Entry::Named(n, t)) if *t > Instant::now() => Some(n.clone()),
            _ => None,
        }
    }

    /// Learns the names in one DNS response seen on the wire (see [`wire::parse_response`]):
    /// each answered address is named as the question, trusted for the record's TTL capped
    /// at `max_ttl` and raised to [`MIN_LEARNT_TTL`] (or `max_ttl` if shorter). Returns how many
    /// addresses were learnt; malformed input teaches nothing.
    pub fn learn_from_response(&self, message: &[u8], max_ttl: Duration) -> usize {
        let Some(learnt) = wire::parse_response(message) else {
            return 0;
        };
        let floor = MIN_LEARNT_TTL.min(max_ttl);
        for l in &learnt {
            let ttl = Duration::from_secs(l.ttl.into()).min(max_ttl).max(floor);
            self.insert(
                net::canonical(l.address),
                Some(Str::from(l.name.clone())),
                ttl,
            );
        }
        learnt.len()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parses `ip` or `ip:port` (IPv6 with a port as `[::1]:53`).
pub fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!("{s:?} is not an address (write 10.0.0.2, 10.0.0.2:5353 or [fd00::2]:53)")
        })
}

pub struct RdnsProcessor {
    cfg: RdnsConfig,
    nameservers: Vec<SocketAddr>,
    cache: Arc<NameCache>,
    in_flight: Arc<AtomicUsize>,
    /// Built on first use, inside the runtime: `validate` never creates sockets.
    resolver: OnceLock<Result<Arc<TokioResolver>, String>>,
}

impl RdnsProcessor {
    pub fn new(cfg: RdnsConfig, cache: Arc<NameCache>) -> Result<Self, (String, String)> {
        let nameservers = cfg
            .nameservers
            .iter()
            .enumerate()
            .map(|(i, s)| parse_nameserver(s).map_err(|e| (format!("nameservers[{i}]"), e)))
            .collect::<Result<Vec<_>, _>>()?;
        if cfg.max_in_flight == 0 {
            return Err(("max_in_flight".into(), "must be at least 1".into()));
        }
        match (&cfg.mode, &cfg.interfaces) {
            (Mode::Resolve, Some(_)) => {
                return Err((
                    "interfaces".into(),
                    "only `mode: sniff` reads interfaces; remove it or set `mode: sniff`".into(),
                ))
            }
            (Mode::Sniff, Some(list)) if list.is_empty() => {
                return Err((
                    "interfaces".into(),
                    "an empty list sniffs nothing; leave it out to sniff every interface".into(),
                ))
            }
            (Mode::Sniff, Some(list)) => {
                if let Some(i) = list.iter().position(|n| n.is_empty() || n.len() > 15) {
                    return Err((
                        format!("interfaces[{i}]"),
                        format!(
                            "{:?} is not an interface name (1 to 15 characters)",
                            list[i]
                        ),
                    ));
                }
            }
            _ => {}
        }
        if cfg.mode == Mode::Sniff && !cfg.nameservers.is_empty() {
            return Err((
                "nameservers".into(),
                "`mode: sniff` asks no server; remove `nameservers` or use `mode: resolve`".into(),
            ));
        }
        Ok(RdnsProcessor {
            cfg,
            nameservers,
            cache,
            in_flight: Arc::new(AtomicUsize::new(0)),
            resolver: OnceLock::new(),
        })
    }

    pub fn cache(&self) -> &Arc<NameCache> {
        &self.cache
    }

    /// Lookups currently running.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn resolver(&self) -> Option<Arc<TokioResolver>> {
        let r = self.resolver.get_or_init(|| {
            let mut builder = if self.nameservers.is_empty() {
                TokioResolver::builder_tokio().map_err(|e| {
                    format!("rdns: cannot read the system resolver configuration: {e}")
                })?
            } else {
                let servers = self
                    .nameservers
                    .iter()
                    .map(|sa| {
                        let mut udp = ConnectionConfig::udp();
                        udp.port = sa.port();
                        let mut tcp = ConnectionConfig::tcp();
                        tcp.port = sa.port();
                        NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
                    })
                    .collect();
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], servers),
                    TokioRuntimeProvider::default(),
                )
            };
            let opts = builder.options_mut();
            opts.timeout = self.cfg.timeout;
            opts.attempts = 1;
            // This processor caches answers itself, with its own bounds.
            opts.cache_size = 0;
            builder
                .build()
                .map(Arc::new)
                .map_err(|e| format!("rdns: cannot build the resolver: {e}"))
        });
        match r {
            Ok(r) => Some(r.clone()),
            Err(e) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| tracing::error!("{e}; addresses stay unnamed"));
                None
            }
        }
    }

    pub fn mode(&self) -> Mode {
        self.cfg.mode
    }

    /// Names what the cache knows; returns the addresses that need a lookup (none when
    /// sniffing: nothing is looked up, so nothing is marked pending either).
    fn name_points(&self, batch: &mut Signal) -> Vec<IpAddr> {
        let lookups = self.cfg.mode == Mode::Resolve;
        let now = Instant::now();
        let mut map = self.cache.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut misses = Vec::new();
        let mut layouts: Layouts<EndSlots> = Layouts::default();
        let mut name_end = |attrs: &mut Attributes| {
            let slots = *layouts.get(attrs, |a| EndSlots::find(a, End::name_key));
            let mut found: [Option<(&'static str, Str)>; 2] = [None, None];
            for (i, end) in End::BOTH.into_iter().enumerate() {
                if slots.named[i] {
                    continue;
                }
                let Some(addr) = slots.address(attrs, i) else {
                    continue;
                };
                let Some(ip) = net::parsed(addr) else {
                    continue;
                };
                let name = match map.get(&ip) {
                    Some(Entry::Named(n, t)) if *t > now => n.clone(),
                    Some(Entry::Unnamed(t)) if *t > now => addr.clone(),
                    Some(Entry::Pending) => addr.clone(),
                    _ if !lookups => addr.clone(),
                    _ => {
                        map.insert(ip, Entry::Pending);
                        misses.push(ip);
                        addr.clone()
                    }
                };
                found[i] = Some((end.name_key(), name));
            }
            let what = net::push_ends(attrs, found);
            if what != 0 {
                layouts.appended(attrs, what);
            }
        };
        net::for_each_point_attributes(batch, &mut name_end);
        misses
    }

    fn start_lookups(&self, misses: Vec<IpAddr>) {
        if misses.is_empty() {
            return;
        }
        let runtime = tokio::runtime::Handle::try_current().ok();
        let resolver = runtime.as_ref().and_then(|_| self.resolver());
        let mut not_started = Vec::new();
        for ip in misses {
            let (Some(rt), Some(resolver)) = (&runtime, &resolver) else {
                not_started.push(ip);
                continue;
            };
            if self.in_flight.fetch_add(1, Ordering::SeqCst) >= self.cfg.max_in_flight {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                not_started.push(ip);
                continue;
            }
            let resolver = resolver.clone();
            let cache = self.cache.clone();
            let in_flight = self.in_flight.clone();
            let (ttl, negative_ttl, timeout) =
                (self.cfg.ttl, self.cfg.negative_ttl, self.cfg.timeout);
            rt.spawn(async move {
                let answer = tokio::time::timeout(timeout, resolver.reverse_lookup(ip)).await;
                let name = match &answer {
                    Ok(Ok(lookup)) => lookup.answers().iter().find_map(|r| match &r.data {
                        RData::PTR(ptr) => {
                            let n = ptr.0.to_utf8();
                            Some(Str::from(n.trim_end_matches('.').to_string()))
                        }
                        _ => None,
                    }),
                    _ => None,
                };
                match name {
                    Some(n) => cache.insert(ip, Some(n), ttl),
                    None => cache.insert(ip, None, negative_ttl),
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
            });
        }
        // Not started: forget the Pending mark so a later batch tries again.
        if !not_started.is_empty() {
            let mut map = self.cache.entries.lock().unwrap_or_else(|e| e.into_inner());
            for ip in not_started {
                if matches!(map.get(&ip), Some(Entry::Pending)) {
                    map.remove(&ip);
                }
            }
        }
    }
}

impl BatchFn for RdnsProcessor {
    fn apply(&self, batch: &mut Signal) {
        let misses = self.name_points(batch);
        if self.cfg.mode == Mode::Resolve {
            self.start_lookups(misses);
        }
    }
}

pub struct RdnsFactory;

impl Component for RdnsFactory {
    type Config = RdnsConfig;
    const TYPE_NAME: &'static str = "rdns";
    const DESCRIPTION: &'static str = "Names flow ends (src.name/dst.name) by reverse DNS or from DNS answers seen on the wire, from a bounded cache; never delays a batch";
    const SIGNALS: &'static [SignalKind] = SIGNALS;
}

impl ProcessorComponent for RdnsFactory {
    fn build(&self, cfg: RdnsConfig, ctx: &BuildContext) -> Result<ProcessorLayer, ConfigErrors> {
        let cache = match &cfg.extension {
            Some(name) => shared_cache(&cfg, name, ctx)?,
            None => {
                let cache = Arc::new(NameCache::new(cfg.cache_size));
                if cfg.mode == Mode::Sniff {
                    start_sniffer(ctx, cache.clone(), cfg.interfaces.clone(), cfg.ttl);
                }
                cache
            }
        };
        let p = RdnsProcessor::new(cfg, cache)?;
        Ok(BatchLayer::boxed(p, &ctx.id, &ctx.telemetry))
    }
}

/// The cache of the `dns_names` extension `name`, checked to suit `cfg`.
fn shared_cache(
    cfg: &RdnsConfig,
    name: &str,
    ctx: &BuildContext,
) -> Result<Arc<NameCache>, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    if cfg.cache_size != default_cache_size() {
        errors.push(
            "cache_size",
            format!("the cache belongs to the extension {name:?}: set cache_size there"),
        );
    }
    if cfg.interfaces.is_some() {
        errors.push(
            "interfaces",
            format!("the sniffer belongs to the extension {name:?}: set interfaces there"),
        );
    }
    let names = ctx.extension::<DnsNamesExtension>("extension", name)?;
    if cfg.mode == Mode::Sniff && !names.sniffing {
        errors.push(
            "mode",
            format!("mode: sniff reads the names the extension {name:?} sniffs: set `sniff: true` on it"),
        );
    }
    errors.or_ok(names.cache.clone())
}

/// Runs a sniffer filling `cache` while the graph runs.
fn start_sniffer(
    ctx: &BuildContext,
    cache: Arc<NameCache>,
    interfaces: Option<Vec<String>>,
    max_ttl: Duration,
) {
    let id = ctx.id.to_string();
    let settings = sniff::SniffSettings {
        counters: sniff::SniffCounters::new(&ctx.telemetry, &id),
        id,
        interfaces,
        max_ttl,
    };
    ctx.spawn_on_start(Box::new(move |cancel| {
        Box::pin(sniff::run(cache, settings, cancel))
    }));
}

/// `extensions.dns_names`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsNamesConfig {
    /// Addresses remembered.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// Learn names from the DNS answers clients on this host receive (what `mode: sniff` reads).
    #[serde(default)]
    pub sniff: bool,
    /// Interfaces to read answers on; unset means every interface.
    #[serde(default)]
    pub interfaces: Option<Vec<String>>,
    /// The longest a sniffed name is trusted.
    #[serde(default = "default_ttl", with = "duration")]
    pub ttl: Duration,
}

impl Default for DnsNamesConfig {
    fn default() -> Self {
        tapline_core::config::all_defaults()
    }
}

/// What a `dns_names` extension gives the `rdns` processors that name it.
pub struct DnsNames {
    pub cache: Arc<NameCache>,
    /// A sniffer fills the cache.
    pub sniffing: bool,
}

/// The `dns_names` extension: one bounded cache of address → name, optionally filled by a
/// sniffer of DNS answers, shared by the `rdns` processors that name it.
pub struct DnsNamesExtension;

impl Component for DnsNamesExtension {
    type Config = DnsNamesConfig;
    const TYPE_NAME: &'static str = "dns_names";
    const DESCRIPTION: &'static str =
        "A cache of names for addresses, optionally filled from DNS answers seen on the wire, for rdns processors to share";
    const SIGNALS: &'static [SignalKind] = &[];
}

impl ExtensionComponent for DnsNamesExtension {
    type Extension = DnsNames;
    fn build(&self, cfg: DnsNamesConfig, ctx: &BuildContext) -> Result<DnsNames, ConfigErrors> {
        if cfg.cache_size == 0 {
            return Err(ConfigErrors::at("cache_size", "must be at least 1"));
        }
        let cache = Arc::new(NameCache::new(cfg.cache_size));
        if cfg.sniff {
            start_sniffer(ctx, cache.clone(), cfg.interfaces, cfg.ttl);
        } else if cfg.interfaces.is_some() {
            return Err(ConfigErrors::at(
                "interfaces",
                "only used with `sniff: true`",
            ));
        }
        Ok(DnsNames {
            cache,
            sniffing: cfg.sniff,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapline_test_support::fixtures::{first_point_attrs, flow_batch};

    #[test]
    fn nameserver_forms() {
        assert_eq!(
            parse_nameserver("10.0.0.2").unwrap(),
            "10.0.0.2:53".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("[::1]:53").unwrap(),
            "[::1]:53".parse().unwrap()
        );
        assert!(parse_nameserver("dns.example")
            .unwrap_err()
            .contains("not an address"));
        let cfg: RdnsConfig = serde_yaml::from_str("nameservers: [1.1.1.1, bad]").unwrap();
        let e = RdnsProcessor::new(cfg, Arc::new(NameCache::new(10)))
            .err()
            .unwrap();
        assert_eq!(e.0, "nameservers[1]");
    }

    #[test]
    fn cached_names_apply_and_misses_pass_as_addresses() {
        let cache = Arc::new(NameCache::new(100));
        cache.insert(
            "10.0.0.1".parse().unwrap(),
            Some("a.example".into()),
            Duration::from_secs(60),
        );
        cache.insert("10.0.0.2".parse().unwrap(), None, Duration::from_secs(60));
        let p = RdnsProcessor::new(RdnsConfig::default(), cache.clone()).unwrap();
        let mut batch = flow_batch(&[("10.0.0.1", "10.0.0.2", 1)]);
        p.apply(&mut batch);
        let a = first_point_attrs(&batch);
        assert_eq!(a.get_str("src.name"), Some("a.example"));
        assert_eq!(a.get_str("dst.name"), Some("10.0.0.2"));
        // Outside a runtime no lookup can start, and the miss is not left marked pending.
        let mut batch = flow_batch(&[("10.0.0.3", "10.0.0.1", 1)]);
        p.apply(&mut batch);
        assert_eq!(
            first_point_attrs(&batch).get_str("src.name"),
            Some("10.0.0.3")
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn names_learnt_from_a_response_decorate_flows() {
        // dig-style answer for db.example: A 10.0.0.6, TTL 600 (capped to 60 s here).
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x02db\x07example\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 2, 0x58, 0, 4, 10, 0, 0, 6]);
        let cache = Arc::new(NameCache::new(100));
        assert_eq!(cache.learn_from_response(&m, Duration::from_secs(60)), 1);
        assert_eq!(
            cache.learn_from_response(&m[..20], Duration::from_secs(60)),
            0
        );
        let p = RdnsProcessor::new(RdnsConfig::default(), cache).unwrap();
        let mut batch = flow_batch(&[("10.0.0.9", "10.0.0.6", 1)]);
        p.apply(&mut batch);
        assert_eq!(
            first_point_attrs(&batch).get_str("dst.name"),
            Some("db.example")
        );
    }

    fn sniff_cfg(yaml: &str) -> Result<RdnsProcessor, (String, String)> {
        let cfg: RdnsConfig = serde_yaml::from_str(yaml).unwrap();
        RdnsProcessor::new(cfg, Arc::new(NameCache::new(100)))
    }

    #[test]
    fn sniff_config_is_checked() {
        assert_eq!(sniff_cfg("mode: sniff").unwrap().mode(), Mode::Sniff);
        assert!(sniff_cfg("mode: sniff\ninterfaces: [eth0, lo]").is_ok());
        let e = sniff_cfg("interfaces: [eth0]").err().unwrap();
        assert_eq!(e.0, "interfaces");
        assert!(e.1.contains("mode: sniff"), "{}", e.1);
        assert_eq!(
            sniff_cfg("mode: sniff\ninterfaces: []").err().unwrap().0,
            "interfaces"
        );
        assert_eq!(
            sniff_cfg("mode: sniff\ninterfaces: [eth0, \"\"]")
                .err()
                .unwrap()
                .0,
            "interfaces[1]"
        );
        assert_eq!(
            sniff_cfg("mode: sniff\nnameservers: [10.0.0.2]")
                .err()
                .unwrap()
                .0,
            "nameservers"
        );
        assert!(serde_yaml::from_str::<RdnsConfig>("mode: guess").is_err());
    }

    #[tokio::test]
    async fn sniff_mode_never_looks_up_nor_marks_pending() {
        let cache = Arc::new(NameCache::new(100));
        let p = sniff_cfg("mode: sniff").unwrap();
        let p = RdnsProcessor {
            cache: cache.clone(),
            ..p
        };
        for _ in 0..3 {
            let mut batch = flow_batch(&[("10.0.0.1", "10.0.0.2", 1)]);
            p.apply(&mut batch);
            let a = first_point_attrs(&batch);
            assert_eq!(a.get_str("src.name"), Some("10.0.0.1"));
            assert_eq!(a.get_str("dst.name"), Some("10.0.0.2"));
        }
        assert_eq!(p.in_flight(), 0);
        assert!(p.resolver.get().is_none(), "no resolver is built");
        assert!(cache.is_empty(), "nothing pending");
    }

    #[test]
    fn learnt_ttl_is_capped_and_floored() {
        // A 0 s TTL still names for MIN_LEARNT_TTL.
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x02lb\x07example\x00\x00\x01\x00\x01");
        m.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 0, 0, 7]);
        let cache = NameCache::new(10);
        assert_eq!(cache.learn_from_response(&m, Duration::from_secs(300)), 1);
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(cache.get(&ip).as_deref(), Some("lb.example"));
        let map = cache.entries.lock().unwrap();
        let Some(Entry::Named(_, until)) = map.get(&ip) else {
            panic!("named")
        };
        let left = until.saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(4) && left <= MIN_LEARNT_TTL,
            "{left:?}"
        );
    }

    /// Frames around valid answers (Ethernet, VLAN, L3; IPv4, IPv6), mutated, truncated and
    /// extended at random, and raw random bytes: decoding and learning never panic, and what
    /// is learnt stays within bounds.
    #[test]
    fn random_frames_do_not_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut answer = vec![0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        answer.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
        answer.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
        answer.extend_from_slice(b"\x03cdn\xC0\x10");
        answer.extend_from_slice(&[0xC0, 41, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]);
        assert!(wire::parse_response(&answer).is_some_and(|l| l.len() == 1));
        let udp = |payload: &[u8]| {
            let mut u = vec![0, 53, 0x9c, 0x40];
            u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            u.extend_from_slice(&[0, 0]);
            u.extend_from_slice(payload);
            u
        };
        let v4 = |l4: &[u8]| {
            let mut p = vec![0x45, 0];
            p.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 53, 10, 0, 0, 9]);
            p.extend_from_slice(l4);
            p
        };
        let v6 = |l4: &[u8]| {
            let mut p = vec![0x60, 0, 0, 0];
            p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            p.extend_from_slice(&[17, 64]);
            p.extend_from_slice(&[0xfd; 32]);
            p.extend_from_slice(l4);
            p
        };
        let eth = |ethertype: u16, vlan: bool, l3: &[u8]| {
            let mut f = vec![0u8; 12];
            if vlan {
                f.extend_from_slice(&[0x81, 0, 0, 1]);
            }
            f.extend_from_slice(&ethertype.to_be_bytes());
            f.extend_from_slice(l3);
            f
        };
        let seeds: Vec<(u16, Vec<u8>)> = vec![
            (0x0800, eth(0x0800, false, &v4(&udp(&answer)))),
            (0x0800, eth(0x0800, true, &v4(&udp(&answer)))),
            (0x86DD, eth(0x86DD, false, &v6(&udp(&answer)))),
            (0x86DD, v6(&udp(&answer))),
        ];
        let cache = NameCache::new(64);
        let ttl = Duration::from_secs(60);
        for (protocol, frame) in &seeds {
            assert_eq!(
                sniff::learn_from_frame(&cache, frame, *protocol, ttl),
                Some(1)
            );
        }
        for _round in 0..20_000 {
            let (protocol, seed) = &seeds[(next() % seeds.len() as u64) as usize];
            let mut input = seed.clone();
            for _ in 0..(next() % 6) {
                let at = (next() as usize) % input.len().max(1);
                match next() % 4 {
                    0 if !input.is_empty() => input[at] = next() as u8,
                    1 => input.insert(at.min(input.len()), next() as u8),
                    2 => input.truncate(at),
                    _ => input.extend_from_slice(&answer[..(next() as usize) % answer.len()]),
                }
            }
            let _ = sniff::learn_from_frame(&cache, &input, *protocol, ttl);
            let random: Vec<u8> = (0..next() % 200).map(|_| next() as u8).collect();
            let _ = sniff::learn_from_frame(&cache, &random, *protocol, ttl);
            let _ = wire::parse_response(&random);
        }
        assert!(cache.len() <= 64);
    }

    #[test]
    fn cache_stays_bounded() {
        let cache = NameCache::new(50);
        for i in 0..1000u32 {
            cache.insert(
                IpAddr::from(i.to_be_bytes()),
                Some("x".into()),
                Duration::from_secs(60),
            );
        }
        assert!(cache.len() <= 50, "{}", cache.len());
    }
}

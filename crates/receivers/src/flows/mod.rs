//! `flows`: network flows observed by eBPF (tc or an `AF_PACKET` socket filter), exported as
//! `tapline.network.flow.bytes` and `tapline.network.flow.packets` delta sums. See
//! `docs/flows.md` for the configuration, the attributes and their cardinality.
//!
//! Task shape: one tokio task owns the [`FlowCapture`] (loaded in `run`, never at build, so
//! `tapline validate` does not touch the kernel) and waits on four things: the shutdown token,
//! the eviction timer (`cache_active_timeout`), the overflow ring buffer's fd (drained as soon
//! as it signals, merged per flow), and a `NETLINK_ROUTE` socket (`RTMGRP_LINK`) that reports
//! interfaces appearing and disappearing, which are attached and detached as they come.

pub mod config;
pub mod convert;
mod interfaces;

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Instant;

use anyhow::Context as _;
use async_trait::async_trait;
use tapline_core::data::{Resource, Signal, SignalKind, Str, Value};
use tapline_core::telemetry::{Counter, Gauge};
use tapline_core::{
    BuildContext, Component, ConfigErrors, Receiver, ReceiverComponent, ReceiverContext,
};
use tapline_ebpf::flows::FlowCapture;
use tapline_ebpf::sys::host::{boot_offset_ns, first_host_address, hostname};
use tapline_ebpf::sys::netlink::LinkWatcher;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tracing::{debug, info, warn};

use interfaces::Interfaces;

pub use config::{AttributeSet, FlowAttribute, FlowsConfig, DEFAULT_ATTRIBUTES};
pub use convert::{Converter, ConverterOptions, EvictionStats, Overflow};

pub struct FlowsFactory;

impl Component for FlowsFactory {
    type Config = FlowsConfig;
    const TYPE_NAME: &'static str = "flows";
    const DESCRIPTION: &'static str = "Network flows seen by eBPF on the host's interfaces (tc or socket filter): bytes and packets per flow";
    const SIGNALS: &'static [SignalKind] = &[SignalKind::Metrics];
}

impl ReceiverComponent for FlowsFactory {
    fn build(
        &self,
        cfg: FlowsConfig,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Receiver>, ConfigErrors> {
        // The checks name nested fields (interfaces[2].name) themselves.
        let d = cfg.validate(&ctx.path);
        if d.has_errors() {
            return Err(d.into());
        }
        for w in d.warnings() {
            warn!("{}: {}", w.path, w.message);
        }
        let id = ctx.id.to_string();
        let labels = [("receiver", id.as_str())];
        let t = &ctx.telemetry;
        Ok(Box::new(Flows {
            path: ctx.path.clone(),
            cfg,
            lost: t.counter(
                "tapline_ebpf_events_lost_total",
                "eBPF events dropped in the kernel because the ring buffer was full.",
                &labels,
            ),
            records: crate::ebpf_records_counter(t, &id),
            overflow: t.counter(
                "tapline_flows_overflow_records_total",
                "Flow records read from the overflow ring buffer (packets of flows that did not fit in the kernel map).",
                &labels,
            ),
            deduplicated: t.counter(
                "tapline_flows_deduplicated_total",
                "Flow records dropped because another interface of the host reported the same packets first.",
                &labels,
            ),
            attached: t.gauge(
                "tapline_flows_attached_interfaces",
                "Interfaces the flows receiver is attached to.",
                &labels,
            ),
            restored: t.counter(
                "tapline_flows_attachments_restored_total",
                "Interfaces whose capture something other than tapline detached (tc filter del, bpftool link detach), attached again.",
                &labels,
            ),
        }))
    }
}

struct Flows {
    path: String,
    cfg: FlowsConfig,
    lost: Counter,
    /// Ring-buffer records taken, counted as they are drained.
    records: Counter,
    overflow: Counter,
    deduplicated: Counter,
    attached: Gauge,
    restored: Counter,
}

/// The ring buffer's fd, for `AsyncFd`; the `FlowCapture` that owns it outlives this.
struct RingFd(RawFd);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

impl Flows {
    /// Tells `/readyz` and the attached-interfaces gauge where the attachments stand.
    fn publish_attachments(&self, a: &Interfaces<FlowCapture>, ctx: &ReceiverContext) {
        self.attached.set(a.attached() as i64);
        match a.readiness() {
            Ok(how) => ctx.readiness.ready(how),
            Err(why) => ctx.readiness.not_ready(why),
        }
    }

    /// Reads the map and the ring buffer, converts, sends. `false` when the pipeline is gone.
    async fn evict(
        &self,
        a: &mut Interfaces<FlowCapture>,
        conv: &mut Converter,
        overflow: &mut Overflow,
        scratch: &mut Vec<tapline_ebpf::flows::FlowRecord>,
        ctx: &ReceiverContext,
    ) -> anyhow::Result<bool> {
        let started = Instant::now();
        scratch.clear();
        let mut ring = Vec::new();
        self.records.add(a.capture.drain_overflow(&mut ring) as u64);
        overflow.add(ring);
        a.capture
            .evict_into(scratch)
            .with_context(|| format!("{}: reading flows from the kernel", self.path))?;
        self.overflow.add(overflow.records as u64);
        self.lost.set(a.capture.lost_events());
        let (metrics, stats) = conv.convert(scratch, overflow, boot_offset_ns());
        a.forget_removed(conv);
        self.deduplicated.add(stats.deduplicated as u64);
        debug!(
            receiver = %self.path,
            flows = stats.flows,
            map_records = stats.map_records,
            overflow_records = stats.overflow_records,
            deduplicated = stats.deduplicated,
            points = stats.points,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "flows evicted"
        );
        if let Some(m) = metrics {
            if ctx.output.send(Signal::Metrics(m)).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

#[async_trait]
impl Receiver for Flows {
    /// Ready once attached to every wanted interface that exists at start.
    fn reports_readiness(&self) -> bool {
        true
    }

    async fn run(self: Box<Self>, ctx: ReceiverContext) -> anyhow::Result<()> {
        let path = self.path.clone();
        let capture = FlowCapture::load(&self.cfg.kernel_config())
            .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        let agent_ip = match self.cfg.agent_ip.or_else(first_host_address) {
            Some(ip) => Str::from(ip.to_string()),
            None => {
                warn!(receiver = %path, "no non-loopback address found for tapline.ip; set agent_ip");
                Str::from_static("")
            }
        };
        let resource = Resource::new(
            [("host.name", Value::from(hostname()))]
                .into_iter()
                .collect(),
        );
        let memory = (self.cfg.cache_max_flows as usize * 4).max(65_536);
        let mut conv = Converter::new(ConverterOptions {
            attributes: self.cfg.attribute_set(),
            deduplicate: self.cfg.deduplicate,
            agent_ip,
            memory,
            resource,
        });
        // Subscribe first, then list: no link can appear unseen in between.
        let watcher = LinkWatcher::open()
            .with_context(|| format!("{path}: opening a netlink socket to watch interfaces"))?;
        // SAFETY: the watcher owns its socket, which stays open as long as the AsyncFd.
        let mut watcher =
            unsafe { AsyncFd::register_with_interest(watcher, Interest::READABLE) }
                .map_err(|e| anyhow::anyhow!("{path}: registering the netlink socket: {e}"))?;
        let mut a = Interfaces::new(capture, &path, &self.cfg);
        a.reconcile(&mut conv)?;
        self.publish_attachments(&a, &ctx);
        if a.attached() == 0 {
            info!(receiver = %path, "no interface matches yet; waiting for one to appear");
        }
        // SAFETY: the ring buffer's fd belongs to `a.capture`, which is dropped only after this
        // AsyncFd (see the end of this function).
        let ring = unsafe {
            AsyncFd::register_with_interest(
                RingFd(a.capture.overflow_fd().as_fd().as_raw_fd()),
                Interest::READABLE,
            )
        }
        .map_err(|e| anyhow::anyhow!("{path}: registering the overflow ring buffer: {e}"))?;

        let period = self.cfg.cache_active_timeout;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut overflow = Overflow::default();
        let mut scratch = Vec::new();
        let mut events = Vec::new();
        let mut ring_buf = Vec::new();
        // Flows waiting in the overflow map are bounded: past this, evict early.
        let overflow_limit = self.cfg.cache_max_flows as usize;
        let result: anyhow::Result<()> = async {
            loop {
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => {
                        // What the kernel counted since the last eviction is exported too.
                        self.evict(&mut a, &mut conv, &mut overflow, &mut scratch, &ctx).await?;
                        return Ok(());
                    }
                    _ = ticker.tick() => {
                        if !self.evict(&mut a, &mut conv, &mut overflow, &mut scratch, &ctx).await? {
                            return Ok(());
                        }
                        self.restored.add(a.restore_detached(&mut conv)? as u64);
                        self.publish_attachments(&a, &ctx);
                    }
                    guard = ring.readable() => {
                        let mut guard = guard.with_context(|| format!("{path}: polling the overflow ring buffer"))?;
                        ring_buf.clear();
                        self.records.add(a.capture.drain_overflow(&mut ring_buf) as u64);
                        overflow.add(ring_buf.drain(..));
                        guard.clear_ready();
                        if overflow.len() >= overflow_limit {
                            if !self.evict(&mut a, &mut conv, &mut overflow, &mut scratch, &ctx).await? {
                                return Ok(());
                            }
                            ticker.reset();
                        }
                    }
                    guard = watcher.readable_mut() => {
                        let mut guard = guard.with_context(|| format!("{path}: polling the netlink socket"))?;
                        events.clear();
                        let read = guard.get_inner_mut().read_events(&mut events);
                        guard.clear_ready();
                        read.with_context(|| format!("{path}: reading interface changes"))?;
                        for ev in events.drain(..) {
                            let applied = a.apply(&mut conv, ev);
                            self.publish_attachments(&a, &ctx);
                            applied?;
                        }
                    }
                }
            }
        }
        .await;
        // The AsyncFd goes before the capture that owns the fd.
        drop(ring);
        self.attached.set(0);
        drop(a);
        result
    }
}

//! Which interfaces the receiver attaches to, and when: at start (and whenever link events were
//! lost) every listed link the configuration wants; afterwards each link as it appears, is
//! renamed or goes away. The OS side (the link list, the attach calls) is behind [`Host`], so
//! this policy is tested without privileges.

use std::collections::BTreeMap;
use std::io;

use anyhow::Context as _;
use tapline_ebpf::flows::{AttachDirection, FlowCapture, TcAttachMode};
use tapline_ebpf::load::EbpfError;
use tapline_ebpf::sys::netlink::{list_links, LinkEvent};
use tracing::{debug, info, warn};

use super::config::FlowsConfig;
use super::convert::Converter;

/// What the policy asks of the host: its links, and attaching the capture to them.
pub(crate) trait Host {
    /// Every link now: (index, name).
    fn links(&self) -> io::Result<Vec<(u32, String)>>;
    /// Attaches the capture to interface `name` for `dir`.
    fn attach(&mut self, name: &str, dir: AttachDirection) -> Result<(), EbpfError>;
    /// Detaches the capture from interface `name`.
    fn detach(&mut self, name: &str);
    /// Whether an interface named `name` exists now.
    fn exists(&self, name: &str) -> bool;
    /// How tc programs attach on this kernel and why, once an attach found out.
    fn tc_attach_mode(&self) -> Option<(&'static str, Option<String>)> {
        None
    }
    /// Filters a killed tapline left, removed since the last call.
    fn take_stale_filters_removed(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// The directions of `name` whose program someone else detached.
    fn detached_directions(&self, _name: &str) -> Result<Vec<&'static str>, EbpfError> {
        Ok(Vec::new())
    }
}

impl Host for FlowCapture {
    fn links(&self) -> io::Result<Vec<(u32, String)>> {
        list_links()
    }
    fn attach(&mut self, name: &str, dir: AttachDirection) -> Result<(), EbpfError> {
        FlowCapture::attach(self, name, dir)
    }
    fn detach(&mut self, name: &str) {
        FlowCapture::detach(self, name)
    }
    fn exists(&self, name: &str) -> bool {
        tapline_ebpf::flows::ifindex(name).is_ok()
    }
    fn tc_attach_mode(&self) -> Option<(&'static str, Option<String>)> {
        let mode = FlowCapture::tc_attach_mode(self)?;
        let why = match mode {
            TcAttachMode::Tcx => "the kernel has TCX links".to_owned(),
            TcAttachMode::Netlink => format!(
                "the kernel refused a TCX link ({}); filters are removed at exit, and left-over ones at the next start",
                self.tcx_refusal().unwrap_or("no reason given")
            ),
        };
        Some((mode.as_str(), Some(why)))
    }
    fn take_stale_filters_removed(&mut self) -> Vec<String> {
        FlowCapture::take_stale_filters_removed(self)
    }
    fn detached_directions(&self, name: &str) -> Result<Vec<&'static str>, EbpfError> {
        FlowCapture::detached_directions(self, name)
    }
}

/// Whether an attach failure means "not allowed" (fatal) rather than "interface went away".
fn is_permission_denied(e: &EbpfError) -> bool {
    match e {
        EbpfError::Attach { hint, .. } | EbpfError::ProgramLoad { hint, .. } => hint.is_some(),
        _ => false,
    }
}

/// The capture plus the interfaces it is attached to, kept in step with the host's links.
pub(crate) struct Interfaces<H> {
    /// The capture (and, through [`Host`], the host's links).
    pub(crate) capture: H,
    /// The receiver's configuration path, in logs and errors.
    path: String,
    cfg: FlowsConfig,
    /// Attached interfaces: index → name.
    by_index: BTreeMap<u32, String>,
    /// Interfaces removed since the last eviction: their names are still needed for the
    /// records the kernel map holds for them, so they are forgotten after the next eviction.
    removed: Vec<u32>,
    /// Wanted interfaces that exist but refused the attach: name → the error. They keep the
    /// receiver not ready until they attach or go away.
    refused: BTreeMap<String, String>,
    /// The tc attach mode was logged (once per receiver).
    mode_logged: bool,
}

impl<H: Host> Interfaces<H> {
    /// Nothing attached yet: call [`reconcile`](Self::reconcile).
    pub(crate) fn new(capture: H, path: &str, cfg: &FlowsConfig) -> Self {
        Self {
            capture,
            path: path.to_owned(),
            cfg: cfg.clone(),
            by_index: BTreeMap::new(),
            removed: Vec::new(),
            refused: BTreeMap::new(),
            mode_logged: false,
        }
    }

    /// How many interfaces the capture is attached to.
    pub(crate) fn attached(&self) -> usize {
        self.by_index.len()
    }

    /// Attaches to link `index` named `name` if the configuration wants it (again under the
    /// new name when it was renamed). Only a permission error is an error: an interface that
    /// vanished meanwhile is logged, one that refuses the attach is logged as not counted.
    pub(crate) fn attach(
        &mut self,
        conv: &mut Converter,
        index: u32,
        name: &str,
    ) -> anyhow::Result<()> {
        if !self.cfg.wants_interface(name) {
            return Ok(());
        }
        if self.by_index.get(&index).is_some_and(|n| n == name) {
            return Ok(());
        }
        // Renamed: the old name's attachment goes first.
        if let Some(old) = self.by_index.remove(&index) {
            self.capture.detach(&old);
        }
        let attached = self.capture.attach(name, self.cfg.attach_direction());
        if !self.mode_logged {
            if let Some((mode, why)) = self.capture.tc_attach_mode() {
                self.mode_logged = true;
                info!(receiver = %self.path, tc_attach = mode, reason = why.unwrap_or_default(), "tc capture attach mode chosen");
            }
        }
        for stale in self.capture.take_stale_filters_removed() {
            warn!(receiver = %self.path, removed = %stale, "removed tc filters a previous tapline left behind");
        }
        match attached {
            Ok(()) => {
                info!(receiver = %self.path, interface = name, "attached");
                self.refused.remove(name);
                self.by_index.insert(index, name.to_owned());
                self.removed.retain(|i| *i != index);
                conv.set_interface(index, name);
            }
            Err(e) if is_permission_denied(&e) => {
                return Err(anyhow::anyhow!(
                    "{}: cannot attach to interface {name}: {e}",
                    self.path
                ));
            }
            Err(e) => {
                // Gone between the event and the attach (a short-lived veth): not an error.
                if !self.capture.exists(name) {
                    debug!(receiver = %self.path, interface = name, error = %e, "interface vanished before it could be attached");
                } else {
                    warn!(receiver = %self.path, interface = name, error = %e, "cannot attach; its traffic is not counted");
                    self.refused.insert(name.to_owned(), e.to_string());
                }
            }
        }
        Ok(())
    }

    /// Detaches from link `index`, if attached.
    pub(crate) fn detach(&mut self, index: u32) {
        self.refused.retain(|name, _| self.capture.exists(name));
        if let Some(name) = self.by_index.remove(&index) {
            self.capture.detach(&name);
            self.removed.push(index);
            debug!(receiver = %self.path, interface = %name, "interface removed; detached");
        }
    }

    /// Attaches to every wanted link and detaches from the ones that are gone.
    pub(crate) fn reconcile(&mut self, conv: &mut Converter) -> anyhow::Result<()> {
        let links = self
            .capture
            .links()
            .with_context(|| format!("{}: listing interfaces", self.path))?;
        let present: BTreeMap<u32, String> = links.into_iter().collect();
        let gone: Vec<u32> = self
            .by_index
            .iter()
            .filter(|(i, n)| present.get(i) != Some(n))
            .map(|(i, _)| *i)
            .collect();
        for i in gone {
            self.detach(i);
        }
        for (i, name) in &present {
            self.attach(conv, *i, name)?;
        }
        Ok(())
    }

    /// Follows one link change.
    pub(crate) fn apply(&mut self, conv: &mut Converter, event: LinkEvent) -> anyhow::Result<()> {
        match event {
            LinkEvent::Present { index, name } => self.attach(conv, index, &name),
            LinkEvent::Removed { index, .. } => {
                self.detach(index);
                Ok(())
            }
            LinkEvent::Resync => self.reconcile(conv),
        }
    }

    /// Puts back the programs someone else detached from attached interfaces (`tc filter del`,
    /// `bpftool link detach`): each is logged as a warning and counted in the result. An
    /// interface deleted meanwhile is left to its netlink event.
    pub(crate) fn restore_detached(&mut self, conv: &mut Converter) -> anyhow::Result<usize> {
        let mut restored = 0;
        let attached: Vec<(u32, String)> =
            self.by_index.iter().map(|(i, n)| (*i, n.clone())).collect();
        for (index, name) in attached {
            let lost = match self.capture.detached_directions(&name) {
                Ok(lost) => lost,
                Err(e) => {
                    if self.capture.exists(&name) {
                        warn!(receiver = %self.path, interface = %name, error = %e, "cannot check the attachment");
                    }
                    continue;
                }
            };
            if lost.is_empty() {
                continue;
            }
            warn!(
                receiver = %self.path,
                interface = %name,
                directions = %lost.join(","),
                "something other than tapline detached the capture from this interface; attaching again"
            );
            restored += 1;
            // Our record of the attachment is stale: drop it, then attach as if new.
            self.by_index.remove(&index);
            self.capture.detach(&name);
            self.attach(conv, index, &name)?;
        }
        Ok(restored)
    }

    /// What `/readyz` says about the attachments: `Ok(how)` when every wanted interface that
    /// exists is attached, else `Err(why)`.
    pub(crate) fn readiness(&self) -> Result<String, String> {
        if !self.refused.is_empty() {
            let refused: Vec<String> = self
                .refused
                .iter()
                .map(|(n, e)| format!("{n}: {e}"))
                .collect();
            return Err(format!("cannot attach to {}", refused.join("; ")));
        }
        if self.by_index.is_empty() {
            return Ok("no interface matches yet".to_owned());
        }
        let names: Vec<&str> = self.by_index.values().map(String::as_str).collect();
        Ok(format!("attached to {}", names.join(", ")))
    }

    /// After an eviction: forgets the names of the interfaces removed before it.
    pub(crate) fn forget_removed(&mut self, conv: &mut Converter) {
        for index in self.removed.drain(..) {
            conv.forget_interface(index);
        }
    }
}

#[cfg(test)]
mod tests;

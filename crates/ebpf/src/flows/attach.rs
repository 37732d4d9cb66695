//! Attaching the capture to interfaces and detaching it: one TCX link per direction where the
//! kernel has TCX (Linux 6.6 and later), else one netlink `cls_bpf` filter per direction on the
//! interface's `clsact` qdisc; or one `AF_PACKET` socket per interface carrying the socket filter.
//!
//! Which tc attachment the kernel takes is probed, not read from its version: the first attach
//! tries a TCX link, and a kernel that does not know the TCX attach types (`EINVAL`) gets
//! netlink filters from then on. Netlink filters outlive the process that created them: they
//! are removed when the capture detaches or is dropped, and those a killed tapline left behind
//! (found by the programs' names) are removed before this process attaches to the interface.

use std::os::fd::{AsFd, OwnedFd};

use aya::programs::{
    links::LinkOrder,
    tc::{NlOptions, SchedClassifierLinkId, TcAttachOptions, TcAttachType},
    ProgramError, SchedClassifier, SocketFilter,
};
use aya::Ebpf;

use super::{
    map_err, missing, AttachDirection, FlowCapture, FlowSource, MAP_SKDIRS, PROG_SOCKET,
    PROG_TC_EGRESS, PROG_TC_INGRESS,
};
use crate::load::{is_permission_error, net_attach_error, EbpfError, RAW_SOCKET_CAPS_HINT};
use crate::sys::bpf::{tcx_program_ids, TcxHook};
use crate::sys::netlink::{clsact_filter_program_ids, ClsactDirection};
use crate::sys::packet::{bind_packet_socket, open_packet_socket};

/// How the tc programs are attached on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcAttachMode {
    /// One TCX link per direction (Linux 6.6 and later): it goes away with the process.
    Tcx,
    /// One `cls_bpf` filter per direction on the `clsact` qdisc, through netlink (kernels
    /// without TCX): removed at exit, and by the next start when the process was killed.
    Netlink,
}

impl TcAttachMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TcAttachMode::Tcx => "tcx",
            TcAttachMode::Netlink => "netlink clsact filters",
        }
    }
}

/// A TCX attach refused because the kernel does not know the TCX attach types.
fn tcx_unsupported(e: &ProgramError) -> bool {
    match e {
        ProgramError::SyscallError(s) => matches!(
            s.io_error.raw_os_error(),
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(524 /* ENOTSUPP */)
        ),
        _ => false,
    }
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier, EbpfError> {
    match ebpf.program_mut(name) {
        Some(p) => p
            .try_into()
            .map_err(|e| missing(format!("program {name}: {e}"))),
        None => Err(missing(format!("no program named {name}"))),
    }
}

/// Removes the `cls_bpf` filters named after the capture's tc programs from both directions of
/// `ifname`: a tapline killed before it could detach left them. Returns what was removed, as
/// `ingress tapline_tc_in`.
fn remove_stale_filters(ifname: &str) -> Vec<String> {
    let mut removed = Vec::new();
    for (ty, label) in [
        (TcAttachType::Ingress, "ingress"),
        (TcAttachType::Egress, "egress"),
    ] {
        for name in [PROG_TC_INGRESS, PROG_TC_EGRESS] {
            if aya::programs::tc::qdisc_detach_program(ifname, ty, name).is_ok() {
                removed.push(format!("{label} {name}"));
            }
        }
    }
    removed
}

/// What is attached to one interface.
pub(super) enum Attachment {
    Tc {
        ingress: Option<SchedClassifierLinkId>,
        egress: Option<SchedClassifierLinkId>,
    },
    Socket {
        // Closing the socket detaches the filter.
        _socket: OwnedFd,
        ifindex: u32,
    },
}

/// Resolves an interface name in the calling thread's network namespace.
pub fn ifindex(ifname: &str) -> Result<u32, EbpfError> {
    crate::sys::host::ifindex(ifname).map_err(|source| EbpfError::Interface {
        interface: ifname.to_owned(),
        source,
    })
}

impl FlowCapture {
    /// Attaches to `ifname` (resolved in the calling thread's network namespace) for `dir`.
    /// Attaching again adds directions; directions already attached are kept.
    ///
    /// With [`FlowSource::Tc`] this creates one TCX link per direction (netlink clsact filters on
    /// kernels < 6.6). With [`FlowSource::SocketFilter`] it opens one `AF_PACKET` socket bound to
    /// the interface (`ETH_P_ALL`) with the filter attached; the filter returns 0, so the socket
    /// never queues anything. Permission errors name the missing capabilities.
    pub fn attach(&mut self, ifname: &str, dir: AttachDirection) -> Result<(), EbpfError> {
        let ifindex = ifindex(ifname)?;
        match self.source {
            FlowSource::Tc => self.attach_tc(ifname, dir),
            FlowSource::SocketFilter => self.attach_socket(ifname, ifindex, dir),
        }
    }

    fn attach_tc(&mut self, ifname: &str, dir: AttachDirection) -> Result<(), EbpfError> {
        let (mut ingress, mut egress) = match self.attachments.remove(ifname) {
            Some(Attachment::Tc { ingress, egress }) => (ingress, egress),
            _ => (None, None),
        };
        // Nothing of this process on the interface yet: filters named like ours are stale.
        let mut clean = ingress.is_none() && egress.is_none();
        let mut result = Ok(());
        for (want, slot, name, ty, label) in [
            (
                dir.mask() & 1 != 0,
                &mut ingress,
                PROG_TC_INGRESS,
                TcAttachType::Ingress,
                "ingress",
            ),
            (
                dir.mask() & 2 != 0,
                &mut egress,
                PROG_TC_EGRESS,
                TcAttachType::Egress,
                "egress",
            ),
        ] {
            if !want || slot.is_some() || result.is_err() {
                continue;
            }
            let target = format!("interface {ifname} ({label})");
            let mut attached = Err(None);
            if self.tc_mode != Some(TcAttachMode::Netlink) {
                let prog = classifier(&mut self.ebpf, name)?;
                let tcx = TcAttachOptions::TcxOrder(LinkOrder::default());
                attached = match prog.attach_with_options(ifname, ty, tcx) {
                    Ok(id) => {
                        self.tc_mode = Some(TcAttachMode::Tcx);
                        Ok(id)
                    }
                    Err(e) if self.tc_mode.is_none() && tcx_unsupported(&e) => {
                        self.tc_mode = Some(TcAttachMode::Netlink);
                        self.tcx_refusal = Some(match &e {
                            ProgramError::SyscallError(s) => format!("{}: {}", s.call, s.io_error),
                            e => e.to_string(),
                        });
                        Err(None)
                    }
                    Err(e) => Err(Some(e)),
                };
            }
            if self.tc_mode == Some(TcAttachMode::Netlink) {
                if std::mem::take(&mut clean) {
                    let removed = remove_stale_filters(ifname);
                    if !removed.is_empty() {
                        self.stale_filters_removed
                            .push(format!("{ifname}: {}", removed.join(", ")));
                    }
                }
                // Netlink filters need the clsact qdisc; "already there" is fine.
                let _ = aya::programs::tc::qdisc_add_clsact(ifname);
                let prog = classifier(&mut self.ebpf, name)?;
                let nl = TcAttachOptions::Netlink(NlOptions::default());
                attached = prog.attach_with_options(ifname, ty, nl).map_err(Some);
            }
            match attached {
                Ok(id) => *slot = Some(id),
                Err(Some(e)) => result = Err(net_attach_error(name, target, e)),
                Err(None) => unreachable!("a TCX refusal switches to netlink"),
            }
        }
        if ingress.is_some() || egress.is_some() {
            self.attachments
                .insert(ifname.to_owned(), Attachment::Tc { ingress, egress });
        }
        result
    }

    /// How the tc programs are attached on this kernel, once the first attach has found out.
    pub fn tc_attach_mode(&self) -> Option<TcAttachMode> {
        self.tc_mode
    }

    /// Why TCX was not used, when the kernel refused it (the probe's error).
    pub fn tcx_refusal(&self) -> Option<&str> {
        self.tcx_refusal.as_deref()
    }

    /// The stale filters removed since the last call, one `interface: filters` line each.
    pub fn take_stale_filters_removed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.stale_filters_removed)
    }

    fn attach_socket(
        &mut self,
        ifname: &str,
        ifindex: u32,
        dir: AttachDirection,
    ) -> Result<(), EbpfError> {
        let skdirs = self
            .skdirs
            .as_mut()
            .expect("socket-filter capture has skdirs");
        let old = skdirs.get(&ifindex, 0).unwrap_or(0);
        skdirs
            .insert(ifindex, old | dir.mask(), 0)
            .map_err(map_err(MAP_SKDIRS))?;
        if self.attachments.contains_key(ifname) {
            return Ok(());
        }
        let target = format!("interface {ifname} (AF_PACKET socket)");
        let socket = match open_packet_socket() {
            Ok(s) => s,
            Err(e) => {
                let _ = self.skdirs.as_mut().map(|m| m.remove(&ifindex));
                return Err(EbpfError::Attach {
                    program: PROG_SOCKET.to_owned(),
                    target,
                    hint: is_permission_error(&e).then_some(RAW_SOCKET_CAPS_HINT),
                    cause: format!("socket(AF_PACKET): {e}"),
                });
            }
        };
        let prog: &SocketFilter = self
            .ebpf
            .program(PROG_SOCKET)
            .ok_or_else(|| missing(format!("no program named {PROG_SOCKET}")))?
            .try_into()
            .map_err(|e| missing(format!("program {PROG_SOCKET}: {e}")))?;
        let attached = prog
            .attach(socket.as_fd())
            .map_err(|e| net_attach_error(PROG_SOCKET, target.clone(), e))
            .and_then(|()| {
                bind_packet_socket(&socket, ifindex).map_err(|e| EbpfError::Attach {
                    program: PROG_SOCKET.to_owned(),
                    target: target.clone(),
                    hint: is_permission_error(&e).then_some(RAW_SOCKET_CAPS_HINT),
                    cause: format!("bind(AF_PACKET, ETH_P_ALL): {e}"),
                })
            });
        if let Err(e) = attached {
            let _ = self.skdirs.as_mut().map(|m| m.remove(&ifindex));
            return Err(e);
        }
        self.attachments.insert(
            ifname.to_owned(),
            Attachment::Socket {
                _socket: socket,
                ifindex,
            },
        );
        Ok(())
    }

    /// Detaches everything attached to `ifname`. Never fails: an interface that disappeared
    /// already took its links with it; a name never attached is ignored.
    pub fn detach(&mut self, ifname: &str) {
        match self.attachments.remove(ifname) {
            Some(Attachment::Tc { ingress, egress }) => {
                for (id, name) in [(ingress, PROG_TC_INGRESS), (egress, PROG_TC_EGRESS)] {
                    let Some(id) = id else { continue };
                    if let Some(prog) = self.ebpf.program_mut(name) {
                        if let Ok(prog) = <&mut SchedClassifier>::try_from(prog) {
                            let _ = prog.detach(id);
                        }
                    }
                }
            }
            Some(Attachment::Socket { ifindex, .. }) => {
                if let Some(m) = self.skdirs.as_mut() {
                    let _ = m.remove(&ifindex);
                }
                // The socket is closed here, which detaches the filter.
            }
            None => {}
        }
    }

    /// The directions of `ifname` whose program is no longer attached although this capture
    /// attached it: someone else removed the TCX link's program or the tc filter. Empty when
    /// all is in place, or for a name not attached. Packet sockets cannot be detached from
    /// outside, so they are never reported.
    pub fn detached_directions(&self, ifname: &str) -> Result<Vec<&'static str>, EbpfError> {
        let Some(Attachment::Tc { ingress, egress }) = self.attachments.get(ifname) else {
            return Ok(Vec::new());
        };
        let index = ifindex(ifname)?;
        let mut lost = Vec::new();
        for (held, name, hook, dir, label) in [
            (
                ingress.is_some(),
                PROG_TC_INGRESS,
                TcxHook::Ingress,
                ClsactDirection::Ingress,
                "ingress",
            ),
            (
                egress.is_some(),
                PROG_TC_EGRESS,
                TcxHook::Egress,
                ClsactDirection::Egress,
                "egress",
            ),
        ] {
            if !held {
                continue;
            }
            let ours = self
                .ebpf
                .program(name)
                .and_then(|p| p.info().ok())
                .map(|i| i.id())
                .ok_or_else(|| missing(format!("program {name} has no id")))?;
            let query_failed = |cause: String| EbpfError::Attach {
                program: name.to_owned(),
                target: format!("interface {ifname} ({label})"),
                hint: None,
                cause,
            };
            let present = match self.tc_mode {
                Some(TcAttachMode::Netlink) => clsact_filter_program_ids(index, dir)
                    .map_err(|e| query_failed(format!("listing tc filters: {e}")))?
                    .contains(&ours),
                _ => tcx_program_ids(index, hook)
                    .map_err(|e| query_failed(format!("querying TCX programs: {e}")))?
                    .contains(&ours),
            };
            if !present {
                lost.push(label);
            }
        }
        Ok(lost)
    }

    /// Names of the interfaces something is attached to, sorted.
    pub fn attached(&self) -> Vec<String> {
        self.attachments.keys().cloned().collect()
    }
}

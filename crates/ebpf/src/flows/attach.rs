//! Attaching the capture to interfaces and detaching it: one TCX link per direction (netlink
//! clsact filters before Linux 6.6), or one `AF_PACKET` socket per interface carrying the
//! socket filter.

use std::os::fd::{AsFd, OwnedFd};

use aya::{
    programs::{
        tc::{SchedClassifierLinkId, TcAttachType},
        SchedClassifier, SocketFilter,
    },
    util::KernelVersion,
};

use super::{
    map_err, missing, AttachDirection, FlowCapture, FlowSource, MAP_SKDIRS, PROG_SOCKET,
    PROG_TC_EGRESS, PROG_TC_INGRESS,
};
use crate::load::{is_permission_error, net_attach_error, EbpfError, RAW_SOCKET_CAPS_HINT};
use crate::sys::packet::{bind_packet_socket, open_packet_socket};

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
        let legacy = KernelVersion::current().is_ok_and(|v| v < KernelVersion::new(6, 6, 0));
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
            if legacy {
                // Netlink attach needs the clsact qdisc; "already there" is fine.
                let _ = aya::programs::tc::qdisc_add_clsact(ifname);
            }
            let target = format!("interface {ifname} ({label})");
            let prog: &mut SchedClassifier = match self.ebpf.program_mut(name) {
                Some(p) => p
                    .try_into()
                    .map_err(|e| missing(format!("program {name}: {e}")))?,
                None => return Err(missing(format!("no program named {name}"))),
            };
            match prog.attach(ifname, ty) {
                Ok(id) => *slot = Some(id),
                Err(e) => result = Err(net_attach_error(name, target, e)),
            }
        }
        if ingress.is_some() || egress.is_some() {
            self.attachments
                .insert(ifname.to_owned(), Attachment::Tc { ingress, egress });
        }
        result
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

    /// Names of the interfaces something is attached to, sorted.
    pub fn attached(&self) -> Vec<String> {
        self.attachments.keys().cloned().collect()
    }
}

/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Shared layout of the network-flows capture: flows.bpf.c writes these,
 * crates/ebpf/src/flows/abi.rs mirrors them with #[repr(C)] structs and
 * tests/layout.rs checks the mirror against this header (sizeof/offsetof).
 *
 * This header includes nothing: the includer provides __u8.. __u64
 * (vmlinux.h on the eBPF side, <linux/types.h> for plain C).
 */
#ifndef TAPLINE_FLOWS_H
#define TAPLINE_FLOWS_H

/* flow_key.family */
#define FLOW_FAMILY_OTHER 0 /* not IP: dst_port holds the EtherType, addresses are zero */
#define FLOW_FAMILY_IPV4 4  /* addresses are IPv4-mapped IPv6 (::ffff:a.b.c.d) */
#define FLOW_FAMILY_IPV6 6

/* flow_key.direction */
#define FLOW_DIR_INGRESS 0
#define FLOW_DIR_EGRESS 1

/* Bits of the `direction_mask` global and of `tapline_skdirs` values. */
#define FLOW_DIR_MASK_INGRESS 1
#define FLOW_DIR_MASK_EGRESS 2

/* Index of the only element of the per-CPU `tapline_lost` array. */
#define FLOW_LOST_RINGBUF 0

/*
 * Hash key: one flow seen on one interface in one direction.
 * Addresses are in network byte order, ports in host byte order. For ICMP and
 * ICMPv6, src_port is 0 and dst_port is (type << 8) | code (the NetFlow/IPFIX
 * convention). For non-first IPv4 fragments and protocols without ports both
 * ports are 0. All padding is explicit and zeroed so that keys hash equal.
 */
struct tapline_flow_key {
	__u8 src_addr[16];
	__u8 dst_addr[16];
	__u16 src_port;
	__u16 dst_port;
	__u8 protocol;  /* IP protocol number (IPPROTO_*), 0 for non-IP */
	__u8 family;    /* FLOW_FAMILY_* */
	__u8 direction; /* FLOW_DIR_* */
	__u8 _pad;
	__u32 ifindex;
};

/* Per-CPU value of the flows hash map. */
struct tapline_flow_stats {
	__u64 bytes;     /* sum of skb->len (L2 frame, like the interface counters) */
	__u64 packets;   /* skbs (a GSO super-packet counts once, like the interface counters) */
	__u64 first_ns;  /* bpf_ktime_get_ns() of the first packet (CLOCK_MONOTONIC) */
	__u64 last_ns;   /* latest packet, CLOCK_MONOTONIC_COARSE (tick resolution) */
	__u16 tcp_flags; /* OR of TCP flags, bit 8 is NS, bits 0..7 as in the TCP header */
	__u8 _pad[6];
};

/* Ring buffer record: a packet whose flow did not fit in the full hash map. */
struct tapline_flow_event {
	struct tapline_flow_key key;
	__u32 _pad;
	struct tapline_flow_stats stats;
};

/*
 * One slot of the per-CPU flow cache `tapline_cache` (same layout as the ring buffer record:
 * `epoch` sits in its padding). A slot belongs to the flow in `key` for the epoch `epoch` only:
 * a slot whose epoch is not the current one, or whose `stats.packets` is 0, is free.
 */
struct tapline_flow_slot {
	struct tapline_flow_key key;
	__u32 epoch;
	struct tapline_flow_stats stats;
};

#endif /* TAPLINE_FLOWS_H */

// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * Network-flows capture.
 *
 * Two attach points share one accounting routine:
 *   - tapline_tc_in / tapline_tc_out: tc clsact (TCX) programs, one per direction;
 *   - tapline_sock: socket filter for an AF_PACKET socket bound to one interface
 *     (ETH_P_ALL); it derives the direction from skb->pkt_type and returns 0 so
 *     that the capture socket itself never queues a copy of the packet.
 *
 * Every packet is parsed (Ethernet [+ one VLAN tag] -> IPv4/IPv6 [+ extension
 * headers] -> TCP/UDP/ICMP/ICMPv6/other) and added to its flow in the per-CPU
 * hash `tapline_flows`. When that map is full, the packet's flow (key plus this
 * packet's stats) goes to the ring buffer `tapline_ring` instead; when the ring
 * buffer is full too, the per-CPU counter `tapline_lost` is incremented.
 *
 * The programs never modify the packet and always let it through (fail open).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "flows.h"

#define TC_ACT_UNSPEC (-1)
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define PACKET_OUTGOING 4
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define MAX_IPV6_EXT_HEADERS 8
/* IPv6 next-header values (macros in <linux/in6.h>, absent from vmlinux.h) */
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_ICMPV6 58
#define IPPROTO_DSTOPTS 60

/* Configuration, set by userspace before load (read-only for the programs). */
/* Keep 1 packet in `sampling` (random); bytes and packets are multiplied by `sampling` here,
 * in the kernel, so the map always holds estimates of the true totals. 0 and 1 keep all. */
const volatile __u32 sampling = 1;
/* FLOW_DIR_MASK_* bits of the directions to account. */
const volatile __u32 direction_mask = FLOW_DIR_MASK_INGRESS | FLOW_DIR_MASK_EGRESS;
/* Account frames that are not IPv4/IPv6 (ARP, LLDP...) as FLOW_FAMILY_OTHER flows. */
const volatile __u32 capture_non_ip = 1;
/* 256-bit set of the IP protocol numbers to account (bit p of word p / 64). */
const volatile __u64 protocol_set[4] = { ~0ULL, ~0ULL, ~0ULL, ~0ULL };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 5000); /* FlowsKernelConfig::max_flows */
	__type(key, struct tapline_flow_key);
	__type(value, struct tapline_flow_stats);
} tapline_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* FlowsKernelConfig::ring_buffer_bytes */
} tapline_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} tapline_lost SEC(".maps");

/* Socket filter only: ifindex -> FLOW_DIR_MASK_* the user attached for that interface. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} tapline_skdirs SEC(".maps");

/* The packet being accounted. tc programs read its linear data directly (`data`, `end`), at a
 * fraction of the cost of a helper call; socket filters may not (both NULL), and headers
 * outside the linear area still go through bpf_skb_load_bytes. */
struct packet {
	struct __sk_buff *skb;
	void *data;
	void *end;
};

/* Copies `len` bytes at `off` into `to`; 0 on success. */
static __always_inline int load(const struct packet *pkt, __u32 off, void *to, __u32 len)
{
	if (pkt->data && off <= 1024 && pkt->data + off + len <= pkt->end) {
		__builtin_memcpy(to, pkt->data + off, len);
		return 0;
	}
	return bpf_skb_load_bytes(pkt->skb, off, to, len);
}

static __always_inline int protocol_wanted(__u8 proto)
{
	return (protocol_set[proto >> 6] >> (proto & 63)) & 1;
}

/* Fills the L4 part of the key (ports, TCP flags) from the header at `off`. */
static __always_inline void parse_l4(const struct packet *pkt, __u32 off, struct tapline_flow_key *key,
				     __u16 *tcp_flags)
{
	__u8 hdr[14];

	switch (key->protocol) {
	case IPPROTO_TCP:
		if (load(pkt, off, hdr, 14) < 0)
			return;
		key->src_port = ((__u16)hdr[0] << 8) | hdr[1];
		key->dst_port = ((__u16)hdr[2] << 8) | hdr[3];
		*tcp_flags = ((__u16)(hdr[12] & 1) << 8) | hdr[13];
		return;
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
	case IPPROTO_SCTP:
		if (load(pkt, off, hdr, 4) < 0)
			return;
		key->src_port = ((__u16)hdr[0] << 8) | hdr[1];
		key->dst_port = ((__u16)hdr[2] << 8) | hdr[3];
		return;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (load(pkt, off, hdr, 2) < 0)
			return;
		key->dst_port = ((__u16)hdr[0] << 8) | hdr[1];
		return;
	}
}

/* Returns 0 when the packet is to be accounted with `key` (and `tcp_flags`). */
static __always_inline int parse(const struct packet *pkt, struct tapline_flow_key *key, __u16 *tcp_flags)
{
	__u16 skb_proto = bpf_ntohs((__u16)pkt->skb->protocol);
	__u8 eth[4];
	__u8 first;
	__u32 l3 = 0;

	/* Ethernet (optionally one VLAN tag), or an L3 device whose packets start at the IP
	 * header: take the Ethernet interpretation when its EtherType matches skb->protocol. */
	if (load(pkt, 12, eth, 4) == 0) {
		__u16 h_proto = ((__u16)eth[0] << 8) | eth[1];

		if (h_proto == ETH_P_8021Q || h_proto == ETH_P_8021AD) {
			h_proto = ((__u16)eth[2] << 8) | eth[3];
			if (h_proto == ETH_P_IP || h_proto == ETH_P_IPV6) {
				skb_proto = h_proto;
				l3 = ETH_HLEN + 4;
			}
		} else if (h_proto == skb_proto) {
			l3 = ETH_HLEN;
		}
	}
	if (skb_proto == ETH_P_IP || skb_proto == ETH_P_IPV6) {
		if (load(pkt, l3, &first, 1) < 0)
			return -1;
		if ((first >> 4) != (skb_proto == ETH_P_IP ? 4 : 6)) {
			/* Not where Ethernet said: try an L3 device (no link-layer header). */
			l3 = 0;
			if (load(pkt, 0, &first, 1) < 0 ||
			    (first >> 4) != (skb_proto == ETH_P_IP ? 4 : 6))
				goto other;
		}
	}

	if (skb_proto == ETH_P_IP) {
		struct iphdr ip;

		if (load(pkt, l3, &ip, sizeof(ip)) < 0)
			return -1;
		key->family = FLOW_FAMILY_IPV4;
		key->protocol = ip.protocol;
		if (!protocol_wanted(ip.protocol))
			return -1;
		key->src_addr[10] = 0xff;
		key->src_addr[11] = 0xff;
		key->dst_addr[10] = 0xff;
		key->dst_addr[11] = 0xff;
		__builtin_memcpy(&key->src_addr[12], &ip.saddr, 4);
		__builtin_memcpy(&key->dst_addr[12], &ip.daddr, 4);
		/* Only the first fragment carries the L4 header. */
		if ((bpf_ntohs(ip.frag_off) & IP_OFFSET) == 0)
			parse_l4(pkt, l3 + (ip.ihl & 0xf) * 4, key, tcp_flags);
		return 0;
	}

	if (skb_proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		__u32 off = l3 + sizeof(struct ipv6hdr);
		__u8 nexthdr;
		int l4 = 1;

		if (load(pkt, l3, &ip6, sizeof(ip6)) < 0)
			return -1;
		key->family = FLOW_FAMILY_IPV6;
		__builtin_memcpy(key->src_addr, &ip6.saddr, 16);
		__builtin_memcpy(key->dst_addr, &ip6.daddr, 16);
		nexthdr = ip6.nexthdr;
		for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
			__u8 ext[4];

			if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING &&
			    nexthdr != IPPROTO_DSTOPTS && nexthdr != IPPROTO_FRAGMENT &&
			    nexthdr != IPPROTO_AH)
				break;
			/* The helper, not load(): two paths per header here would multiply
			 * the verifier's states past its limit; extension headers are rare. */
			if (bpf_skb_load_bytes(pkt->skb, off, ext, 4) < 0) {
				l4 = 0;
				break;
			}
			if (nexthdr == IPPROTO_FRAGMENT) {
				/* Non-first fragments have no L4 header. */
				if (((((__u16)ext[2] << 8) | ext[3]) & 0xfff8) != 0)
					l4 = 0;
				off += 8;
			} else if (nexthdr == IPPROTO_AH) {
				off += ((__u32)ext[1] + 2) * 4;
			} else {
				off += ((__u32)ext[1] + 1) * 8;
			}
			nexthdr = ext[0];
		}
		key->protocol = nexthdr;
		if (!protocol_wanted(nexthdr))
			return -1;
		if (l4)
			parse_l4(pkt, off, key, tcp_flags);
		return 0;
	}

other:
	if (!capture_non_ip)
		return -1;
	key->family = FLOW_FAMILY_OTHER;
	key->dst_port = bpf_ntohs((__u16)pkt->skb->protocol);
	return 0;
}

static __always_inline void account(const struct packet *pkt, __u8 direction)
{
	struct tapline_flow_key key;
	struct tapline_flow_stats *st;
	__u16 tcp_flags = 0;
	__u64 scale = 1;
	__u64 bytes, now;

	if (!(direction_mask & (1U << direction)))
		return;
	if (sampling > 1) {
		if (bpf_get_prandom_u32() % sampling != 0)
			return;
		scale = sampling;
	}

	__builtin_memset(&key, 0, sizeof(key));
	if (parse(pkt, &key, &tcp_flags) < 0)
		return;
	key.direction = direction;
	key.ifindex = pkt->skb->ifindex;

	bytes = (__u64)pkt->skb->len * scale;
	/* Every packet moves last_ns: the coarse clock (one tick, <= 4 ms) costs a fraction of
	 * bpf_ktime_get_ns(). A flow's first packet takes the precise clock, because userspace
	 * compares first_ns across interfaces to find which one saw the flow first. */
	now = bpf_ktime_get_coarse_ns();

	st = bpf_map_lookup_elem(&tapline_flows, &key);
	if (!st) {
		now = bpf_ktime_get_ns();
		struct tapline_flow_stats init = {
			.bytes = bytes,
			.packets = scale,
			.first_ns = now,
			.last_ns = now,
			.tcp_flags = tcp_flags,
		};
		long err = bpf_map_update_elem(&tapline_flows, &key, &init, BPF_NOEXIST);

		if (err == 0)
			return;
		/* Another CPU created the flow meanwhile: add to this CPU's (zeroed) slot. */
		if (err == -17 /* EEXIST */)
			st = bpf_map_lookup_elem(&tapline_flows, &key);
		if (!st) {
			/* The map is full: hand this packet's flow to userspace directly. */
			struct tapline_flow_event *ev = bpf_ringbuf_reserve(&tapline_ring, sizeof(*ev), 0);

			if (!ev) {
				__u32 idx = FLOW_LOST_RINGBUF;
				__u64 *lost = bpf_map_lookup_elem(&tapline_lost, &idx);

				if (lost)
					*lost += 1;
				return;
			}
			__builtin_memcpy(&ev->key, &key, sizeof(key));
			ev->_pad = 0;
			__builtin_memcpy(&ev->stats, &init, sizeof(init));
			bpf_ringbuf_submit(ev, 0);
			return;
		}
	}
	/* Per-CPU value: no other writer on this CPU while we run. */
	st->bytes += bytes;
	st->packets += scale;
	if (st->first_ns == 0)
		st->first_ns = bpf_ktime_get_ns();
	if (now > st->last_ns)
		st->last_ns = now;
	st->tcp_flags |= tcp_flags;
}

SEC("classifier")
int tapline_tc_in(struct __sk_buff *skb)
{
	struct packet pkt = { skb, (void *)(long)skb->data, (void *)(long)skb->data_end };

	account(&pkt, FLOW_DIR_INGRESS);
	return TC_ACT_UNSPEC;
}

SEC("classifier")
int tapline_tc_out(struct __sk_buff *skb)
{
	struct packet pkt = { skb, (void *)(long)skb->data, (void *)(long)skb->data_end };

	account(&pkt, FLOW_DIR_EGRESS);
	return TC_ACT_UNSPEC;
}

SEC("socket")
int tapline_sock(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	__u32 *dirs = bpf_map_lookup_elem(&tapline_skdirs, &ifindex);
	__u8 direction = skb->pkt_type == PACKET_OUTGOING ? FLOW_DIR_EGRESS : FLOW_DIR_INGRESS;

	struct packet pkt = { skb, NULL, NULL };

	if (dirs && (*dirs & (1U << direction)))
		account(&pkt, direction);
	/* 0: this capture socket keeps no copy; other sockets and the host are unaffected. */
	return 0;
}

char LICENSE[] SEC("license") = "GPL";

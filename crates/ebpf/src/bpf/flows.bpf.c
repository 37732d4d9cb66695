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
 * headers] -> TCP/UDP/ICMP/ICMPv6/other; Ethernet + IPv4/IPv6 + TCP/UDP in the tc
 * programs' linear data by parse_fast(), with direct word loads) into a flow key,
 * and added to its flow in one of three places, exactly one per packet:
 *   1. the per-CPU direct-mapped cache `tapline_cache` (an array: the verifier
 *      inlines its lookup; a multiplicative hash of the key picks the slot). A free
 *      slot is taken by the first flow that hashes to it and stays that flow's until
 *      the epoch ends;
 *   2. otherwise the per-CPU hash of the epoch's parity, `tapline_flows0/1`;
 *   3. when that map is full, the ring buffer `tapline_ring` (key plus this packet's
 *      stats); when the ring buffer is full too, the per-CPU counter `tapline_lost`.
 *
 * Epochs make the eviction exact. `tapline_epoch` (written by userspace only) selects
 * one half of the cache slots and one of the two hash maps. To evict, userspace
 * writes epoch + 1, then waits for an RCU grace period (an update of a map-in-map
 * waits for one before returning): every program run that could still have read the
 * old epoch has then finished, so nothing writes the closed epoch's slots and hash map
 * while userspace reads the slots tagged with that epoch and drains that map. A slot
 * tagged with an older epoch is free: userspace never writes the cache.
 *
 * Clocks: a flow's first packet on a CPU in an epoch (a slot taken, an entry created)
 * takes bpf_ktime_get_ns(), because userspace compares first_ns across interfaces.
 * last_ns takes CLOCK_MONOTONIC_COARSE through a per-CPU memo refreshed when
 * bpf_jiffies64() (inlined into one load) moves: at most one clock helper call per
 * tick and CPU; the memo can lag the coarse clock by one more tick.
 *
 * Cost (`scripts/bench flows-prog-cost`: BPF_PROG_TEST_RUN of a 64-byte UDP packet of a
 * known flow, minus an empty classifier): 8-20 ns per run through the cache against 43-50 ns
 * through the hash map, whose lookup (a call and a jhash of the 44-byte key) is ~25 ns of it;
 * parsing ~12 ns, the coarse clock helper ~12 ns, the counter updates ~10 ns. Live, both
 * paths cost ~35 ns above an empty classifier: the cache is kept for the exact eviction.
 * Figures with their dates and commits: docs/performance.md; the design: docs/ebpf-design.md.
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

/* Slots of the flow cache per CPU and epoch parity (a power of two). */
const volatile __u32 cache_slots = 1024;

/* The flows that did not get a cache slot, one map per epoch parity. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 5000); /* FlowsKernelConfig::max_flows */
	__type(key, struct tapline_flow_key);
	__type(value, struct tapline_flow_stats);
} tapline_flows0 SEC(".maps"), tapline_flows1 SEC(".maps");

/* Per-CPU direct-mapped flow cache: slots [0, cache_slots) for even epochs, then odd ones. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2048); /* 2 * cache_slots */
	__type(key, __u32);
	__type(value, struct tapline_flow_slot);
} tapline_cache SEC(".maps");

/* The current epoch, written only by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tapline_epoch SEC(".maps");

/* Per-CPU memo of the coarse clock: its value read during the jiffy `jiffies`. */
struct flow_clock {
	__u64 jiffies;
	__u64 ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flow_clock);
} tapline_clock SEC(".maps");

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

/* A word of the flow key as the hash, the comparison and the copies read it; may alias the key's
 * own fields (it is the same memory). */
typedef __u64 __attribute__((may_alias)) key_word;

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
			/* TPID, TCI (eth[2..4]), then the inner EtherType */
			if (load(pkt, 16, eth, 2) == 0)
				h_proto = ((__u16)eth[0] << 8) | eth[1];
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

/*
 * The common case, read with direct wide loads: Ethernet + IPv4 without options or IPv6
 * without extension headers + TCP or UDP, all headers in the linear data. Gives the same key
 * as parse() for these packets. Returns 0 when it filled the whole `key` (but direction and
 * ifindex), 1 when the packet needs parse(), -1 when it is not to be accounted.
 */
static __always_inline int parse_fast(const struct packet *pkt, key_word *w, __u16 *tcp_flags)
{
	void *data = pkt->data;
	void *end = pkt->end;
	__u16 h_proto;
	__u8 proto;
	void *l4;

	if (!data || data + ETH_HLEN > end)
		return 1;
	h_proto = *(__u16 *)(data + 12);
	if (h_proto != (__u16)pkt->skb->protocol)
		return 1;
	if (h_proto == bpf_htons(ETH_P_IP)) {
		/* IPv4, 20-byte header, 14 bytes of L4 (enough for TCP flags) */
		if (data + ETH_HLEN + 20 + 14 > end || *(__u8 *)(data + ETH_HLEN) != 0x45)
			return 1;
		proto = *(__u8 *)(data + ETH_HLEN + 9);
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
			return 1;
		if (!protocol_wanted(proto))
			return -1;
		/* ::ffff:a.b.c.d as two little-endian words: 8 zero bytes, then 00 00 ff ff a b c d */
		w[0] = 0;
		w[1] = 0xffff0000ULL | ((__u64)*(__u32 *)(data + ETH_HLEN + 12) << 32);
		w[2] = 0;
		w[3] = 0xffff0000ULL | ((__u64)*(__u32 *)(data + ETH_HLEN + 16) << 32);
		w[4] = ((__u64)proto << 32) | ((__u64)FLOW_FAMILY_IPV4 << 40);
		/* Only the first fragment carries the L4 header. */
		if (*(__u16 *)(data + ETH_HLEN + 6) & bpf_htons(IP_OFFSET))
			return 0;
		l4 = data + ETH_HLEN + 20;
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		void *ip6 = data + ETH_HLEN;

		if (ip6 + 40 + 14 > end || (*(__u8 *)ip6 >> 4) != 6)
			return 1;
		proto = *(__u8 *)(ip6 + 6);
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
			return 1;
		if (!protocol_wanted(proto))
			return -1;
		w[0] = *(__u64 *)(ip6 + 8);
		w[1] = *(__u64 *)(ip6 + 16);
		w[2] = *(__u64 *)(ip6 + 24);
		w[3] = *(__u64 *)(ip6 + 32);
		w[4] = ((__u64)proto << 32) | ((__u64)FLOW_FAMILY_IPV6 << 40);
		l4 = ip6 + 40;
	} else {
		return 1;
	}
	/* src_port, dst_port: the first two big-endian words of TCP and UDP headers */
	w[4] |= (__u64)bpf_ntohs(*(__u16 *)l4) | ((__u64)bpf_ntohs(*(__u16 *)(l4 + 2)) << 16);
	if (proto == IPPROTO_TCP)
		*tcp_flags = bpf_ntohs(*(__u16 *)(l4 + 12)) & 0x1ff;
	return 0;
}

/* A multiplicative hash of the 44-byte key, for the cache index (collisions only cost speed). */
static __always_inline __u32 key_hash(const key_word *w)
{
	__u64 h = w[0] * 0x9E3779B97F4A7C15ULL + w[1] * 0xC2B2AE3D27D4EB4FULL +
		  w[2] * 0x165667B19E3779F9ULL + w[3] * 0xD6E8FEB86659FD93ULL +
		  w[4] * 0xFF51AFD7ED558CCDULL + (w[5] & 0xffffffff) * 0xC4CEB9FE1A85EC53ULL;

	/* fold the high half in, then let a multiplication spread every bit to the high half */
	return ((h ^ (h >> 32)) * 0x9E3779B97F4A7C15ULL) >> 32;
}

static __always_inline int key_equal(const key_word *a, const key_word *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4]) |
		((__u32)a[5] ^ (__u32)b[5])) == 0;
}

/* CLOCK_MONOTONIC_COARSE, read at most once per jiffy and CPU: bpf_jiffies64() is inlined into
 * one load, the clock helper is a call. The memo may lag one tick behind the coarse clock when
 * it was filled between the jiffies increment and the timekeeping update of the same tick. */
static __always_inline __u64 coarse_now(void)
{
	__u32 zero = 0;
	struct flow_clock *c = bpf_map_lookup_elem(&tapline_clock, &zero);
	__u64 j = bpf_jiffies64();

	if (!c)
		return bpf_ktime_get_coarse_ns();
	if (c->jiffies != j) {
		c->ns = bpf_ktime_get_coarse_ns();
		c->jiffies = j;
	}
	return c->ns;
}

/* Accounts a packet whose flow has no cache slot in the epoch's hash map `flows`; when that is
 * full, the packet goes to the ring buffer; when that is full too, to `tapline_lost`. */
#define ACCOUNT_IN_MAP(flows)                                                                     \
	do {                                                                                      \
		struct tapline_flow_stats *st = bpf_map_lookup_elem(flows, kp);                 \
		if (!st) {                                                                        \
			__u64 first = bpf_ktime_get_ns();                                         \
			struct tapline_flow_stats init = {                                        \
				.bytes = bytes,                                                   \
				.packets = scale,                                                 \
				.first_ns = first,                                                \
				.last_ns = first,                                                 \
				.tcp_flags = tcp_flags,                                           \
			};                                                                        \
			long err = bpf_map_update_elem(flows, kp, &init, BPF_NOEXIST);          \
			if (err == 0)                                                             \
				return;                                                           \
			/* Another CPU created the flow meanwhile: add to this CPU's slot. */    \
			if (err == -17 /* EEXIST */)                                              \
				st = bpf_map_lookup_elem(flows, kp);                            \
			if (!st) {                                                                \
				overflow(kp, &init);                                            \
				return;                                                           \
			}                                                                         \
		}                                                                                 \
		/* Per-CPU value: no other writer on this CPU while we run. */                    \
		st->bytes += bytes;                                                               \
		st->packets += scale;                                                             \
		if (st->first_ns == 0)                                                            \
			st->first_ns = bpf_ktime_get_ns();                                        \
		if (now > st->last_ns)                                                            \
			st->last_ns = now;                                                        \
		st->tcp_flags |= tcp_flags;                                                       \
	} while (0)

/* The map is full: hands this packet's flow to userspace directly, or counts it as lost. */
static __always_inline void overflow(const struct tapline_flow_key *key,
				     const struct tapline_flow_stats *init)
{
	struct tapline_flow_event *ev = bpf_ringbuf_reserve(&tapline_ring, sizeof(*ev), 0);

	if (!ev) {
		__u32 idx = FLOW_LOST_RINGBUF;
		__u64 *lost = bpf_map_lookup_elem(&tapline_lost, &idx);

		if (lost)
			*lost += 1;
		return;
	}
	__builtin_memcpy(&ev->key, key, sizeof(*key));
	ev->_pad = 0;
	__builtin_memcpy(&ev->stats, init, sizeof(*init));
	bpf_ringbuf_submit(ev, 0);
}

static __always_inline void account(const struct packet *pkt, __u8 direction)
{
	/* The key as 6 words (44 bytes used), for the hash, the comparison and the copies. */
	key_word w[6];
	struct tapline_flow_key *kp = (struct tapline_flow_key *)w;
	struct tapline_flow_slot *slot;
	__u16 tcp_flags = 0;
	__u64 scale = 1;
	__u64 bytes, now;
	__u32 zero = 0, idx, epoch;
	__u32 *ep;
	int r;

	if (!(direction_mask & (1U << direction)))
		return;
	if (sampling > 1) {
		if (bpf_get_prandom_u32() % sampling != 0)
			return;
		scale = sampling;
	}

	w[5] = 0;
	r = parse_fast(pkt, w, &tcp_flags);
	if (r > 0) {
		__builtin_memset(w, 0, sizeof(w));
		r = parse(pkt, kp, &tcp_flags);
	}
	if (r < 0)
		return;
	kp->direction = direction;
	kp->ifindex = pkt->skb->ifindex;
	bytes = (__u64)pkt->skb->len * scale;

	ep = bpf_map_lookup_elem(&tapline_epoch, &zero);
	epoch = ep ? *ep : 0;
	idx = (key_hash(w) & (cache_slots - 1)) + (epoch & 1 ? cache_slots : 0);
	slot = bpf_map_lookup_elem(&tapline_cache, &idx);
	if (slot) {
		key_word *sk = (key_word *)&slot->key;

		if (slot->epoch == epoch && key_equal(sk, w)) {
			/* Per-CPU slot: no other writer on this CPU while we run. */
			now = coarse_now();
			slot->stats.bytes += bytes;
			slot->stats.packets += scale;
			if (now > slot->stats.last_ns)
				slot->stats.last_ns = now;
			slot->stats.tcp_flags |= tcp_flags;
			return;
		}
		if (slot->epoch != epoch || slot->stats.packets == 0) {
			/* A free slot: this is the flow's first packet on this CPU in this epoch
			 * (slots are never taken back within an epoch), so the precise clock. */
			__u64 first = bpf_ktime_get_ns();

			sk[0] = w[0];
			sk[1] = w[1];
			sk[2] = w[2];
			sk[3] = w[3];
			sk[4] = w[4];
			slot->key.ifindex = kp->ifindex;
			slot->epoch = epoch;
			slot->stats.bytes = bytes;
			slot->stats.packets = scale;
			slot->stats.first_ns = first;
			slot->stats.last_ns = first;
			slot->stats.tcp_flags = tcp_flags;
			return;
		}
	}
	/* The slot belongs to another flow until the epoch ends. */
	now = coarse_now();
	if (epoch & 1)
		ACCOUNT_IN_MAP(&tapline_flows1);
	else
		ACCOUNT_IN_MAP(&tapline_flows0);
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

// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * DNS answer sniffer for the `rdns` processor's `mode: sniff`.
 *
 * tapline_dns is a socket filter for an AF_PACKET (ETH_P_ALL) socket. It keeps
 * only UDP datagrams from source port 53 (DNS answers) over IPv4 and IPv6, and
 * returns 0 for everything else, so the capture socket never queues a copy of
 * any other packet: userspace reads answers only, at no cost for the rest.
 *
 * Frames are Ethernet (optionally one in-band VLAN tag) or, on L3 devices (tun,
 * wireguard), start at the IP header; like flows.bpf.c, the Ethernet reading is
 * taken when its EtherType matches skb->protocol. Non-first fragments carry no
 * UDP header and are dropped.
 *
 * Loopback hands every packet to ETH_P_ALL sockets twice (outgoing, then
 * incoming): the outgoing copy is dropped there, so each answer is read once.
 *
 * A socket filter only decides what this one socket receives; the traffic
 * itself is never affected (fail open).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define PACKET_OUTGOING 4
#define LOOPBACK_IFINDEX 1 /* `lo` has this index in every network namespace */
#define IP_OFFSET 0x1FFF
#define DNS_PORT 53
#define MAX_IPV6_EXT_HEADERS 6
/* IPv6 next-header values (macros in <linux/in6.h>, absent from vmlinux.h) */
#define IPPROTO_HOPOPTS 0
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_DSTOPTS 60

/* Offset of the UDP header, or -1 when the packet is not a first (or only) fragment of a
 * UDP datagram over IPv4 / IPv6. */
static __always_inline long udp_offset(struct __sk_buff *skb)
{
	__u16 proto = bpf_ntohs((__u16)skb->protocol);
	__u8 eth[4];
	__u8 first;
	__u32 l3 = 0;

	if (proto != ETH_P_IP && proto != ETH_P_IPV6)
		return -1;
	if (bpf_skb_load_bytes(skb, 12, eth, 4) == 0) {
		__u16 h_proto = ((__u16)eth[0] << 8) | eth[1];
		__u16 inner = ((__u16)eth[2] << 8) | eth[3];

		if ((h_proto == ETH_P_8021Q || h_proto == ETH_P_8021AD) && inner == proto)
			l3 = ETH_HLEN + 4;
		else if (h_proto == proto)
			l3 = ETH_HLEN;
	}
	if (bpf_skb_load_bytes(skb, l3, &first, 1) < 0)
		return -1;
	if ((first >> 4) != (proto == ETH_P_IP ? 4 : 6)) {
		/* Not where Ethernet said: an L3 device, no link-layer header. */
		l3 = 0;
		if (bpf_skb_load_bytes(skb, 0, &first, 1) < 0 ||
		    (first >> 4) != (proto == ETH_P_IP ? 4 : 6))
			return -1;
	}

	if (proto == ETH_P_IP) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, l3, &ip, sizeof(ip)) < 0)
			return -1;
		if (ip.protocol != IPPROTO_UDP || ip.ihl < 5 ||
		    (bpf_ntohs(ip.frag_off) & IP_OFFSET) != 0)
			return -1;
		return l3 + ip.ihl * 4;
	}

	__u32 off = l3 + sizeof(struct ipv6hdr);
	__u8 nexthdr;

	if (bpf_skb_load_bytes(skb, l3 + offsetof(struct ipv6hdr, nexthdr), &nexthdr, 1) < 0)
		return -1;
	for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
		__u8 ext[4];

		if (nexthdr != IPPROTO_HOPOPTS && nexthdr != IPPROTO_ROUTING &&
		    nexthdr != IPPROTO_DSTOPTS && nexthdr != IPPROTO_FRAGMENT)
			break;
		if (bpf_skb_load_bytes(skb, off, ext, 4) < 0)
			return -1;
		if (nexthdr == IPPROTO_FRAGMENT) {
			if (((((__u16)ext[2] << 8) | ext[3]) & 0xfff8) != 0)
				return -1;
			off += 8;
		} else {
			off += ((__u32)ext[1] + 1) * 8;
		}
		nexthdr = ext[0];
	}
	return nexthdr == IPPROTO_UDP ? off : -1;
}

SEC("socket")
int tapline_dns(struct __sk_buff *skb)
{
	__be16 sport;
	long off;

	if (skb->pkt_type == PACKET_OUTGOING && skb->ifindex == LOOPBACK_IFINDEX)
		return 0;
	off = udp_offset(skb);
	if (off < 0 || off > 1024)
		return 0;
	if (bpf_skb_load_bytes(skb, off, &sport, sizeof(sport)) < 0)
		return 0;
	if (sport != bpf_htons(DNS_PORT))
		return 0;
	/* The whole datagram: EDNS answers can exceed 512 bytes, and a cut answer teaches
	 * nothing. */
	return skb->len;
}

char LICENSE[] SEC("license") = "GPL";

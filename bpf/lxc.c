// SPDX-License-Identifier: GPL-2.0
/* Identity-based policy in tc (Cilium bpf/bpf_lxc.c and the policy part of bpf/bpf_host.c /
 * bpf_wireguard.c, IPv4 only, heavily reduced). One copy is loaded per node; its maps are that
 * node's (endpoints, connection tracking, policy, auth, flow events), filled by the harness and
 * the node's agent.
 *
 *   from_container  tc ingress of each local pod's host-side veth: the pod sent the packet.
 *                   Egress policy of the source pod; for a local destination also its ingress
 *                   policy, then delivery straight into the destination pod (bpf_redirect_peer).
 *   from_network    tc ingress of the node's WireGuard device (L3, no Ethernet header) and
 *   from_netdev     of its underlay device (Ethernet): ingress policy of the local destination;
 *                   the kernel then routes the packet to the pod's veth.
 *
 * A connection is judged by its first packet; connection tracking lets the rest of it and its
 * replies through. Verdicts: forward, drop (POLICY_DENIED, AUTH_REQUIRED), or redirect to the
 * node's L7 proxy (skb mark MARK_MAGIC_TO_PROXY | port << 16, picked up by the node's TPROXY
 * rule). Each drop and each new connection is sent to user space as a flow event. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "meshbench.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ipcache_key);
	__type(value, struct remote_endpoint_info);
} mb_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct endpoint_info);
} mb_lxc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
} mb_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct auth_key);
	__type(value, struct auth_info);
} mb_auth SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct ct4_key);
	__type(value, struct ct4_entry);
} mb_ct4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} mb_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct l7lb_key);
	__type(value, struct l7lb_entry);
} mb_l7lb SEC(".maps");

/* Packets per verdict (index: 0 forwarded, 1 dropped, 2 redirected), for quick checks. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} mb_verdicts SEC(".maps");

struct pkt {
	struct ct4_key t;
	__u32 len;
	__u8 tcp_flags;
};

static __always_inline int parse(struct __sk_buff *skb, __u32 l3, struct pkt *p)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + l3;

	if (skb->protocol != bpf_htons(ETH_P_IP) || (void *)(ip + 1) > end || ip->ihl != 5)
		return -1;
	__builtin_memset(p, 0, sizeof(*p));
	p->t.saddr = ip->saddr;
	p->t.daddr = ip->daddr;
	p->t.proto = ip->protocol;
	p->len = skb->len;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *th = (void *)(ip + 1);
		if ((void *)(th + 1) > end)
			return -1;
		p->t.sport = th->source;
		p->t.dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(ip + 1);
		if ((void *)(uh + 1) > end)
			return -1;
		p->t.sport = uh->source;
		p->t.dport = uh->dest;
	}
	return 0;
}

static __always_inline struct remote_endpoint_info *ipcache(__u32 ip)
{
	struct ipcache_key k = { .prefixlen = 32, .ip4 = ip };
	return bpf_map_lookup_elem(&mb_ipcache, &k);
}

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&mb_verdicts, &idx);
	if (v)
		*v += 1;
}

static __always_inline void emit(struct pkt *p, __u32 src_id, __u32 dst_id, __u8 verdict, __u16 reason, __u8 dir, __u8 obs, __u16 proxy_port, __u32 ifindex)
{
	struct flow_event *e = bpf_ringbuf_reserve(&mb_events, sizeof(*e), 0);
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->saddr = p->t.saddr;
	e->daddr = p->t.daddr;
	e->sport = bpf_ntohs(p->t.sport);
	e->dport = bpf_ntohs(p->t.dport);
	e->src_identity = src_id;
	e->dst_identity = dst_id;
	e->proto = p->t.proto;
	e->verdict = verdict;
	e->direction = dir;
	e->obs_point = obs;
	e->drop_reason = reason;
	e->proxy_port = proxy_port;
	e->ifindex = ifindex;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
}

struct verdict {
	__u16 drop_reason; /* 0 = allowed */
	__u16 proxy_port;
	__u8 auth_type;
};

static __always_inline struct policy_entry *policy_lookup(__u32 ep_id, __u32 peer, struct pkt *p, __u8 egress)
{
	struct policy_key k = { .ep_id = ep_id, .sec_label = peer, .dport = p->t.dport, .protocol = p->t.proto, .egress = egress };
	struct policy_entry *e;

	if (p->t.proto == IPPROTO_TCP || p->t.proto == IPPROTO_UDP) {
		if ((e = bpf_map_lookup_elem(&mb_policy, &k)))
			return e;
		k.sec_label = 0;
		if ((e = bpf_map_lookup_elem(&mb_policy, &k)))
			return e;
		k.sec_label = peer;
	}
	k.dport = 0;
	k.protocol = 0;
	if ((e = bpf_map_lookup_elem(&mb_policy, &k)))
		return e;
	k.sec_label = 0;
	return bpf_map_lookup_elem(&mb_policy, &k);
}

/* The policy of one endpoint for one direction; `local`/`remote` are identities seen from it. */
static __always_inline struct verdict judge(struct endpoint_info *ep, __u8 egress, __u32 local, __u32 remote, __u16 remote_node, struct pkt *p)
{
	struct verdict v = {};
	struct policy_entry *e;

	if (!(ep->flags & (egress ? EP_F_EGRESS_ENFORCED : EP_F_INGRESS_ENFORCED)))
		return v;
	e = policy_lookup(ep->ep_id, remote, p, egress);
	if (!e || e->deny) {
		v.drop_reason = DROP_POLICY_DENIED;
		return v;
	}
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, p->len);
	if (e->auth_type) {
		struct auth_key ak = { .local_sec_label = local, .remote_sec_label = remote, .remote_node_id = remote_node, .auth_type = e->auth_type };
		struct auth_info *ai = bpf_map_lookup_elem(&mb_auth, &ak);
		if (!ai || ai->expiration < bpf_ktime_get_ns()) {
			v.drop_reason = DROP_AUTH_REQUIRED;
			v.auth_type = e->auth_type;
			return v;
		}
	}
	v.proxy_port = e->proxy_port;
	return v;
}

/* Established connection (either direction)? Returns the entry's proxy port + 1, or 0 if new. */
static __always_inline int ct_lookup(struct pkt *p)
{
	struct ct4_key r = { .saddr = p->t.daddr, .daddr = p->t.saddr, .sport = p->t.dport, .dport = p->t.sport, .proto = p->t.proto };
	struct ct4_entry *e = bpf_map_lookup_elem(&mb_ct4, &p->t);

	if (e) {
		e->last_seen = bpf_ktime_get_ns();
		return 1 + e->proxy_port;
	}
	e = bpf_map_lookup_elem(&mb_ct4, &r);
	if (e) {
		e->last_seen = bpf_ktime_get_ns();
		return 1; /* replies never go to the proxy: it answers from its own socket */
	}
	return 0;
}

static __always_inline void ct_create(struct pkt *p, __u32 src_id, __u32 dst_id, __u16 proxy_port)
{
	struct ct4_entry e = { .last_seen = bpf_ktime_get_ns(), .src_identity = src_id, .dst_identity = dst_id, .proxy_port = proxy_port };
	bpf_map_update_elem(&mb_ct4, &p->t, &e, BPF_ANY);
}

static __always_inline int to_proxy(struct __sk_buff *skb, __u16 port)
{
	skb->mark = MARK_MAGIC_TO_PROXY | ((__u32)port << 16);
	count(2);
	return TC_ACT_OK;
}

static __always_inline int deliver_local(struct __sk_buff *skb, struct endpoint_info *dst)
{
	/* Into the destination pod, skipping the node's stack (Cilium: redirect_ep). The packet
	 * arrived from a pod with the gateway as destination MAC; give it the pod's own. */
	if (bpf_skb_store_bytes(skb, 0, dst->mac, 6, 0) < 0 || bpf_skb_store_bytes(skb, 6, dst->node_mac, 6, 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect_peer(dst->ifindex, 0);
}

/* What the first packet of a connection gets once judged: a drop (with its event), or a new
 * connection-tracking entry and a redirect to the proxy or a forward (with its event). Returns
 * TC_ACT_SHOT or the proxy redirect, or -1 when the caller delivers the packet itself. */
static __always_inline int enforce(struct __sk_buff *skb, struct pkt *p, struct verdict v, __u32 src_id, __u32 dst_id, __u8 dir, __u8 obs)
{
	if (v.drop_reason) {
		count(1);
		emit(p, src_id, dst_id, VERDICT_DROPPED, v.drop_reason, dir, obs, 0, skb->ifindex);
		return TC_ACT_SHOT;
	}
	ct_create(p, src_id, dst_id, v.proxy_port);
	if (v.proxy_port) {
		emit(p, src_id, dst_id, VERDICT_REDIRECTED, 0, dir, obs, v.proxy_port, skb->ifindex);
		return to_proxy(skb, v.proxy_port);
	}
	count(0);
	emit(p, src_id, dst_id, VERDICT_FORWARDED, 0, dir, obs, 0, skb->ifindex);
	return -1;
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	struct endpoint_info *src, *dst;
	struct remote_endpoint_info *ri;
	struct verdict v;
	struct pkt p;
	__u32 src_id, dst_id;
	__u16 dst_node = 0;
	__u8 dir = DIR_EGRESS;
	int ct, ret;

	if (parse(skb, ETH_HLEN, &p) < 0)
		return TC_ACT_OK; /* ARP and the like */
	src = bpf_map_lookup_elem(&mb_lxc, &p.t.saddr);
	if (!src)
		return TC_ACT_OK;
	dst = bpf_map_lookup_elem(&mb_lxc, &p.t.daddr);
	ct = ct_lookup(&p);
	if (ct) {
		count(0);
		if (ct > 1)
			return to_proxy(skb, ct - 1);
		return dst ? deliver_local(skb, dst) : TC_ACT_OK;
	}
	src_id = src->sec_identity;
	if (p.t.proto == IPPROTO_TCP) {
		/* A Service the node proxy balances (routes, traffic split): to the proxy, whose own
		 * connection to the chosen backend then goes through policy like any other. */
		struct l7lb_key lk = { .address = p.t.daddr, .dport = p.t.dport };
		struct l7lb_entry *lb = bpf_map_lookup_elem(&mb_l7lb, &lk);
		if (lb) {
			v = (struct verdict){ .proxy_port = lb->proxy_port };
			return enforce(skb, &p, v, src_id, 0, dir, OBS_FROM_ENDPOINT);
		}
	}
	ri = ipcache(p.t.daddr);
	dst_id = ri ? ri->sec_identity : IDENTITY_WORLD;
	if (ri)
		dst_node = ri->node_id;
	v = judge(src, 1, src_id, dst_id, dst_node, &p);
	if (!v.drop_reason && dst && !v.proxy_port) {
		/* Local destination: its ingress policy too (the peer is on this node: node id 0). */
		struct verdict in = judge(dst, 0, dst_id, src_id, 0, &p);
		v.drop_reason = in.drop_reason;
		v.proxy_port = in.proxy_port;
		if (in.drop_reason)
			dir = DIR_INGRESS;
	}
	ret = enforce(skb, &p, v, src_id, dst_id, dir, OBS_FROM_ENDPOINT);
	if (ret >= 0)
		return ret;
	return dst ? deliver_local(skb, dst) : TC_ACT_OK;
}

static __always_inline int from_outside(struct __sk_buff *skb, __u32 l3)
{
	struct endpoint_info *dst;
	struct remote_endpoint_info *ri;
	struct verdict v;
	struct pkt p;
	__u32 src_id;
	__u16 src_node = 0;
	int ct, ret;

	if (parse(skb, l3, &p) < 0)
		return TC_ACT_OK;
	dst = bpf_map_lookup_elem(&mb_lxc, &p.t.daddr);
	if (!dst)
		return TC_ACT_OK; /* for the node itself (WireGuard's own UDP, say) */
	ct = ct_lookup(&p);
	if (ct) {
		count(0);
		return ct > 1 ? to_proxy(skb, ct - 1) : TC_ACT_OK;
	}
	ri = ipcache(p.t.saddr);
	src_id = ri ? ri->sec_identity : IDENTITY_WORLD;
	if (ri)
		src_node = ri->node_id;
	v = judge(dst, 0, dst->sec_identity, src_id, src_node, &p);
	ret = enforce(skb, &p, v, src_id, dst->sec_identity, DIR_INGRESS, OBS_FROM_NETWORK);
	return ret >= 0 ? ret : TC_ACT_OK;
}

SEC("tc")
int from_network(struct __sk_buff *skb)
{
	return from_outside(skb, 0);
}

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	return from_outside(skb, ETH_HLEN);
}

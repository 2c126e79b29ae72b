// SPDX-License-Identifier: GPL-2.0
/* Socket-level load balancing (Cilium bpf/bpf_sock.c, IPv4 only): at connect() (TCP, connected
 * UDP) and sendmsg() (unconnected UDP) a Service VIP:port is rewritten to one backend chosen at
 * random, so no packet of the connection ever carries the VIP and no DNAT happens afterwards.
 * recvmsg() puts the VIP back as the source of UDP replies. Attached to a cgroup v2 directory:
 * every socket of every process below it goes through these hooks. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "meshbench.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
} mb_lb4_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct lb4_backend);
} mb_lb4_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct lb4_revnat_key);
	__type(value, struct lb4_revnat_entry);
} mb_lb4_revnat SEC(".maps");

/* Per backend id: how many sockets were sent to it (what the balance test reads). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} mb_lb4_hits SEC(".maps");

static __always_inline int translate(struct bpf_sock_addr *ctx, int udp)
{
	struct lb4_key key = {};
	struct lb4_service *svc, *slot;
	struct lb4_backend *be;
	__u32 id;
	__u64 one = 1, *hits;

	key.address = ctx->user_ip4;
	key.dport = (__u16)ctx->user_port;
	svc = bpf_map_lookup_elem(&mb_lb4_services, &key);
	if (!svc || svc->count == 0)
		return 0;
	key.slot = (bpf_get_prandom_u32() % svc->count) + 1;
	slot = bpf_map_lookup_elem(&mb_lb4_services, &key);
	if (!slot)
		return 0;
	id = slot->backend_id;
	be = bpf_map_lookup_elem(&mb_lb4_backends, &id);
	if (!be)
		return 0;
	if (udp) {
		struct lb4_revnat_key rk = { .cookie = bpf_get_socket_cookie(ctx), .address = be->address, .port = be->port };
		struct lb4_revnat_entry re = { .address = ctx->user_ip4, .port = (__u16)ctx->user_port, .rev_nat_index = svc->rev_nat_index };
		bpf_map_update_elem(&mb_lb4_revnat, &rk, &re, BPF_ANY);
	}
	ctx->user_ip4 = be->address;
	ctx->user_port = be->port;
	hits = bpf_map_lookup_elem(&mb_lb4_hits, &id);
	if (hits)
		*hits += 1;
	else
		bpf_map_update_elem(&mb_lb4_hits, &id, &one, BPF_ANY);
	return 0;
}

SEC("cgroup/connect4")
int sock4_connect(struct bpf_sock_addr *ctx)
{
	if (ctx->protocol == IPPROTO_TCP || ctx->protocol == IPPROTO_UDP)
		translate(ctx, ctx->protocol == IPPROTO_UDP);
	return 1; /* always let connect() go on */
}

SEC("cgroup/sendmsg4")
int sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	translate(ctx, 1);
	return 1;
}

SEC("cgroup/recvmsg4")
int sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	struct lb4_revnat_key rk = { .cookie = bpf_get_socket_cookie(ctx), .address = ctx->user_ip4, .port = (__u16)ctx->user_port };
	struct lb4_revnat_entry *re = bpf_map_lookup_elem(&mb_lb4_revnat, &rk);

	if (re) {
		ctx->user_ip4 = re->address;
		ctx->user_port = re->port;
	}
	return 1;
}

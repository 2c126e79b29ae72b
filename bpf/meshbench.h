/* The eBPF dataplane's map layouts and event format, shared by the programs in this folder and by
 * the flow reader (agent/flowd.c). Modelled on Cilium's bpf/lib/common.h, bpf/lib/lb.h,
 * bpf/lib/policy.h and bpf/lib/auth.h, trimmed to IPv4 and what the lab uses. The harness writes
 * the same layouts byte for byte (harness/dataplanes/ebpf/maps.ts); change both together.
 *
 * All addresses and ports are in network byte order unless a field says otherwise.
 */
#ifndef MESHBENCH_H
#define MESHBENCH_H

#include <linux/types.h>

/* Socket load balancing (Cilium lb4_key / lb4_service / lb4_backend). Slot 0 of a Service holds
 * the backend count; slots 1..count name a backend id each. */
struct lb4_key {
	__u32 address;   /* Service VIP */
	__u16 dport;     /* Service port */
	__u16 slot;      /* host order: 0 = the Service entry, 1..count = backend slots */
	__u8 proto;      /* 0 = any L4 protocol (the lab's Services) */
	__u8 pad[3];
};

struct lb4_service {
	__u32 backend_id; /* slot entries: which backend */
	__u16 count;      /* slot 0: number of backend slots (host order) */
	__u16 rev_nat_index;
};

struct lb4_backend {
	__u32 address;
	__u16 port;
	__u8 proto;
	__u8 flags;
};

/* UDP reverse translation by socket cookie (Cilium ipv4_revnat_tuple / ipv4_revnat_entry). */
struct lb4_revnat_key {
	__u64 cookie;
	__u32 address; /* backend */
	__u16 port;
	__u16 pad;
};

struct lb4_revnat_entry {
	__u32 address; /* VIP */
	__u16 port;
	__u16 rev_nat_index;
};

/* Services load-balanced by the node's L7 proxy instead of at connect() (Cilium: lb4 services with
 * SVC_FLAG_L7LOADBALANCER, e.g. a CiliumEnvoyConfig traffic split): the socket LB leaves their VIP
 * alone and from_container redirects the connection to the proxy listener named here. */
struct l7lb_key {
	__u32 address; /* Service VIP */
	__u16 dport;   /* Service port */
	__u16 pad;
};

struct l7lb_entry {
	__u16 proxy_port; /* host order */
	__u16 pad;
};

/* ipcache: address → security identity and the node it lives on (Cilium remote_endpoint_info). */
struct ipcache_key {
	__u32 prefixlen; /* LPM: bits of ip4 that match */
	__u32 ip4;
};

struct remote_endpoint_info {
	__u32 sec_identity;
	__u32 tunnel_endpoint; /* underlay address of the node holding it, 0 = this host */
	__u16 node_id;         /* host order */
	__u16 pad;
};

/* Local endpoints of one node (Cilium endpoint_info in cilium_lxc), keyed by the pod's address. */
#define EP_F_INGRESS_ENFORCED 0x1 /* some policy selects it for ingress: default deny */
#define EP_F_EGRESS_ENFORCED 0x2

struct endpoint_info {
	__u32 ifindex;  /* host-side veth, in the node's namespace */
	__u16 ep_id;    /* host order */
	__u8 flags;
	__u8 pad;
	__u32 sec_identity;
	__u8 mac[6];      /* the pod's eth0 */
	__u8 node_mac[6]; /* the host-side veth */
};

/* Policy (Cilium policy_key / policy_entry, one map per node with the endpoint in the key instead
 * of one map per endpoint). Lookup order for a packet: (peer, dport, proto), (any peer, dport,
 * proto), (peer, any port), (any peer, any port); the first entry found decides. */
#define POLICY_INGRESS 0
#define POLICY_EGRESS 1

struct policy_key {
	__u32 ep_id;     /* host order */
	__u32 sec_label; /* peer identity, 0 = any */
	__u16 dport;     /* 0 = any port */
	__u8 protocol;   /* 0 = any protocol */
	__u8 egress;
};

struct policy_entry {
	__u16 proxy_port; /* host order; non-zero = redirect to the node's L7 proxy on this port */
	__u8 deny;
	__u8 auth_type;   /* non-zero = mutual authentication required (Cilium: 1 = spire) */
	__u32 pad;
	__u64 packets;
	__u64 bytes;
};

/* Mutual authentication results written by the agents (Cilium auth_key / auth_info). */
struct auth_key {
	__u32 local_sec_label;
	__u32 remote_sec_label;
	__u16 remote_node_id; /* host order */
	__u8 auth_type;
	__u8 pad;
};

struct auth_info {
	__u64 expiration; /* CLOCK_MONOTONIC ns (bpf_ktime_get_ns), after which the entry is stale */
};

/* Connection tracking, one table per node (Cilium ipv4_ct_tuple / ct_entry, simplified). */
struct ct4_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct ct4_entry {
	__u64 last_seen;
	__u32 src_identity;
	__u32 dst_identity;
	__u16 proxy_port;
	__u16 pad;
	__u32 pad2;
};

/* Verdicts and drop reasons as Hubble names them (Cilium api/v1/flow: Verdict, DropReason). */
#define VERDICT_FORWARDED 1
#define VERDICT_DROPPED 2
#define VERDICT_REDIRECTED 5

#define DROP_POLICY_DENIED 133
#define DROP_AUTH_REQUIRED 189

/* Where the event was seen. */
#define OBS_FROM_ENDPOINT 1 /* tc ingress of a pod's host-side veth: the pod sent it */
#define OBS_FROM_NETWORK 2  /* tc ingress of the node's WireGuard or underlay device */

#define DIR_INGRESS 1
#define DIR_EGRESS 2

/* One flow event in the ring buffer. Sent for each drop and for each new connection (Hubble's
 * monitor aggregation "medium" also reports per connection, not per packet). */
struct flow_event {
	__u64 ts_ns; /* bpf_ktime_get_ns */
	__u32 saddr;
	__u32 daddr;
	__u16 sport; /* host order */
	__u16 dport; /* host order */
	__u32 src_identity;
	__u32 dst_identity;
	__u8 proto;
	__u8 verdict;
	__u8 direction;
	__u8 obs_point;
	__u16 drop_reason;
	__u16 proxy_port;
	__u32 ifindex;
	__u32 pad;
};

/* Reserved identities (Cilium pkg/identity/numericidentity.go). */
#define IDENTITY_HOST 1
#define IDENTITY_WORLD 2

/* L7 redirect mark (Cilium MARK_MAGIC_TO_PROXY 0x0200, port in the upper 16 bits). */
#define MARK_MAGIC_TO_PROXY 0x0200
#define MARK_MAGIC_MASK 0x0F00

#endif

// SPDX-License-Identifier: Apache-2.0
/* mb-flowd: reads one node's flow events from its pinned ring buffer (bpf/lxc.c, mb_events) and
 * prints each as a JSON line in a flow log file, the way Hubble's observer turns Cilium's datapath events
 * into flows. Names for identities and addresses are added later by the harness (`meshbench
 * observe`), which knows the cluster; this program only decodes.
 *
 * usage: mb-flowd <pinned mb_events map> <node name> <flow log, appended to>
 * Runs until SIGTERM/SIGINT. Built by scripts/setup.sh: cc -O2 agent/flowd.c -lbpf. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "../bpf/meshbench.h"

static volatile sig_atomic_t stop;
static const char *node;
static FILE *out;
static long long mono_to_real_ns;

static void on_signal(int sig) { (void)sig; stop = 1; }

static const char *verdict(__u8 v)
{
	switch (v) {
	case VERDICT_FORWARDED: return "FORWARDED";
	case VERDICT_DROPPED: return "DROPPED";
	case VERDICT_REDIRECTED: return "REDIRECTED";
	default: return "UNKNOWN";
	}
}

static const char *reason(__u16 r)
{
	switch (r) {
	case 0: return NULL;
	case DROP_POLICY_DENIED: return "POLICY_DENIED";
	case DROP_AUTH_REQUIRED: return "AUTH_REQUIRED";
	default: return "UNKNOWN";
	}
}

static const char *proto(__u8 p)
{
	switch (p) {
	case 6: return "TCP";
	case 17: return "UDP";
	case 1: return "ICMPv4";
	default: return "OTHER";
	}
}

static int on_event(void *ctx, void *data, size_t len)
{
	const struct flow_event *e = data;
	char src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];
	const char *r;
	(void)ctx;

	if (len < sizeof(*e))
		return 0;
	inet_ntop(AF_INET, &e->saddr, src, sizeof(src));
	inet_ntop(AF_INET, &e->daddr, dst, sizeof(dst));
	r = reason(e->drop_reason);
	fprintf(out, "{\"timeNs\":%lld,\"node\":\"%s\",\"verdict\":\"%s\",", (long long)e->ts_ns + mono_to_real_ns, node, verdict(e->verdict));
	if (r)
		fprintf(out, "\"dropReason\":\"%s\",\"dropReasonCode\":%u,", r, e->drop_reason);
	fprintf(out, "\"direction\":\"%s\",\"observationPoint\":\"%s\",\"protocol\":\"%s\","
	       "\"source\":{\"ip\":\"%s\",\"port\":%u,\"identity\":%u},"
	       "\"destination\":{\"ip\":\"%s\",\"port\":%u,\"identity\":%u}",
	       e->direction == DIR_INGRESS ? "INGRESS" : "EGRESS", e->obs_point == OBS_FROM_ENDPOINT ? "from-endpoint" : "from-network", proto(e->proto),
	       src, e->sport, e->src_identity, dst, e->dport, e->dst_identity);
	if (e->proxy_port)
		fprintf(out, ",\"proxyPort\":%u", e->proxy_port);
	fprintf(out, ",\"ifindex\":%u}\n", e->ifindex);
	fflush(out);
	return 0;
}

int main(int argc, char **argv)
{
	struct ring_buffer *rb;
	struct timespec mono, real;
	int fd, stats_fd, err = 0;

	if (argc != 4) {
		fprintf(stderr, "usage: %s <pinned mb_events map> <node name> <flow log>\n", argv[0]);
		return 2;
	}
	node = argv[2];
	out = fopen(argv[3], "a");
	if (!out) {
		fprintf(stderr, "mb-flowd: cannot write %s: %s\n", argv[3], strerror(errno));
		return 3;
	}
	fd = bpf_obj_get(argv[1]);
	if (fd < 0) {
		fprintf(stderr, "mb-flowd: cannot open %s: %s\n", argv[1], strerror(errno));
		return 3;
	}
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &real);
	mono_to_real_ns = (real.tv_sec - mono.tv_sec) * 1000000000LL + (real.tv_nsec - mono.tv_nsec);
	/* Per-program run time and count while this agent runs (what kernel.bpf_stats_enabled=1 does,
	 * without writing the sysctl: the kernel drops it when the last such fd closes). */
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0)
		fprintf(stderr, "mb-flowd: BPF run-time statistics unavailable: %s\n", strerror(errno));
	rb = ring_buffer__new(fd, on_event, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "mb-flowd: %s is not a ring buffer: %s\n", argv[1], strerror(errno));
		return 3;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!stop) {
		err = ring_buffer__poll(rb, 200);
		if (err < 0 && err != -EINTR)
			break;
		err = 0;
	}
	ring_buffer__consume(rb);
	ring_buffer__free(rb);
	fclose(out);
	if (stats_fd >= 0)
		close(stats_fd);
	return err < 0 ? 1 : 0;
}

// SPDX-License-Identifier: GPL-2.0
/* Local TCP splicing: sock_ops puts every established socket of the attached cgroup into a
 * sockhash and records its peer's key; sk_msg redirects each send straight into the peer
 * socket's receive queue, skipping the TCP/IP stack. Anything that cannot be spliced keeps
 * using the normal stack. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "meshlane/counters.bpf.h"
#include "meshlane/shared.h"
#include "meshlane/sock_key.h"

char LICENSE[] SEC("license") = "GPL";

/* Set at load time from the config. */
const volatile __u8 accelerate = 1;
/* Non-zero when acceleration.include_ports is non-empty: only listed ports are spliced. */
const volatile __u8 port_include_mode = 0;

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536); /* replaced at load time by acceleration.sockhash_max_entries */
	__type(key, struct ml_sock_key);
	__type(value, __u64);
} ml_sockhash_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ml_sock_state);
} ml_sockstate_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} ml_ports_v1 SEC(".maps");

static __always_inline __u8 port_rule(__u16 port)
{
	__u8 *rule = bpf_map_lookup_elem(&ml_ports_v1, &port);

	return rule ? *rule : 0;
}

/* Exclusion wins over inclusion; in include mode a connection needs one listed end. */
static __always_inline int ports_allow_splice(__u16 local_port, __u16 remote_port)
{
	__u8 local_rule = port_rule(local_port);
	__u8 remote_rule = port_rule(remote_port);

	if (local_rule == ML_PORT_EXCLUDE || remote_rule == ML_PORT_EXCLUDE)
		return 0;
	if (port_include_mode)
		return local_rule == ML_PORT_INCLUDE || remote_rule == ML_PORT_INCLUDE;
	return 1;
}

static __always_inline void read_fields(struct bpf_sock_ops *skops, struct ml_sock_fields *f)
{
	f->family = skops->family;
	f->local_ip4 = skops->local_ip4;
	f->remote_ip4 = skops->remote_ip4;
	f->local_ip6[0] = skops->local_ip6[0];
	f->local_ip6[1] = skops->local_ip6[1];
	f->local_ip6[2] = skops->local_ip6[2];
	f->local_ip6[3] = skops->local_ip6[3];
	f->remote_ip6[0] = skops->remote_ip6[0];
	f->remote_ip6[1] = skops->remote_ip6[1];
	f->remote_ip6[2] = skops->remote_ip6[2];
	f->remote_ip6[3] = skops->remote_ip6[3];
	f->local_port = skops->local_port;
	f->remote_port = skops->remote_port;
	f->snd_una = skops->snd_una;
	f->rcv_nxt = skops->rcv_nxt;
	f->netns_cookie = bpf_get_netns_cookie(skops);
}

static __always_inline void add_established(struct bpf_sock_ops *skops)
{
	struct ml_sock_fields fields = {};
	struct ml_sock_key self = {};
	struct ml_sock_state *state;
	struct bpf_sock *sk = skops->sk;

	if (!sk)
		return;
	read_fields(skops, &fields);
	state = bpf_sk_storage_get(&ml_sockstate_v1, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!state)
		return;
	if (ml_build_keys(&fields, &self, &state->peer) != 0)
		return;
	if (!ports_allow_splice(self.local_port, self.remote_port)) {
		state->fallback = 1;
		ml_count(ML_CTR_SOCKETS_SKIPPED_PORT, 1);
		return;
	}
	state->fallback = 0;
	if (bpf_sock_hash_update(skops, &ml_sockhash_v1, &self, BPF_ANY) != 0) {
		ml_count(ML_CTR_SOCKETS_ADD_FAILED, 1);
		return;
	}
	ml_count(ML_CTR_SOCKETS_ADDED, 1);
}

SEC("sockops")
int ml_sockops(struct bpf_sock_ops *skops)
{
	if (!accelerate)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		add_established(skops);
		break;
	default:
		break;
	}
	return 1;
}

SEC("sk_msg")
int ml_sk_msg(struct sk_msg_md *msg)
{
	struct ml_sock_state *state;
	struct bpf_sock *sk = msg->sk;

	if (!sk)
		return SK_PASS;
	state = bpf_sk_storage_get(&ml_sockstate_v1, sk, 0, 0);
	if (!state || state->fallback)
		return SK_PASS;
	if (bpf_msg_redirect_hash(msg, &ml_sockhash_v1, &state->peer, BPF_F_INGRESS) != SK_PASS) {
		/* Peer not spliced (yet): this and every later send of this socket take the
		 * normal stack, so the peer never reads redirected bytes ahead of queued ones. */
		state->fallback = 1;
		ml_count(ML_CTR_REDIRECT_FAILED, 1);
		return SK_PASS;
	}
	ml_count(ML_CTR_MESSAGES_REDIRECTED, 1);
	ml_count(ML_CTR_BYTES_REDIRECTED, msg->size);
	return SK_PASS;
}

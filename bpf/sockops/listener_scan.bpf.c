// SPDX-License-Identifier: GPL-2.0
/* The listener scan: finds the listening TCP sockets of the attached cgroup that were opened
 * before the datapath was attached (sock_ops never saw their listen()), so that the controller
 * can record their mode exactly as sock_ops would have at listen(), and the connections they
 * accept from now on can be spliced. A BPF iterator over every task's open files
 * (iter/task_file): a socket is found through its file, whose O_NONBLOCK is the mode, and the
 * socket's own cgroup (the one the cgroup programs judge it by) decides whether it belongs to
 * the datapath. It writes one record per listener file it finds; the controller creates the
 * listener's storage through a duplicate of the file (pidfd_getfd): an iterator reaches the
 * socket only through pointers the verifier does not trust for bpf_sk_storage_get. Run by the
 * controller at start and when workloads change; see controller/datapath/listener_scan.cpp. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* ml_counters_v1: the controller counts listeners_scanned in it (the skeleton brings its fd). */
#include "meshlane/counters.bpf.h"
#include "meshlane/kernel_defs.bpf.h"
#include "meshlane/listeners.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define ML_AF_INET6 10
/* Deeper cgroup hierarchies than this are not walked (the kernel allows any depth, systemd and
 * Kubernetes use fewer than 10 levels). */
#define ML_MAX_CGROUP_DEPTH 64

/* Set by the controller before each run: the id (inode number) of the attached cgroup v2. */
__u64 target_cgroup_id = 0;

/* Whether a socket belongs to the attached cgroup or one below it. */
static __always_inline int in_target_cgroup(struct sock *sk)
{
	struct cgroup *cgroup = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	int depth;

	for (depth = 0; depth < ML_MAX_CGROUP_DEPTH && cgroup; depth++) {
		if (BPF_CORE_READ(cgroup, kn, id) == target_cgroup_id)
			return 1;
		/* self is the first member of struct cgroup: a parent css is its cgroup. */
		cgroup = (struct cgroup *)BPF_CORE_READ(cgroup, self.parent);
	}
	return 0;
}

SEC("iter/task_file")
int ml_scan_listeners(struct bpf_iter__task_file *ctx)
{
	struct ml_scanned_listener found = {};
	struct ml_listener_key key = {};
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct socket *sock;
	struct sock *sk;

	if (!task || !file)
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = sock->sk;
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_LISTEN ||
	    BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !in_target_cgroup(sk))
		return 0;

	found.netns_cookie = BPF_CORE_READ(sk, __sk_common.skc_net.net, net_cookie);
	found.inode = BPF_CORE_READ(file, f_inode, i_ino);
	found.pid = BPF_CORE_READ(task, tgid);
	found.fd = ctx->fd;
	found.port = BPF_CORE_READ(sk, __sk_common.skc_num);
	found.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	found.v6only = found.family == ML_AF_INET6 &&
		       BPF_CORE_READ_BITFIELD_PROBED(sk, __sk_common.skc_ipv6only);
	found.mode = (BPF_CORE_READ(file, f_flags) & ML_O_NONBLOCK) ? ML_SOCKET_MODE_NONBLOCKING :
								      ML_SOCKET_MODE_BLOCKING;
	found.marked_nonblocking = (BPF_CORE_READ((struct tcp_sock *)sk, bpf_sock_ops_cb_flags) &
				    ML_LISTENER_NONBLOCKING_CB_FLAG) != 0;
	key.netns_cookie = found.netns_cookie;
	key.port = found.port;
	if (!bpf_map_lookup_elem(&ml_listeners_v1, &key))
		bpf_map_update_elem(&ml_listeners_v1, &key, &found.mode, BPF_NOEXIST);
	bpf_seq_write(ctx->meta->seq, &found, sizeof(found));
	return 0;
}

/* Building sockhash keys from socket fields. Plain inline functions over plain values, so the
 * same code runs in the sock_ops program and in host unit tests. */
#ifndef MESHLANE_SOCK_KEY_H
#define MESHLANE_SOCK_KEY_H

#include "meshlane/compiler.h"
#include "meshlane/splice_types.h"

#define ML_AF_INET 2
#define ML_AF_INET6 10

/* Fields of a socket as sock_ops sees them; addresses in network byte order. */
struct ml_sock_fields {
	__u32 family;
	__u32 local_ip4;
	__u32 remote_ip4;
	__u32 local_ip6[4];
	__u32 remote_ip6[4];
	__u32 local_port; /* host byte order */
	__u32 remote_port; /* as in bpf_sock_ops: network order port in the upper 16 bits */
	__u32 snd_una; /* at the established callback: local ISN + 1 */
	__u32 rcv_nxt; /* at the established callback: remote ISN + 1 */
	__u64 netns_cookie;
};

ML_INLINE int ml_ip6_equal(const __u32 a[4], const __u32 b[4])
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

ML_INLINE void ml_ip6_copy(__u32 dst[4], const __u32 src[4])
{
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	dst[3] = src[3];
}

ML_INLINE void ml_ip4_to_mapped(__u32 ip4, __u32 out[4])
{
	out[0] = 0;
	out[1] = 0;
	out[2] = ML_HTONL(0x0000ffff);
	out[3] = ip4;
}

ML_INLINE int ml_ip6_is_mapped_v4(const __u32 ip6[4])
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == ML_HTONL(0x0000ffff);
}

/* Loopback: 127.0.0.0/8 (plain or v4-mapped) or ::1. Addresses are already in mapped form. */
ML_INLINE int ml_ip6_is_loopback(const __u32 ip6[4])
{
	if (ml_ip6_is_mapped_v4(ip6))
		return (ML_NTOHL(ip6[3]) >> 24) == 127;
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == 0 && ip6[3] == ML_HTONL(1);
}

/* 127.0.0.1 as v4-mapped when mapped, else ::1. */
ML_INLINE void ml_set_loopback(__u32 out[4], int mapped)
{
	if (mapped) {
		ml_ip4_to_mapped(ML_HTONL(0x7f000001), out);
		return;
	}
	out[0] = 0;
	out[1] = 0;
	out[2] = 0;
	out[3] = ML_HTONL(1);
}

/* Fills this socket's own key and its peer's key. Returns 0, or -1 for a family that cannot be
 * spliced. */
ML_INLINE int ml_build_keys(const struct ml_sock_fields *f, struct ml_sock_key *self,
			    struct ml_sock_key *peer)
{
	__u32 local[4], remote[4];

	if (f->family == ML_AF_INET) {
		ml_ip4_to_mapped(f->local_ip4, local);
		ml_ip4_to_mapped(f->remote_ip4, remote);
	} else if (f->family == ML_AF_INET6) {
		for (int i = 0; i < 4; i++) {
			local[i] = f->local_ip6[i];
			remote[i] = f->remote_ip6[i];
		}
	} else {
		return -1;
	}

	/* A connection with a loopback end never leaves its namespace, so both ends scope the key
	 * to it (127.0.0.6 -> pod IP is loopback on one end only). */
	__u64 scope = (ml_ip6_is_loopback(remote) || ml_ip6_is_loopback(local)) ? f->netns_cookie :
										  0;
	__u16 local_port = (__u16)f->local_port;
	__u16 remote_port = (__u16)ML_NTOHL(f->remote_port);

	for (int i = 0; i < 4; i++) {
		self->local_ip6[i] = local[i];
		self->remote_ip6[i] = remote[i];
		peer->local_ip6[i] = remote[i];
		peer->remote_ip6[i] = local[i];
	}
	self->scope = scope;
	self->local_port = local_port;
	self->remote_port = remote_port;
	self->local_seq = f->snd_una;
	self->remote_seq = f->rcv_nxt;
	self->pad = 0;

	peer->scope = scope;
	peer->local_port = remote_port;
	peer->remote_port = local_port;
	peer->local_seq = f->rcv_nxt;
	peer->remote_seq = f->snd_una;
	peer->pad = 0;
	return 0;
}

/* The key of the other end of the connection keyed by key: a socket's own key is the mirror of
 * the peer key it keeps in its storage (the sequence numbers of the key are those at the
 * established callback, which a later callback cannot read again). */
ML_INLINE void ml_mirror_key(const struct ml_sock_key *key, struct ml_sock_key *mirror)
{
	for (int i = 0; i < 4; i++) {
		mirror->local_ip6[i] = key->remote_ip6[i];
		mirror->remote_ip6[i] = key->local_ip6[i];
	}
	mirror->scope = key->scope;
	mirror->local_port = key->remote_port;
	mirror->remote_port = key->local_port;
	mirror->local_seq = key->remote_seq;
	mirror->remote_seq = key->local_seq;
	mirror->pad = 0;
}

#endif /* MESHLANE_SOCK_KEY_H */

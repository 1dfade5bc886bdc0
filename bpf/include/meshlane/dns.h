/* DNS capture (Istio's ISTIO_META_DNS_CAPTURE without iptables): the decisions, as pure
 * functions over plain structs so host unit tests can call them. An app's queries to port 53
 * go to its pod's DNS proxy on loopback; the proxy's replies are shown to the app as coming
 * from the server it addressed. Shared by the BPF programs and the controller (pinned ABI:
 * layouts and map names never change in place). */
#ifndef MESHLANE_DNS_H
#define MESHLANE_DNS_H

#include "meshlane/compiler.h"
#include "meshlane/sock_key.h"
#include "meshlane/workload_types.h"

#define ML_DNS_PORT 53

/* Value of the socket storage ml_dnsorigin_v1, on an app's UDP socket that had a query
 * captured: the server the app addressed last and where the query went instead. A cgroup
 * sock_addr program never sees a datagram's payload (no DNS id), so a reply can only be told
 * apart by its socket: a socket asking two servers at once sees every reply from the server it
 * addressed last (counted in dns_server_switched). */
struct ml_dns_origin {
	__u32 server_ip6[4]; /* IPv6 or v4-mapped, as the app addressed it */
	__u32 proxy_ip6[4]; /* the DNS proxy: 127.0.0.1 (v4-mapped) or ::1 */
	__u16 server_port; /* host byte order */
	__u16 proxy_port; /* host byte order */
	__u32 queries; /* captured sends (and connects) on this socket */
};

#define ML_DNS_ORIGIN_MAP_NAME "ml_dnsorigin_v1"

/* Whether a query from uid/gid to dst_ip6:dst_port (IPv6 or v4-mapped) goes to the workload's
 * DNS proxy. Mirrors istio-iptables' DNS rules (capture of all DNS): port 53 from anyone but the
 * proxy (its uid or gid: its own upstream queries), except to loopback (a resolver inside the
 * pod, or the DNS proxy itself), and, unlike Istio, except to an excluded outbound CIDR. */
ML_INLINE int ml_dns_captures(const struct ml_workload *self, __u32 uid, __u32 gid,
			      const __u32 dst_ip6[4], __u16 dst_port, int dst_cidr_excluded)
{
	if (!self || !(self->flags & ML_WL_DNS_CAPTURE) || self->dns_proxy_port == 0)
		return 0;
	if (dst_port != ML_DNS_PORT || uid == self->proxy_uid || gid == self->proxy_gid)
		return 0;
	return !ml_ip6_is_loopback(dst_ip6) && !dst_cidr_excluded;
}

/* Where a captured query goes: the DNS proxy on the loopback of the family the app used
 * (127.0.0.1, v4-mapped for IPv4 and ::ffff:a.b.c.d; ::1 for IPv6). */
ML_INLINE void ml_dns_proxy_address(int dst_is_mapped, __u32 out[4])
{
	ml_set_loopback(out, dst_is_mapped);
}

/* Records a captured query in the socket's origin. Returns 1 when the socket had queries to
 * another server before (its replies in flight would now be shown from this one). */
ML_INLINE int ml_dns_note_query(struct ml_dns_origin *origin, const __u32 server_ip6[4],
				__u16 server_port, const __u32 proxy_ip6[4], __u16 proxy_port)
{
	int switched = origin->queries != 0 && (origin->server_port != server_port ||
						!ml_ip6_equal(origin->server_ip6, server_ip6));

	ml_ip6_copy(origin->server_ip6, server_ip6);
	ml_ip6_copy(origin->proxy_ip6, proxy_ip6);
	origin->server_port = server_port;
	origin->proxy_port = proxy_port;
	origin->queries++;
	return switched;
}

/* Whether a datagram received from src_ip6:src_port (IPv6 or v4-mapped) on a socket with this
 * origin is the DNS proxy's reply, to be shown as from origin->server_ip6:server_port. Anything
 * else the socket receives (another sender, or the proxy on another port) is left as is. */
ML_INLINE int ml_dns_reply_from_proxy(const struct ml_dns_origin *origin, const __u32 src_ip6[4],
				      __u16 src_port)
{
	if (!origin || origin->queries == 0 || src_port != origin->proxy_port)
		return 0;
	return ml_ip6_equal(src_ip6, origin->proxy_ip6);
}

#endif /* MESHLANE_DNS_H */

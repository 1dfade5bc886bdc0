/* The socket storage of DNS capture: on an app's UDP socket, the server its captured queries
 * addressed (struct ml_dns_origin, meshlane/dns.h). */
#ifndef MESHLANE_DNS_ORIGIN_BPF_H
#define MESHLANE_DNS_ORIGIN_BPF_H

#include "meshlane/dns.h"

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ml_dns_origin);
} ml_dnsorigin_v1 SEC(".maps");

#endif /* MESHLANE_DNS_ORIGIN_BPF_H */

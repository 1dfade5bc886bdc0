/* What every header shared by the BPF programs and the C++ controller needs to compile on both
 * sides: the fixed-width types, how a shared helper is inlined, and byte order. The BPF side
 * must always inline (bpf-to-bpf calls cost a frame and older verifiers refuse some of them);
 * the host side gets plain static inline functions that unit tests can call. */
#ifndef MESHLANE_COMPILER_H
#define MESHLANE_COMPILER_H

#ifdef __BPF__
/* vmlinux.h provides __u8..__u64 on the BPF side. */
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h> /* __always_inline */
#define ML_INLINE static __always_inline
#define ML_HTONL(x) bpf_htonl(x)
#define ML_NTOHL(x) bpf_ntohl(x)
#else
#include <arpa/inet.h>
#include <linux/types.h>
#define ML_INLINE static inline
#define ML_HTONL(x) htonl(x)
#define ML_NTOHL(x) ntohl(x)
#endif

#endif /* MESHLANE_COMPILER_H */

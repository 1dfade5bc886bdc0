/* Kernel constants the BPF programs need that vmlinux.h cannot carry: BTF describes types, not
 * #defines, so the uapi values are repeated here, once. */
#ifndef MESHLANE_KERNEL_DEFS_BPF_H
#define MESHLANE_KERNEL_DEFS_BPF_H

/* Verdicts of a tc (clsact) program. */
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

/* Ethertypes, as in h_proto (compare with bpf_htons). */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

/* A file's f_flags bit for a non-blocking socket. */
#define ML_O_NONBLOCK 04000

#endif /* MESHLANE_KERNEL_DEFS_BPF_H */

/* Setting and clearing a socket's sock_ops callback flags (bpf_sock_ops_cb_flags). */
#ifndef MESHLANE_CB_FLAGS_BPF_H
#define MESHLANE_CB_FLAGS_BPF_H

/* The socket's callback flags, loaded by an instruction of its own: clang merges the identical
 * "load the flags, change them, set them" tails of several inlined callers into one block whose
 * load goes through a copy of the context pointer plus the field's offset, which the verifier
 * refuses ("dereference of modified ctx ptr"). */
static __always_inline __u32 ml_cb_flags(struct bpf_sock_ops *skops)
{
	__u32 flags;

	asm volatile("%0 = *(u32 *)(%1 + %2)"
		     : "=r"(flags)
		     : "r"(skops),
		       "i"(__builtin_offsetof(struct bpf_sock_ops, bpf_sock_ops_cb_flags)));
	return flags;
}

/* Asks for the callbacks in `add` besides those the socket has. */
static __always_inline void ml_cb_flags_add(struct bpf_sock_ops *skops, __u32 add)
{
	bpf_sock_ops_cb_flags_set(skops, ml_cb_flags(skops) | add);
}

/* Stops the callbacks in `drop`. */
static __always_inline void ml_cb_flags_drop(struct bpf_sock_ops *skops, __u32 drop)
{
	bpf_sock_ops_cb_flags_set(skops, ml_cb_flags(skops) & ~drop);
}

#endif /* MESHLANE_CB_FLAGS_BPF_H */

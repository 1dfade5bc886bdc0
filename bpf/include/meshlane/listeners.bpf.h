/* Listening sockets of the attached cgroup: where they are (for client ends) and in which mode
 * their application reads (for the server ends they accept). Written by sock_ops at listen()
 * and by the listener scan (bpf/sockops/listener_scan.bpf.c) for listeners that existed before
 * the datapath; read by sock_ops at the established callbacks. */
#ifndef MESHLANE_LISTENERS_BPF_H
#define MESHLANE_LISTENERS_BPF_H

#include "meshlane/shared.h"

/* A listener of the cgroup was seen on (netns, port). A hint for client ends only: an entry
 * outlives its listener until the LRU map evicts it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct ml_listener_key);
	__type(value, __u8);
} ml_listeners_v1 SEC(".maps");

/* The mode of each listener, on the listener itself; BPF_F_CLONE copies it into every socket it
 * accepts (see struct ml_listener_state). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct ml_listener_state);
} ml_listenmode_v1 SEC(".maps");

#endif /* MESHLANE_LISTENERS_BPF_H */

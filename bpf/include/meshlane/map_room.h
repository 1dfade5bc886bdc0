/* Occupancy limits of maps that must refuse before they are full, over plain values so host
 * tests can drive them. */
#ifndef MESHLANE_MAP_ROOM_H
#define MESHLANE_MAP_ROOM_H

#include "meshlane/compiler.h"

/* Entries kept free for inserts already decided but not done yet: an eighth of the map, at
 * least one. */
ML_INLINE __s64 ml_map_headroom(__u32 max_entries)
{
	__s64 headroom = max_entries / 8;

	return headroom > 0 ? headroom : 1;
}

/* Whether a map holding `count` of `max_entries` entries may take one more decided insert. */
ML_INLINE int ml_map_has_room(__s64 count, __u32 max_entries)
{
	return count < (__s64)max_entries - ml_map_headroom(max_entries);
}

#endif /* MESHLANE_MAP_ROOM_H */

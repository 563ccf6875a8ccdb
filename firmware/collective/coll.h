/* coll.h: chip-to-chip collectives on top of hal_link_* (ring and hierarchical topologies).
 *
 * Every chip of the cluster must make the same sequence of collective calls with the same sizes
 * (and the same root); results are then bit-identical on every chip. All calls return 0 or a
 * negative HAL_ERR_* code. On any error the chip closes all its links (hal_links_close) so that the
 * failure reaches every chip as HAL_ERR_LINK_LOST instead of a hang; call coll_configure again to
 * recover. Nothing here allocates: callers pass scratch buffers. Message schedule, summation order
 * and costs: docs/mock-chip.md. */
#ifndef ORCH_COLL_H
#define ORCH_COLL_H

#include <stdint.h>

#include "hal/hal.h"

/* Largest link message the collectives send; every transfer is split into chunks of at most this. */
#define COLL_CHUNK_BYTES HAL_LINK_MAX_MSG
#define COLL_DEFAULT_TIMEOUT_MS 10000u

typedef struct {
    uint64_t tx_bytes; /* payload bytes sent / received over chip links since boot */
    uint64_t rx_bytes;
    uint64_t tx_msgs;
    uint64_t rx_msgs;
} coll_link_stats;

/* Establishes this chip's links (hal_links_configure) and remembers rank, world and topology. */
int coll_configure(uint32_t rank, uint32_t world, const hal_topology *t);
/* How long a collective waits for one message from a neighbour (default COLL_DEFAULT_TIMEOUT_MS). */
void coll_set_timeout_ms(uint32_t timeout_ms);
uint32_t coll_rank(void);
uint32_t coll_world(void);

/* buf[0..n) := elementwise sum over all chips (two's complement wrap-around).
 * scratch: scratch_n >= 1 elements; transfers use chunks of min(scratch_n, COLL_CHUNK_BYTES/4)
 * elements, so any scratch_n >= COLL_CHUNK_BYTES/4 (4096) gives the largest chunks.
 * Ring topology: ring reduce-scatter then ring all-gather. Hierarchical: chain reduce to each group
 * leader, ring all-reduce across leaders, chain broadcast back inside groups. */
int coll_allreduce_sum_s32(int32_t *buf, uint32_t n, int32_t *scratch, uint32_t scratch_n);
/* Same for int64 (e.g. sampling sums), over the broadcast tree (reduce to rank 0, then broadcast).
 * Chunks: min(scratch_n, COLL_CHUNK_BYTES/8) elements. */
int coll_allreduce_sum_s64(int64_t *buf, uint32_t n, int64_t *scratch, uint32_t scratch_n);
/* buf[0..n) bytes of root are copied to every chip. */
int coll_broadcast(void *buf, uint32_t n, uint32_t root);
/* Returns when every chip has entered the barrier. */
int coll_barrier(void);
/* The largest value over all chips, ties broken towards the lowest index (next-token selection:
 * each chip passes its local argmax with its global vocabulary index). */
int coll_argmax_reduce(int32_t value, uint32_t index, int32_t *max_value, uint32_t *max_index);

/* Link traffic counters, for trace records (take differences around a phase). */
void coll_link_stats_get(coll_link_stats *out);
/* Closes all links; every later collective on any chip fails with HAL_ERR_LINK_LOST. */
void coll_abort(void);

#endif /* ORCH_COLL_H */

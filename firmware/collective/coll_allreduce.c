/* coll_allreduce.c: int32 sum all-reduce, ring and hierarchical.
 *
 * Summation order is fixed by rank positions, never by arrival order (every receive names its
 * peer), so the same inputs give the same bits on every chip and in every run. Wrap-around integer
 * sums are associative, so the ring and hierarchical variants also agree bit for bit. */
#include "collective/coll_internal.h"

/* Ring all-reduce among `size` chips where this chip is at position `idx`, sending to `right` and
 * receiving from `left`. The vector is split into `size` segments (coll_part_lo); segment j is
 * summed in ring order starting at position j: ((x_j + x_{j+1}) + ...) + x_{j-1}.
 *
 * Reduce-scatter, step k = 0..size-2: send segment (idx-k) mod size, receive segment
 * (idx-k-1) mod size and add it into ours. Afterwards position idx holds the full sum of segment
 * (idx+1) mod size. All-gather, step k = 0..size-2: send segment (idx+1-k), receive segment (idx-k)
 * into place. Within a step the two segments are cut into chunks of at most `chunk` elements that
 * are sent and received alternately, so a chip never has more than a couple of unreceived
 * messages in a link (see the buffer bound in docs/mock-chip.md); empty chunks are not sent. */
static int ring_allreduce_s32(int32_t *buf, uint32_t n, int32_t *scratch, uint32_t chunk, uint32_t idx,
                              uint32_t size, uint32_t left, uint32_t right) {
    for (uint32_t phase = 0; phase < 2; phase++) {
        for (uint32_t k = 0; k + 1u < size; k++) {
            /* phase 0 sends segment idx-k; phase 1 sends idx+1-k. Receives are one behind. */
            uint32_t s = (idx + size - k + phase) % size;
            uint32_t r = (s + size - 1u) % size;
            uint32_t s_lo = coll_part_lo(s, n, size), s_n = coll_part_lo(s + 1u, n, size) - s_lo;
            uint32_t r_lo = coll_part_lo(r, n, size), r_n = coll_part_lo(r + 1u, n, size) - r_lo;
            for (uint32_t off = 0; off < s_n || off < r_n; off += chunk) {
                if (off < s_n) {
                    uint32_t m = s_n - off < chunk ? s_n - off : chunk;
                    int rc = coll_send(right, buf + s_lo + off, m * 4u);
                    if (rc) return rc;
                }
                if (off < r_n) {
                    uint32_t m = r_n - off < chunk ? r_n - off : chunk;
                    if (phase == 0) {
                        int rc = coll_recv(left, scratch, m * 4u);
                        if (rc) return rc;
                        /* (x_r + ... + x_{idx-1}) + x_idx; wrap-around sums commute, so adding
                         * into our copy gives the same bits as adding ours into the partial. */
                        coll_add_s32(buf + r_lo + off, scratch, m);
                    } else {
                        int rc = coll_recv(left, buf + r_lo + off, m * 4u);
                        if (rc) return rc;
                    }
                }
            }
        }
    }
    return 0;
}

/* Hierarchical: groups of G consecutive ranks, leader = first rank of the group.
 * 1. chain reduce to the leader: member G-1 sends to G-2, which adds its own and sends to G-3, ...
 *    (the leader ends with x_0 + (x_1 + (... + x_{G-1}))), chunk by chunk;
 * 2. ring all-reduce (above) across the world/G leaders;
 * 3. chain broadcast inside the group: leader -> member 1 -> ... -> member G-1. */
static int hier_allreduce_s32(int32_t *buf, uint32_t n, int32_t *scratch, uint32_t chunk) {
    uint32_t rank = coll_g.rank, world = coll_g.world, g = coll_g.topo.group_size;
    uint32_t i = rank % g, n_groups = world / g;
    for (uint32_t off = 0; off < n; off += chunk) {
        uint32_t m = n - off < chunk ? n - off : chunk;
        if (i + 1u < g) {
            int rc = coll_recv(rank + 1u, scratch, m * 4u);
            if (rc) return rc;
            coll_add_s32(buf + off, scratch, m); /* x_i + (x_{i+1} + ...) */
        }
        if (i > 0) {
            int rc = coll_send(rank - 1u, buf + off, m * 4u);
            if (rc) return rc;
        }
    }
    if (i == 0 && n_groups > 1) {
        int rc = ring_allreduce_s32(buf, n, scratch, chunk, rank / g, n_groups, (rank + world - g) % world,
                                    (rank + g) % world);
        if (rc) return rc;
    }
    for (uint32_t off = 0; off < n; off += chunk) {
        uint32_t m = n - off < chunk ? n - off : chunk;
        if (i > 0) {
            int rc = coll_recv(rank - 1u, buf + off, m * 4u);
            if (rc) return rc;
        }
        if (i + 1u < g) {
            int rc = coll_send(rank + 1u, buf + off, m * 4u);
            if (rc) return rc;
        }
    }
    return 0;
}

int coll_allreduce_sum_s32(int32_t *buf, uint32_t n, int32_t *scratch, uint32_t scratch_n) {
    int rc = coll_ready();
    if (rc) return rc;
    if (coll_g.world == 1 || n == 0) return 0;
    if (buf == NULL || scratch == NULL || scratch_n == 0) return HAL_ERR_ARG;
    uint32_t chunk = scratch_n < COLL_CHUNK_BYTES / 4u ? scratch_n : COLL_CHUNK_BYTES / 4u;
    if (coll_g.topo.kind == HAL_TOPO_HIER) return hier_allreduce_s32(buf, n, scratch, chunk);
    return ring_allreduce_s32(buf, n, scratch, chunk, coll_g.rank, coll_g.world,
                              (coll_g.rank + coll_g.world - 1u) % coll_g.world, (coll_g.rank + 1u) % coll_g.world);
}

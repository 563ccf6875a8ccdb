/* coll_link.c: collective state, counted link I/O and the element-wise adds every reduction uses. */
#include "collective/coll_internal.h"

coll_state coll_g = {0, 0, 1, {HAL_TOPO_RING, 0}, COLL_DEFAULT_TIMEOUT_MS, {0, 0, 0, 0}};

int coll_configure(uint32_t rank, uint32_t world, const hal_topology *t) {
    uint32_t peers[HAL_MAX_PEERS];
    coll_g.configured = 0;
    if (hal_topo_peers(rank, world, t, peers) < 0) return HAL_ERR_ARG;
    int rc = hal_links_configure(rank, world, t);
    if (rc < 0) return rc;
    coll_g.rank = rank;
    coll_g.world = world;
    coll_g.topo = *t;
    if (t->kind == HAL_TOPO_RING) coll_g.topo.group_size = 0;
    coll_g.configured = 1;
    return 0;
}

void coll_set_timeout_ms(uint32_t timeout_ms) { coll_g.timeout_ms = timeout_ms; }
uint32_t coll_rank(void) { return coll_g.rank; }
uint32_t coll_world(void) { return coll_g.world; }

int coll_ready(void) { return coll_g.configured ? 0 : HAL_ERR_NOT_CONFIGURED; }

void coll_abort(void) { hal_links_close(); }

void coll_link_stats_get(coll_link_stats *out) { *out = coll_g.stats; }

int coll_send(uint32_t peer, const void *buf, uint32_t n) {
    int rc = hal_link_send(peer, buf, n);
    if (rc < 0) {
        coll_abort();
        return rc;
    }
    coll_g.stats.tx_bytes += n;
    coll_g.stats.tx_msgs++;
    return 0;
}

int coll_recv(uint32_t peer, void *buf, uint32_t n) {
    int rc = hal_link_recv(peer, buf, n, coll_g.timeout_ms);
    if (rc < 0) {
        coll_abort();
        return rc;
    }
    coll_g.stats.rx_bytes += n;
    coll_g.stats.rx_msgs++;
    return 0;
}

void coll_add_s32(int32_t *dst, const int32_t *src, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) dst[i] = (int32_t)((uint32_t)dst[i] + (uint32_t)src[i]);
    hal_account(n, 12u * (uint64_t)n, 0);
}

void coll_add_s64(int64_t *dst, const int64_t *src, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) dst[i] = (int64_t)((uint64_t)dst[i] + (uint64_t)src[i]);
    hal_account(n, 24u * (uint64_t)n, 0);
}

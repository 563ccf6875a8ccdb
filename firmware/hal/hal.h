/* hal.h: the one interface the portable firmware (kernels/, collective/, proto/, runtime/) uses to
 * reach the chip. One implementation per target lives in hal/<port>/; hal/posix/ is the mock chip
 * (see docs/mock-chip.md). Nothing here names an OS type, so an MCU port can implement it as is.
 *
 * Every function that can fail returns a negative HAL_ERR_* code; 0 or a byte count means success. */
#ifndef ORCH_HAL_H
#define ORCH_HAL_H

#include <stdint.h>

/* ---- error codes (negative) ---------------------------------------------------------------- */
enum {
    HAL_OK = 0,
    HAL_ERR_TIMEOUT = -1,        /* nothing arrived (or could be sent) within the timeout */
    HAL_ERR_LINK_LOST = -2,      /* the peer is gone (EOF, reset, closed) or the link was aborted */
    HAL_ERR_SIZE = -3,           /* a message's size differs from the size the receiver expected,
                                    or a send is bigger than HAL_LINK_MAX_MSG */
    HAL_ERR_NO_LINK = -4,        /* the peer is not a neighbour in the configured topology */
    HAL_ERR_ARG = -5,            /* an argument is out of range (offset, length, rank, topology) */
    HAL_ERR_IO = -6,             /* the port's OS or device failed */
    HAL_ERR_PROTO = -7,          /* a link frame header is corrupt (bad sequence or length) */
    HAL_ERR_UNSUPPORTED = -8,    /* this port does not implement the call */
    HAL_ERR_NOT_CONFIGURED = -9  /* links used before hal_links_configure() succeeded */
};

/* Wait for ever (host link reads and link receives). */
#define HAL_WAIT_FOREVER 0xFFFFFFFFu

/* Largest payload of one link message. Collectives send in chunks of at most this many bytes so
 * that a ring in which every chip sends before it receives can never fill a link buffer: the posix
 * port checks at configure time that each socket buffers at least HAL_LINK_MIN_BUFFERED_MSGS
 * messages of this size (see docs/mock-chip.md for why that bound is enough). */
#define HAL_LINK_MAX_MSG 16384u
#define HAL_LINK_MIN_BUFFERED_MSGS 8u

/* Largest cluster a topology may describe and most distinct link peers one chip can have
 * (two ring neighbours inside a group plus two across group leaders). */
#define HAL_MAX_WORLD 256u
#define HAL_MAX_PEERS 4u

#define HAL_PROFILE_NAME_MAX 32u /* including the terminating NUL */

/* ---- host link (USB-UART on a board, a pseudo-terminal on the mock) ------------------------ */

/* Reads what is available, at most cap bytes, waiting up to timeout_ms for the first byte.
 * Returns bytes read (>0), 0 on timeout, <0 on error. Never spins. */
int hal_host_read(uint8_t *buf, uint32_t cap, uint32_t timeout_ms);
/* Writes all n bytes. Returns n, or <0 (HAL_ERR_TIMEOUT if the host does not drain the link). */
int hal_host_write(const uint8_t *buf, uint32_t n);

/* ---- chip-to-chip links ------------------------------------------------------------------- */

typedef enum {
    HAL_TOPO_RING = 0, /* rank r links to (r-1) mod world and (r+1) mod world */
    HAL_TOPO_HIER = 1  /* groups of group_size consecutive ranks: a ring inside each group, and a
                          ring across the group leaders (rank % group_size == 0) */
} hal_topo_kind;

typedef struct {
    uint32_t kind;       /* hal_topo_kind */
    uint32_t group_size; /* HAL_TOPO_HIER only: >= 1 and divides world */
} hal_topology;

/* Checks (rank, world, topology) and lists the distinct peers rank may talk to. Returns the number
 * of peers (0..HAL_MAX_PEERS) or HAL_ERR_ARG. Pure arithmetic, shared by every port and by the
 * collectives so that both agree on which links exist. */
static inline int hal_topo_peers(uint32_t rank, uint32_t world, const hal_topology *t,
                                 uint32_t peers[HAL_MAX_PEERS]) {
    uint32_t cand[4];
    uint32_t n_cand = 0;
    if (t == 0 || world == 0 || world > HAL_MAX_WORLD || rank >= world) return HAL_ERR_ARG;
    if (t->kind == HAL_TOPO_RING) {
        cand[n_cand++] = (rank + world - 1u) % world;
        cand[n_cand++] = (rank + 1u) % world;
    } else if (t->kind == HAL_TOPO_HIER) {
        uint32_t g = t->group_size;
        if (g == 0 || world % g != 0) return HAL_ERR_ARG;
        uint32_t base = rank - rank % g;
        uint32_t i = rank % g;
        cand[n_cand++] = base + (i + g - 1u) % g;
        cand[n_cand++] = base + (i + 1u) % g;
        if (i == 0) {
            cand[n_cand++] = (rank + world - g) % world;
            cand[n_cand++] = (rank + g) % world;
        }
    } else {
        return HAL_ERR_ARG;
    }
    int n = 0;
    for (uint32_t k = 0; k < n_cand; k++) {
        uint32_t p = cand[k];
        int dup = (p == rank);
        for (int j = 0; j < n; j++) dup |= (peers[j] == p);
        if (!dup) peers[n++] = p;
    }
    return n;
}

/* Establishes the links of `rank` in a cluster of `world` chips for topology t, replacing any links
 * from an earlier configure. Blocks until every neighbour has connected (port-defined timeout).
 * world == 1 needs no links and succeeds at once. */
int hal_links_configure(uint32_t rank, uint32_t world, const hal_topology *t);
/* Closes every link at once. Neighbours then see HAL_ERR_LINK_LOST, which is how a failed
 * collective spreads to the whole cluster instead of leaving far chips waiting for a timeout. */
void hal_links_close(void);

/* Sends one message of n bytes (0 <= n <= HAL_LINK_MAX_MSG) to peer. Returns 0 or <0.
 * May block until the link has room (port-defined send timeout, then HAL_ERR_TIMEOUT). */
int hal_link_send(uint32_t peer, const void *buf, uint32_t n);
/* Receives the next message from peer, which must be exactly n bytes long (HAL_ERR_SIZE otherwise;
 * the message is consumed either way). Returns 0 or <0. */
int hal_link_recv(uint32_t peer, void *buf, uint32_t n, uint32_t timeout_ms);

/* ---- non-volatile storage (flash) ------------------------------------------------------------ */

uint32_t hal_nv_size(void);
int hal_nv_read(uint32_t off, void *buf, uint32_t n);        /* 0 or HAL_ERR_ARG / HAL_ERR_IO */
int hal_nv_write(uint32_t off, const void *buf, uint32_t n); /* 0 or HAL_ERR_ARG / HAL_ERR_IO */
int hal_nv_sync(void);                                       /* makes earlier writes durable */
/* Read-in-place view of [off, off+n) so weights are used where they are stored, never copied.
 * NULL if the range is outside the storage. Valid until the chip shuts down; reflects writes. */
const uint8_t *hal_nv_map(uint32_t off, uint32_t n);

/* ---- cycle counter and cost accounting --------------------------------------------------------- */

/* The chip's cycle counter. On a board the hardware counter; on the mock a virtual clock. */
uint64_t hal_cycles(void);
/* Declares work just done so the mock's virtual clock can charge for it. A no-op on a board.
 * Mock rule (a roofline: compute overlapped with double-buffered DMA), rates from the profile:
 *   cycles += max(ceil(macs / macs_per_cycle), ceil(onchip_bytes / onchip_bytes_per_cycle),
 *                 ceil(offchip_bytes / offchip_bytes_per_cycle)) */
void hal_account(uint64_t macs, uint64_t onchip_bytes, uint64_t offchip_bytes);

/* ---- chip description ------------------------------------------------------------------------ */

/* Profile parameters of the modelled chip. Rates are in thousandths per cycle ("per kilocycle")
 * so that costs are exact integer arithmetic the host's analytical model can reproduce bit for bit:
 * macs_per_kcycle = 2000 means 2 MACs per cycle, link_bytes_per_kcycle = 250 means 0.25 B/cycle. */
typedef struct {
    char name[HAL_PROFILE_NAME_MAX];
    uint32_t macs_per_kcycle;
    uint32_t onchip_bytes_per_kcycle;
    uint32_t offchip_bytes_per_kcycle;
    uint32_t link_bytes_per_kcycle;
    uint32_t link_latency_cycles; /* charged to the sender once per message */
    uint64_t onchip_bytes;        /* memory sizes */
    uint64_t offchip_bytes;
    uint64_t cycle_offset;        /* counter value at boot (chips do not boot at the same time) */
} hal_profile;

typedef struct {
    uint32_t chip_id;
    char profile_name[HAL_PROFILE_NAME_MAX];
    uint64_t onchip_bytes;
    uint64_t offchip_bytes;
    uint32_t nv_bytes;
} hal_chip_info_t;

void hal_chip_info(hal_chip_info_t *out);
/* The cost parameters in use. HAL_ERR_UNSUPPORTED on a port whose counter is real hardware. */
int hal_profile_get(hal_profile *out);

static inline const char *hal_strerror(int code) {
    switch (code) {
    case HAL_OK: return "ok";
    case HAL_ERR_TIMEOUT: return "timeout";
    case HAL_ERR_LINK_LOST: return "link lost";
    case HAL_ERR_SIZE: return "message size mismatch";
    case HAL_ERR_NO_LINK: return "no link to that peer";
    case HAL_ERR_ARG: return "argument out of range";
    case HAL_ERR_IO: return "i/o error";
    case HAL_ERR_PROTO: return "corrupt link frame";
    case HAL_ERR_UNSUPPORTED: return "unsupported";
    case HAL_ERR_NOT_CONFIGURED: return "links not configured";
    default: return "unknown error";
    }
}

#endif /* ORCH_HAL_H */

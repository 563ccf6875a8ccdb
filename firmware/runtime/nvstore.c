/* nvstore.c: two records, two slots; see nvstore.h for why. */
#include "runtime/nvstore.h"

#include "hal/hal.h"
#include "proto/crc32.h"

#define NV_RECORD_MAGIC 0x544D434Fu /* "OCMT" */
#define NV_RECORD_BYTES 64u

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static void wr32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static uint32_t slot_bytes(void) {
    uint32_t nv = hal_nv_size();
    if (nv < NV_RECORDS_BYTES + 2u * 4096u) return 0;
    return ((nv - NV_RECORDS_BYTES) / 2u) & ~4095u;
}

uint32_t nvstore_slot_base(uint32_t slot) { return NV_RECORDS_BYTES + slot * slot_bytes(); }

static int read_record(uint32_t area, nv_commit_t *c) {
    uint8_t r[NV_RECORD_BYTES];
    if (hal_nv_read(area * 2048u, r, sizeof r) != 0) return -1;
    if (rd32(r) != NV_RECORD_MAGIC || crc32_ieee(r, NV_RECORD_BYTES - 4) != rd32(r + NV_RECORD_BYTES - 4)) return -1;
    c->seq = rd32(r + 4);
    c->slot = rd32(r + 8);
    c->size = rd32(r + 12);
    c->crc = rd32(r + 16);
    for (int i = 0; i < 32; i++) c->plan_id[i] = r[20 + i];
    c->rank = rd32(r + 52);
    c->world = rd32(r + 56);
    if (c->seq == 0 || c->slot > 1 || c->size == 0 || c->size > slot_bytes()) return -1;
    return 0;
}

int nvstore_open(nvstore_t *s) {
    const nv_commit_t none = {0, 0, 0, 0, {0}, 0, 0};
    s->active = none;
    s->slot_bytes = slot_bytes();
    if (s->slot_bytes == 0) return -1;
    nv_commit_t a, b;
    int ok_a = read_record(0, &a) == 0, ok_b = read_record(1, &b) == 0;
    if (ok_a && (!ok_b || a.seq > b.seq)) s->active = a;
    else if (ok_b) s->active = b;
    return 0;
}

uint32_t nvstore_staging_slot(const nvstore_t *s) { return s->active.seq ? 1u - s->active.slot : 0u; }

int nvstore_crc(uint32_t slot, uint32_t off, uint32_t len, uint32_t *crc) {
    uint8_t buf[1024];
    uint32_t c = 0, base = nvstore_slot_base(slot);
    if ((uint64_t)off + len > slot_bytes()) return -1;
    const uint8_t *mapped = hal_nv_map(base + off, len); /* flash that reads in place: no copies */
    if (mapped) {
        *crc = crc32_ieee(mapped, len);
        return 0;
    }
    while (len) {
        uint32_t n = len < sizeof buf ? len : (uint32_t)sizeof buf;
        if (hal_nv_read(base + off, buf, n) != 0) return -1;
        c = crc32_update(c, buf, n);
        off += n;
        len -= n;
    }
    *crc = c;
    return 0;
}

int nvstore_commit(nvstore_t *s, const nv_commit_t *c) {
    uint8_t r[NV_RECORD_BYTES] = {0};
    nv_commit_t next = *c;
    next.seq = s->active.seq + 1u;
    next.slot = nvstore_staging_slot(s);
    wr32(r, NV_RECORD_MAGIC);
    wr32(r + 4, next.seq);
    wr32(r + 8, next.slot);
    wr32(r + 12, next.size);
    wr32(r + 16, next.crc);
    for (int i = 0; i < 32; i++) r[20 + i] = next.plan_id[i];
    wr32(r + 52, next.rank);
    wr32(r + 56, next.world);
    wr32(r + NV_RECORD_BYTES - 4, crc32_ieee(r, NV_RECORD_BYTES - 4));
    /* The shard's bytes must be durable before the record that points at them. The record goes
     * to the area the current record is not in, so a torn write leaves the old one intact. */
    if (hal_nv_sync() != 0) return -1;
    uint32_t area = (next.seq & 1u);
    if (hal_nv_write(area * 2048u, r, sizeof r) != 0 || hal_nv_sync() != 0) return -1;
    s->active = next;
    return 0;
}

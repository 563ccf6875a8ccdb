/* nvstore.h: the chip's flash layout and the atomic commit of a shard.
 *
 * Flash holds two commit records and two shard slots. A shard is written into the slot that is not
 * active (the staging slot); COMMIT checks its CRC and contents, then writes a new record with a
 * higher sequence number. Until that record is complete and its own CRC matches, the old record
 * (and so the previous shard) stays the active one: a half-written shard is never run. */
#ifndef RUNTIME_NVSTORE_H
#define RUNTIME_NVSTORE_H

#include <stdint.h>

#define NV_RECORDS_BYTES 4096u /* two 2048-byte record areas */

typedef struct {
    uint32_t seq;       /* 0: no record */
    uint32_t slot;      /* 0 or 1 */
    uint32_t size;      /* shard bytes */
    uint32_t crc;       /* CRC32 of the shard */
    uint8_t plan_id[32];
    uint32_t rank, world;
} nv_commit_t;

typedef struct {
    uint32_t slot_bytes;   /* capacity of each slot */
    nv_commit_t active;    /* active.seq == 0: nothing committed */
} nvstore_t;

/* Reads the records; returns 0, or <0 when the flash is too small to hold two slots. */
int nvstore_open(nvstore_t *s);
/* Flash offset of a slot's first byte. */
uint32_t nvstore_slot_base(uint32_t slot);
/* The slot new writes go to: the one that is not active. */
uint32_t nvstore_staging_slot(const nvstore_t *s);
/* CRC32 of [off, off+len) of a slot. <0 on a flash error. */
int nvstore_crc(uint32_t slot, uint32_t off, uint32_t len, uint32_t *crc);
/* Makes the staging slot's first c->size bytes the active shard (writes and syncs the record). */
int nvstore_commit(nvstore_t *s, const nv_commit_t *c);

#endif

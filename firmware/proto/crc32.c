#include "proto/crc32.h"

/* Slicing-by-8: eight 256-entry tables let the loop fold 8 bytes per step. Flashing checks every shard
 * byte four times (each WRITE frame, REGION_CRC, COMMIT, load), so this is on the path that bounds
 * flash throughput. The tables (8 KiB) are filled on first use from the reflected polynomial 0xEDB88320; the firmware
 * is single-threaded, and the fill is idempotent anyway. */
static uint32_t crc32_table[8][256];
static int crc32_ready;

static void crc32_init(void)
{
    for (uint32_t i = 0; i < 256u; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        crc32_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256u; i++) {
        uint32_t c = crc32_table[0][i];
        for (int s = 1; s < 8; s++) {
            c = (c >> 8) ^ crc32_table[0][c & 0xFFu];
            crc32_table[s][i] = c;
        }
    }
    crc32_ready = 1;
}

uint32_t crc32_update(uint32_t crc, const uint8_t *p, uint32_t n)
{
    /* zlib convention: the running value is kept inverted between calls. */
    uint32_t c = ~crc;
    if (!crc32_ready) crc32_init();
    while (n >= 8u) {
        c ^= (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | ((uint32_t)p[5] << 8) | ((uint32_t)p[6] << 16) | ((uint32_t)p[7] << 24);
        c = crc32_table[7][c & 0xFFu] ^ crc32_table[6][(c >> 8) & 0xFFu] ^
            crc32_table[5][(c >> 16) & 0xFFu] ^ crc32_table[4][c >> 24] ^
            crc32_table[3][hi & 0xFFu] ^ crc32_table[2][(hi >> 8) & 0xFFu] ^
            crc32_table[1][(hi >> 16) & 0xFFu] ^ crc32_table[0][hi >> 24];
        p += 8;
        n -= 8u;
    }
    while (n--) c = (c >> 8) ^ crc32_table[0][(c ^ *p++) & 0xFFu];
    return ~c;
}

uint32_t crc32_ieee(const uint8_t *p, uint32_t n)
{
    return crc32_update(0u, p, n);
}

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320): the checksum of every frame, of the staging
 * slot (REGION_CRC) and of a committed shard. Same numbers as Python's zlib.crc32, so the host can
 * check the chip with the standard library. */
#ifndef PROTO_CRC32_H
#define PROTO_CRC32_H

#include <stdint.h>

/* Continue a CRC over more bytes. `crc` is a previous result (0 to start), exactly like
 * zlib.crc32(data, crc): crc32_update(crc32_update(0, a, na), b, nb) == crc32 of a||b. */
uint32_t crc32_update(uint32_t crc, const uint8_t *p, uint32_t n);

/* CRC of one buffer: crc32_ieee("123456789", 9) == 0xCBF43926. */
uint32_t crc32_ieee(const uint8_t *p, uint32_t n);

#endif

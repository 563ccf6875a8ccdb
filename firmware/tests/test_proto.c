/* Unit and robustness tests of firmware/proto: CRC32, COBS, frames, the streaming decoder and the
 * dispatcher. Run: make build/test_proto && build/test_proto   (also make SAN=1 build-san/test_proto)
 * The argument `make test` passes (the golden directory) is not needed here. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto/cobs.h"
#include "proto/crc32.h"
#include "proto/dispatch.h"
#include "proto/frame.h"
#include "proto/msg.h"

static int g_passed, g_failed;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (cond) {                                                               \
            g_passed++;                                                           \
        } else {                                                                  \
            g_failed++;                                                           \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                \
        }                                                                         \
    } while (0)

/* ---- deterministic PRNG (xorshift64*) so failures reproduce ---- */
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static uint32_t rnd_below(uint32_t n)
{
    return n ? rnd() % n : 0u;
}

static void rnd_fill(uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
}

/* ---------------------------------------------------------------- CRC32 */

/* Bit-at-a-time definition of the reflected CRC-32, independent of the nibble table. */
static uint32_t crc32_reference(const uint8_t *p, uint32_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (uint32_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
}

static void test_crc32(void)
{
    static uint8_t buf[5000];
    CHECK(crc32_ieee((const uint8_t *)"123456789", 9) == 0xCBF43926u);
    CHECK(crc32_ieee((const uint8_t *)"", 0) == 0x00000000u);
    CHECK(crc32_ieee((const uint8_t *)"The quick brown fox jumps over the lazy dog", 43) == 0x414FA339u);
    CHECK(crc32_ieee((const uint8_t *)"a", 1) == 0xE8B7BE43u);
    for (int t = 0; t < 50; t++) {
        uint32_t n = rnd_below(sizeof buf);
        uint32_t cut = rnd_below(n + 1u);
        rnd_fill(buf, n);
        uint32_t whole = crc32_ieee(buf, n);
        CHECK(whole == crc32_reference(buf, n));
        CHECK(crc32_update(crc32_update(0, buf, cut), buf + cut, n - cut) == whole);
    }
}

/* ---------------------------------------------------------------- COBS */

static int cobs_vector(const uint8_t *raw, uint32_t n, const uint8_t *enc, uint32_t m)
{
    uint8_t out[600], back[600];
    uint32_t k = cobs_encode(raw, n, out, sizeof out);
    if (k != m || memcmp(out, enc, m) != 0) return 0;
    int32_t d = cobs_decode(enc, m, back, sizeof back);
    return d == (int32_t)n && memcmp(back, raw, n) == 0;
}

static void test_cobs_vectors(void)
{
    /* The published examples of the COBS paper / its common description. */
    { const uint8_t r[] = {0x00}, e[] = {0x01, 0x01}; CHECK(cobs_vector(r, 1, e, 2)); }
    { const uint8_t r[] = {0x00, 0x00}, e[] = {0x01, 0x01, 0x01}; CHECK(cobs_vector(r, 2, e, 3)); }
    { const uint8_t r[] = {0x00, 0x11, 0x00}, e[] = {0x01, 0x02, 0x11, 0x01}; CHECK(cobs_vector(r, 3, e, 4)); }
    { const uint8_t r[] = {0x11, 0x22, 0x00, 0x33}, e[] = {0x03, 0x11, 0x22, 0x02, 0x33};
      CHECK(cobs_vector(r, 4, e, 5)); }
    { const uint8_t r[] = {0x11, 0x22, 0x33, 0x44}, e[] = {0x05, 0x11, 0x22, 0x33, 0x44};
      CHECK(cobs_vector(r, 4, e, 5)); }
    { const uint8_t r[] = {0x11, 0x00, 0x00, 0x00}, e[] = {0x02, 0x11, 0x01, 0x01, 0x01};
      CHECK(cobs_vector(r, 4, e, 5)); }
    { const uint8_t e[] = {0x01}; CHECK(cobs_vector(e, 0, e, 1)); }

    uint8_t raw[300], enc[300];
    /* 01..FE (254 bytes) -> FF 01..FE: a full block at the end has no trailing empty block. */
    for (int i = 0; i < 254; i++) raw[i] = (uint8_t)(i + 1);
    enc[0] = 0xFF;
    memcpy(enc + 1, raw, 254);
    CHECK(cobs_vector(raw, 254, enc, 255));
    /* 00 01..FE (255) -> 01 FF 01..FE */
    raw[0] = 0;
    for (int i = 1; i < 255; i++) raw[i] = (uint8_t)i;
    enc[0] = 0x01;
    enc[1] = 0xFF;
    for (int i = 1; i < 255; i++) enc[i + 1] = (uint8_t)i;
    CHECK(cobs_vector(raw, 255, enc, 256));
    /* 01..FF (255) -> FF 01..FE 02 FF */
    for (int i = 0; i < 255; i++) raw[i] = (uint8_t)(i + 1);
    enc[0] = 0xFF;
    for (int i = 0; i < 254; i++) enc[i + 1] = (uint8_t)(i + 1);
    enc[255] = 0x02;
    enc[256] = 0xFF;
    CHECK(cobs_vector(raw, 255, enc, 257));
    /* 02..FF 00 (255) -> FF 02..FF 01 01 */
    for (int i = 0; i < 254; i++) raw[i] = (uint8_t)(i + 2);
    raw[254] = 0;
    enc[0] = 0xFF;
    for (int i = 0; i < 254; i++) enc[i + 1] = (uint8_t)(i + 2);
    enc[255] = 0x01;
    enc[256] = 0x01;
    CHECK(cobs_vector(raw, 255, enc, 257));
    /* 03..FF 00 01 (255) -> FE 03..FF 02 01 */
    for (int i = 0; i < 253; i++) raw[i] = (uint8_t)(i + 3);
    raw[253] = 0;
    raw[254] = 1;
    enc[0] = 0xFE;
    for (int i = 0; i < 253; i++) enc[i + 1] = (uint8_t)(i + 3);
    enc[254] = 0x02;
    enc[255] = 0x01;
    CHECK(cobs_vector(raw, 255, enc, 256));
}

static void test_cobs_roundtrip(void)
{
    static uint8_t raw[3000], enc[COBS_ENCODED_MAX(3000u)], back[3000];
    const uint32_t runs[] = {0, 1, 253, 254, 255, 256, 508, 509, 762, 2999};
    int ok = 1;
    /* Runs of non-zero bytes around the 254-byte block size, with zeros before/after/both. */
    for (uint32_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        for (int shape = 0; shape < 4; shape++) {
            uint32_t n = 0;
            if (shape & 1) raw[n++] = 0;
            for (uint32_t i = 0; i < runs[r] && n < sizeof raw - 1; i++) raw[n++] = (uint8_t)(1u + rnd_below(255));
            if (shape & 2) raw[n++] = 0;
            uint32_t m = cobs_encode(raw, n, enc, sizeof enc);
            ok &= m >= 1u && m <= COBS_ENCODED_MAX(n);
            ok &= memchr(enc, 0, m) == NULL;
            ok &= cobs_decode(enc, m, back, sizeof back) == (int32_t)n && memcmp(raw, back, n) == 0;
        }
    }
    CHECK(ok);
    /* Random data of mixed zero density. */
    ok = 1;
    for (int t = 0; t < 300; t++) {
        uint32_t n = rnd_below(sizeof raw);
        uint32_t zero_pct = rnd_below(101);
        for (uint32_t i = 0; i < n; i++) raw[i] = rnd_below(100) < zero_pct ? 0 : (uint8_t)(1u + rnd_below(255));
        uint32_t m = cobs_encode(raw, n, enc, sizeof enc);
        ok &= m >= 1u && m <= COBS_ENCODED_MAX(n) && memchr(enc, 0, m) == NULL;
        ok &= cobs_decode(enc, m, back, sizeof back) == (int32_t)n && memcmp(raw, back, n) == 0;
    }
    CHECK(ok);
    /* Errors: a zero inside, a block running past the end, an output too small, empty input. */
    { const uint8_t e[] = {0x03, 0x11, 0x00, 0x33}; CHECK(cobs_decode(e, 4, back, sizeof back) == COBS_ERR_FORMAT); }
    { const uint8_t e[] = {0x05, 0x11, 0x22}; CHECK(cobs_decode(e, 3, back, sizeof back) == COBS_ERR_FORMAT); }
    { const uint8_t e[] = {0x05, 0x11, 0x22, 0x33, 0x44}; CHECK(cobs_decode(e, 5, back, 3) == COBS_ERR_SPACE); }
    CHECK(cobs_decode(enc, 0, back, sizeof back) == COBS_ERR_FORMAT);
    /* Encoder never writes past cap: a canary after the buffer survives. */
    {
        uint8_t small[11];
        memset(raw, 0x5A, 100);
        small[10] = 0xEE;
        CHECK(cobs_encode(raw, 100, small, 10) == 0);
        CHECK(small[10] == 0xEE);
    }
}

/* ---------------------------------------------------------------- frames */

static uint8_t g_wire[PROTO_FRAME_WIRE_MAX + 16];

/* Raw frame (header | payload | crc) with every field chosen by the caller, COBS-encoded with a
 * delimiter: lets the tests lie about the length or the CRC. */
static uint32_t craft_frame(uint8_t version, uint8_t type, uint16_t seq, uint32_t len_field,
                            const uint8_t *payload, uint32_t n, int crc_delta, uint8_t *out, uint32_t cap)
{
    static uint8_t raw[PROTO_FRAME_RAW_MAX + 8192];
    if (n + 12u > sizeof raw) return 0;
    raw[0] = version;
    raw[1] = type;
    proto_put_u16(raw + 2, seq);
    proto_put_u32(raw + 4, len_field);
    if (n) memcpy(raw + 8, payload, n);
    proto_put_u32(raw + 8 + n, crc32_ieee(raw, 8 + n) + (uint32_t)crc_delta);
    uint32_t m = cobs_encode(raw, 12 + n, out, cap);
    if (m == 0 || m >= cap) return 0;
    out[m] = 0;
    return m + 1;
}

static int decode_all(proto_decoder *d, const uint8_t *buf, uint32_t n, proto_frame *last)
{
    int frames = 0;
    proto_frame f = {0, 0, 0, 0, NULL};
    for (uint32_t i = 0; i < n; i++) {
        if (proto_decoder_push(d, buf[i], &f)) {
            frames++;
            *last = f;
        }
    }
    return frames;
}

static void test_frame_roundtrip(void)
{
    static proto_decoder d;
    static uint8_t payload[PROTO_MAX_PAYLOAD];
    proto_frame f = {0, 0, 0, 0, NULL};
    int ok = 1;
    proto_decoder_init(&d);
    const uint32_t lens[] = {0, 1, 2, 253, 254, 255, 1000, PROTO_MAX_PAYLOAD - 1, PROTO_MAX_PAYLOAD};
    for (uint32_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint32_t n = lens[i];
        rnd_fill(payload, n);
        uint16_t seq = (uint16_t)rnd();
        uint8_t type = (uint8_t)rnd();
        uint32_t m = proto_frame_encode(type, seq, payload, n, g_wire, sizeof g_wire);
        ok &= m > 0 && m <= PROTO_FRAME_WIRE_MAX && g_wire[m - 1] == 0 && memchr(g_wire, 0, m - 1) == NULL;
        ok &= decode_all(&d, g_wire, m, &f) == 1;
        ok &= f.version == PROTO_VERSION && f.type == type && f.seq == seq && f.len == n;
        ok &= n == 0 || memcmp(f.payload, payload, n) == 0;
    }
    CHECK(ok);
    CHECK(d.counters.frames_ok == sizeof lens / sizeof lens[0]);

    /* Worst case for size: every payload byte non-zero fills PROTO_FRAME_WIRE_MAX exactly or less. */
    memset(payload, 0xAB, sizeof payload);
    uint32_t m = proto_frame_encode(PROTO_T_WRITE, 7, payload, PROTO_MAX_PAYLOAD, g_wire, PROTO_FRAME_WIRE_MAX);
    CHECK(m > 0 && m <= PROTO_FRAME_WIRE_MAX);
    /* Refusals: payload over the limit, buffer too small (canary intact). */
    CHECK(proto_frame_encode(PROTO_T_WRITE, 7, payload, PROTO_MAX_PAYLOAD + 1u, g_wire, sizeof g_wire) == 0);
    g_wire[20] = 0xEE;
    CHECK(proto_frame_encode(PROTO_T_WRITE, 7, payload, 100, g_wire, 20) == 0);
    CHECK(g_wire[20] == 0xEE);

    /* Header bytes are little-endian: seq 0x1234 goes out as 34 12. */
    {
        uint8_t raw[32];
        uint32_t k = proto_frame_encode(0x42, 0x1234, (const uint8_t *)"\x01\x02", 2, g_wire, sizeof g_wire);
        int32_t r = cobs_decode(g_wire, k - 1, raw, sizeof raw);
        CHECK(r == 14);
        CHECK(raw[0] == PROTO_VERSION && raw[1] == 0x42 && raw[2] == 0x34 && raw[3] == 0x12);
        CHECK(raw[4] == 2 && raw[5] == 0 && raw[6] == 0 && raw[7] == 0);
        CHECK(proto_get_u32(raw + 10) == crc32_ieee(raw, 10));
    }
}

/* Each malformed frame lands in exactly the counter that names its fault, and the decoder still
 * decodes the good frame that follows. */
static void test_decoder_counters(void)
{
    static proto_decoder d;
    static uint8_t payload[PROTO_MAX_PAYLOAD + 100];
    static uint8_t buf[2 * PROTO_FRAME_WIRE_MAX + 20000];
    proto_frame f = {0, 0, 0, 0, NULL};
    uint32_t n;
    rnd_fill(payload, sizeof payload);

    /* CRC off by one. */
    proto_decoder_init(&d);
    n = craft_frame(1, PROTO_T_PING, 1, 4, payload, 4, 1, buf, sizeof buf);
    CHECK(decode_all(&d, buf, n, &f) == 0 && d.counters.crc_errors == 1);

    /* Length field larger/smaller than the bytes sent. */
    proto_decoder_init(&d);
    n = craft_frame(1, PROTO_T_PING, 1, 5, payload, 4, 0, buf, sizeof buf);
    n += craft_frame(1, PROTO_T_PING, 1, 3, payload, 4, 0, buf + n, sizeof buf - n);
    CHECK(decode_all(&d, buf, n, &f) == 0 && d.counters.size_mismatch == 2);

    /* Shorter than header + CRC. */
    proto_decoder_init(&d);
    {
        const uint8_t tiny[] = {0x04, 0x01, 0x02, 0x03, 0x00};
        CHECK(decode_all(&d, tiny, sizeof tiny, &f) == 0 && d.counters.size_mismatch == 1);
    }

    /* Frame ends inside a COBS block: drop the byte before the delimiter. */
    proto_decoder_init(&d);
    payload[0] = 0x55;
    n = proto_frame_encode(PROTO_T_PING, 3, payload, 4, buf, sizeof buf);
    buf[n - 2] = 0;
    CHECK(decode_all(&d, buf, n - 1, &f) == 0);
    /* Whether the cut lands in a block depends on the CRC bytes; recompute from the encoding. */
    CHECK(d.counters.cobs_errors + d.counters.size_mismatch + d.counters.crc_errors == 1);
    {
        /* A block code promising 4 bytes, then the delimiter after 2: always a COBS error. */
        const uint8_t cut[] = {0x05, 0x11, 0x22, 0x00};
        proto_decoder_init(&d);
        CHECK(decode_all(&d, cut, sizeof cut, &f) == 0 && d.counters.cobs_errors == 1);
    }

    /* Header announcing more than the maximum: rejected at the header, the rest skipped. */
    proto_decoder_init(&d);
    n = craft_frame(1, PROTO_T_WRITE, 1, PROTO_MAX_PAYLOAD + 1u, payload, PROTO_MAX_PAYLOAD + 1u, 0, buf, sizeof buf);
    CHECK(n > 0);
    CHECK(decode_all(&d, buf, n, &f) == 0 && d.counters.oversized == 1 && d.counters.size_mismatch == 0);
    proto_decoder_init(&d);
    n = craft_frame(1, PROTO_T_WRITE, 1, 0xFFFFFFFFu, payload, 16, 0, buf, sizeof buf);
    CHECK(decode_all(&d, buf, n, &f) == 0 && d.counters.oversized == 1);
    /* Header claims a small length but the frame goes on past the largest possible frame. */
    proto_decoder_init(&d);
    {
        uint32_t k = craft_frame(1, PROTO_T_WRITE, 1, 8, payload, 8, 0, buf, sizeof buf);
        k -= 1; /* reopen the frame: overwrite the delimiter with a long run of non-zero bytes */
        for (uint32_t i = 0; i < PROTO_FRAME_RAW_MAX + 600u; i++) buf[k++] = (uint8_t)(1u + rnd_below(255));
        buf[k++] = 0;
        n = k;
    }
    CHECK(decode_all(&d, buf, n, &f) == 0 && d.counters.oversized == 1);

    /* Another protocol version: returned (so it can be answered) but counted apart. */
    proto_decoder_init(&d);
    n = proto_frame_encode_version(PROTO_VERSION + 1u, PROTO_T_IDENTIFY, 9, payload, 0, buf, sizeof buf);
    CHECK(decode_all(&d, buf, n, &f) == 1 && f.version == PROTO_VERSION + 1u && f.seq == 9);
    CHECK(d.counters.version_mismatch == 1 && d.counters.frames_ok == 0);

    /* Empty frames (0x00 0x00 ...) are resync bytes, not errors. */
    proto_decoder_init(&d);
    memset(buf, 0, 10);
    CHECK(decode_all(&d, buf, 10, &f) == 0);
    CHECK(d.counters.size_mismatch + d.counters.cobs_errors + d.counters.crc_errors == 0);

    /* Garbage, a delimiter, then a good frame: the good frame survives. */
    proto_decoder_init(&d);
    n = 0;
    for (int i = 0; i < 700; i++) buf[n++] = (uint8_t)rnd();
    buf[n++] = 0;
    n += proto_frame_encode(PROTO_T_PING, 77, payload, 4, buf + n, sizeof buf - n);
    CHECK(decode_all(&d, buf, n, &f) >= 1 && f.seq == 77 && f.type == PROTO_T_PING);
}

/* ---------------------------------------------------------------- dispatcher */

typedef struct {
    int      calls;
    uint8_t  last_handler;
    uint16_t last_seq;
    uint32_t a, b, n;
    uint8_t  first_byte;
    proto_commit commit;
    proto_configure configure;
    proto_run run;
    uint32_t prompt_sum;
    int      ret; /* what the handlers return */
    /* replies */
    int      replies;
    uint8_t  reply_type;
    uint16_t reply_seq;
    uint16_t reply_code;
    uint32_t reply_len;
    char     reply_text[PROTO_ERROR_TEXT_MAX + 1];
} test_ctx;

static void t_reply(void *vctx, uint8_t type, uint16_t seq, const uint8_t *payload, uint32_t len)
{
    test_ctx *c = vctx;
    uint8_t wire[PROTO_FRAME_WIRE_MAX];
    c->replies++;
    c->reply_type = type;
    c->reply_seq = seq;
    c->reply_len = len;
    c->reply_code = 0;
    c->reply_text[0] = 0;
    if (type == PROTO_T_ERROR && len >= 2) {
        uint32_t k = len - 2 < PROTO_ERROR_TEXT_MAX ? len - 2 : PROTO_ERROR_TEXT_MAX;
        c->reply_code = proto_get_u16(payload);
        memcpy(c->reply_text, payload + 2, k);
        c->reply_text[k] = 0;
    }
    /* Every reply must also be encodable as a frame. */
    CHECK(proto_frame_encode(type, seq, payload, len, wire, sizeof wire) > 0);
}

static int t_ok(test_ctx *c, uint8_t which, uint16_t seq)
{
    c->calls++;
    c->last_handler = which;
    c->last_seq = seq;
    if (c->ret == 0) t_reply(c, PROTO_T_OK, seq, NULL, 0);
    return c->ret;
}

static int h_identify(void *ctx, uint16_t seq) { return t_ok(ctx, PROTO_T_IDENTIFY, seq); }
static int h_reset(void *ctx, uint16_t seq) { return t_ok(ctx, PROTO_T_RESET, seq); }
static int h_stats(void *ctx, uint16_t seq) { return t_ok(ctx, PROTO_T_STATS, seq); }
static int h_ping(void *ctx, uint16_t seq, uint32_t nonce)
{
    ((test_ctx *)ctx)->a = nonce;
    return t_ok(ctx, PROTO_T_PING, seq);
}
static int h_write(void *ctx, uint16_t seq, uint32_t offset, const uint8_t *data, uint32_t n)
{
    test_ctx *c = ctx;
    c->a = offset;
    c->n = n;
    c->first_byte = data[0];
    (void)data[n - 1]; /* ASan: the whole range must be readable */
    return t_ok(ctx, PROTO_T_WRITE, seq);
}
static int h_region_crc(void *ctx, uint16_t seq, uint32_t offset, uint32_t length)
{
    ((test_ctx *)ctx)->a = offset;
    ((test_ctx *)ctx)->b = length;
    return t_ok(ctx, PROTO_T_REGION_CRC, seq);
}
static int h_commit(void *ctx, uint16_t seq, const proto_commit *m)
{
    ((test_ctx *)ctx)->commit = *m;
    return t_ok(ctx, PROTO_T_COMMIT, seq);
}
static int h_configure(void *ctx, uint16_t seq, const proto_configure *m)
{
    ((test_ctx *)ctx)->configure = *m;
    return t_ok(ctx, PROTO_T_CONFIGURE, seq);
}
static int h_run(void *ctx, uint16_t seq, const proto_run *r)
{
    test_ctx *c = ctx;
    c->run = *r;
    c->prompt_sum = 0;
    for (uint32_t i = 0; i < r->n_prompt; i++) c->prompt_sum += proto_run_prompt_id(r, i);
    return t_ok(ctx, PROTO_T_RUN, seq);
}

static proto_counters g_disp_counters;

static proto_handlers test_handlers(void)
{
    proto_handlers h;
    memset(&h, 0, sizeof h);
    h.reply = t_reply;
    h.counters = &g_disp_counters;
    h.identify = h_identify;
    h.write = h_write;
    h.region_crc = h_region_crc;
    h.commit = h_commit;
    h.configure = h_configure;
    h.ping = h_ping;
    h.run = h_run;
    h.reset = h_reset;
    h.stats = h_stats;
    return h;
}

static int dispatch_raw(test_ctx *c, const proto_handlers *h, uint8_t type, uint16_t seq,
                        const uint8_t *payload, uint32_t len)
{
    proto_frame f = {0, 0, 0, 0, NULL};
    f.version = PROTO_VERSION;
    f.type = type;
    f.seq = seq;
    f.len = len;
    f.payload = payload;
    c->replies = 0;
    c->calls = 0;
    return proto_dispatch(&f, h, c);
}

static void test_dispatch(void)
{
    static uint8_t p[PROTO_MAX_PAYLOAD];
    static test_ctx c;
    proto_handlers h = test_handlers();
    memset(&c, 0, sizeof c);
    memset(&g_disp_counters, 0, sizeof g_disp_counters);

    /* Good requests reach their handler with parsed values. */
    CHECK(dispatch_raw(&c, &h, PROTO_T_IDENTIFY, 5, p, 0) == 0 && c.calls == 1 && c.last_handler == PROTO_T_IDENTIFY);
    CHECK(c.replies == 1 && c.reply_type == PROTO_T_OK && c.reply_seq == 5);

    proto_put_u32(p, 0xDEADBEEFu);
    CHECK(dispatch_raw(&c, &h, PROTO_T_PING, 6, p, 4) == 0 && c.a == 0xDEADBEEFu && c.last_seq == 6);

    proto_put_u32(p, 4096);
    p[4] = 0x99;
    CHECK(dispatch_raw(&c, &h, PROTO_T_WRITE, 7, p, 4 + 1000) == 0);
    CHECK(c.a == 4096 && c.n == 1000 && c.first_byte == 0x99);
    CHECK(dispatch_raw(&c, &h, PROTO_T_WRITE, 7, p, PROTO_MAX_PAYLOAD) == 0 && c.n == PROTO_WRITE_MAX_DATA);

    proto_put_u32(p, 100);
    proto_put_u32(p + 4, 200);
    CHECK(dispatch_raw(&c, &h, PROTO_T_REGION_CRC, 8, p, 8) == 0 && c.a == 100 && c.b == 200);

    proto_put_u32(p, 123456);
    proto_put_u32(p + 4, 0xCAFEF00Du);
    for (int i = 0; i < 32; i++) p[8 + i] = (uint8_t)(i * 7);
    proto_put_u32(p + 40, 3);
    proto_put_u32(p + 44, 4);
    CHECK(dispatch_raw(&c, &h, PROTO_T_COMMIT, 9, p, 48) == 0);
    CHECK(c.commit.total_bytes == 123456 && c.commit.crc32 == 0xCAFEF00Du && c.commit.plan_id[31] == (uint8_t)(31 * 7));
    CHECK(c.commit.rank == 3 && c.commit.world == 4);

    proto_put_u32(p, 2);
    proto_put_u32(p + 4, 8);
    proto_put_u32(p + 8, PROTO_TOPO_HIERARCHICAL);
    proto_put_u32(p + 12, 4);
    CHECK(dispatch_raw(&c, &h, PROTO_T_CONFIGURE, 10, p, 16) == 0);
    CHECK(c.configure.rank == 2 && c.configure.world == 8 && c.configure.group_size == 4);

    proto_put_u32(p, PROTO_RUN_TRACE | PROTO_RUN_LOGITS);
    proto_put_u32(p + 4, 32);
    proto_put_u32(p + 8, 0x00008000u);
    proto_put_u64(p + 12, 0x0102030405060708ull);
    proto_put_u32(p + 20, 3);
    proto_put_u32(p + 24, 1);
    proto_put_u32(p + 28, 31999);
    proto_put_u32(p + 32, 500);
    CHECK(dispatch_raw(&c, &h, PROTO_T_RUN, 11, p, 36) == 0);
    CHECK(c.run.flags == 3 && c.run.n_tokens == 32 && c.run.temperature_q16 == 0x8000u);
    CHECK(c.run.seed == 0x0102030405060708ull && c.run.n_prompt == 3 && c.prompt_sum == 1 + 31999 + 500);
    /* The largest prompt that fits a frame. */
    proto_put_u32(p + 20, PROTO_RUN_MAX_PROMPT);
    CHECK(dispatch_raw(&c, &h, PROTO_T_RUN, 11, p, 24 + 4 * PROTO_RUN_MAX_PROMPT) == 0);

    CHECK(dispatch_raw(&c, &h, PROTO_T_RESET, 12, p, 0) == 0 && c.last_handler == PROTO_T_RESET);
    CHECK(dispatch_raw(&c, &h, PROTO_T_STATS, 13, p, 0) == 0 && c.last_handler == PROTO_T_STATS);
    CHECK(g_disp_counters.bad_length == 0 && g_disp_counters.unknown_type == 0);

    /* Wrong lengths: ERROR(BAD_LENGTH) with the request's seq, handler not called. */
    struct { uint8_t type; uint32_t len; } bad[] = {
        {PROTO_T_IDENTIFY, 1}, {PROTO_T_WRITE, 0}, {PROTO_T_WRITE, 4}, {PROTO_T_REGION_CRC, 7},
        {PROTO_T_REGION_CRC, 9}, {PROTO_T_COMMIT, 47}, {PROTO_T_COMMIT, 49}, {PROTO_T_CONFIGURE, 12},
        {PROTO_T_PING, 0}, {PROTO_T_PING, 8}, {PROTO_T_RUN, 23}, {PROTO_T_RESET, 4}, {PROTO_T_STATS, 2},
    };
    memset(p, 0, 64);
    for (uint32_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = dispatch_raw(&c, &h, bad[i].type, (uint16_t)(100 + i), p, bad[i].len);
        CHECK(rc == PROTO_E_BAD_LENGTH && c.calls == 0 && c.replies == 1);
        CHECK(c.reply_type == PROTO_T_ERROR && c.reply_code == PROTO_E_BAD_LENGTH && c.reply_seq == 100 + i);
    }
    CHECK(g_disp_counters.bad_length == sizeof bad / sizeof bad[0]);
    CHECK(strstr(c.reply_text, "STATS") != NULL && strstr(c.reply_text, "2 bytes") != NULL);

    /* RUN whose n_prompt disagrees with the payload, including counts that would wrap 4 * n. */
    const uint32_t prompts[] = {2, 4, 0x40000001u, 0xFFFFFFFFu, PROTO_RUN_MAX_PROMPT + 1u};
    for (uint32_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
        memset(p, 0, 40);
        proto_put_u32(p + 20, prompts[i]);
        CHECK(dispatch_raw(&c, &h, PROTO_T_RUN, 1, p, 24 + 12) == PROTO_E_BAD_LENGTH && c.calls == 0);
    }

    /* Bad field values: ERROR(BAD_ARG). */
    memset(p, 0, 64);
    proto_put_u32(p, 0xFFFFFFF0u);
    CHECK(dispatch_raw(&c, &h, PROTO_T_WRITE, 1, p, 4 + 100) == PROTO_E_BAD_ARG && c.calls == 0);
    proto_put_u32(p + 4, 0x20);
    CHECK(dispatch_raw(&c, &h, PROTO_T_REGION_CRC, 1, p, 8) == PROTO_E_BAD_ARG && c.calls == 0);
    memset(p, 0, 64);
    proto_put_u32(p, 10);
    proto_put_u32(p + 40, 4);
    proto_put_u32(p + 44, 4); /* rank == world */
    CHECK(dispatch_raw(&c, &h, PROTO_T_COMMIT, 1, p, 48) == PROTO_E_BAD_ARG && c.calls == 0);
    proto_put_u32(p + 40, 0);
    proto_put_u32(p + 44, 0); /* world 0 */
    CHECK(dispatch_raw(&c, &h, PROTO_T_COMMIT, 1, p, 48) == PROTO_E_BAD_ARG && c.calls == 0);
    proto_put_u32(p + 44, 1);
    proto_put_u32(p, 0); /* total 0 */
    CHECK(dispatch_raw(&c, &h, PROTO_T_COMMIT, 1, p, 48) == PROTO_E_BAD_ARG && c.calls == 0);
    {
        const uint32_t cfg[][4] = {{0, 0, 0, 0}, {4, 4, 0, 0}, {0, 4, 0, 2}, {0, 6, 1, 4}, {0, 4, 1, 0}, {0, 4, 2, 0}};
        for (uint32_t i = 0; i < 6; i++) {
            for (int k = 0; k < 4; k++) proto_put_u32(p + 4 * k, cfg[i][k]);
            CHECK(dispatch_raw(&c, &h, PROTO_T_CONFIGURE, 1, p, 16) == PROTO_E_BAD_ARG && c.calls == 0);
        }
    }
    memset(p, 0, 64);
    proto_put_u32(p, 0x4); /* unknown RUN flag */
    CHECK(dispatch_raw(&c, &h, PROTO_T_RUN, 1, p, 24) == PROTO_E_BAD_ARG && c.calls == 0);

    /* Unknown types, replies sent to a chip, and types whose handler is missing. */
    CHECK(dispatch_raw(&c, &h, 0x00, 50, p, 0) == PROTO_E_UNKNOWN_TYPE && c.reply_seq == 50);
    CHECK(dispatch_raw(&c, &h, 0x7F, 51, p, 3) == PROTO_E_UNKNOWN_TYPE);
    CHECK(dispatch_raw(&c, &h, PROTO_T_ACK, 52, p, 8) == PROTO_E_UNKNOWN_TYPE);
    {
        proto_handlers h2 = h;
        h2.stats = NULL;
        CHECK(dispatch_raw(&c, &h2, PROTO_T_STATS, 53, p, 0) == PROTO_E_UNKNOWN_TYPE && c.calls == 0);
    }
    CHECK(g_disp_counters.unknown_type == 4);
    CHECK(strstr(c.reply_text, "unknown message type 9") != NULL);

    /* A handler's error code becomes ERROR(code) with the request's seq. */
    c.ret = PROTO_E_BAD_STATE;
    CHECK(dispatch_raw(&c, &h, PROTO_T_IDENTIFY, 60, p, 0) == PROTO_E_BAD_STATE);
    CHECK(c.calls == 1 && c.replies == 1 && c.reply_code == PROTO_E_BAD_STATE && c.reply_seq == 60);
    CHECK(strcmp(c.reply_text, "bad state") == 0);
    c.ret = -5; /* not a code: reported as internal */
    CHECK(dispatch_raw(&c, &h, PROTO_T_IDENTIFY, 61, p, 0) == PROTO_E_INTERNAL && c.reply_code == PROTO_E_INTERNAL);
    c.ret = 0;

    /* Another protocol version: answered with BAD_VERSION, never handled. */
    {
        proto_frame f = {PROTO_VERSION + 1u, PROTO_T_IDENTIFY, 70, 0, p};
        char want[32];
        snprintf(want, sizeof want, "version %u", (unsigned)(PROTO_VERSION + 1u));
        c.calls = 0;
        CHECK(proto_dispatch(&f, &h, &c) == PROTO_E_BAD_VERSION && c.calls == 0 && c.reply_code == PROTO_E_BAD_VERSION);
        CHECK(strstr(c.reply_text, want) != NULL);
    }
}

/* ---------------------------------------------------------------- packers */

static void test_pack(void)
{
    static uint8_t p[PROTO_MAX_PAYLOAD];
    proto_identify_reply m;
    memset(&m, 0, sizeof m);
    m.chip_id = 0x11223344u;
    m.protocol_version = PROTO_VERSION;
    m.max_payload = PROTO_MAX_PAYLOAD;
    m.window = 8;
    m.onchip_bytes = 0x40000;
    m.offchip_bytes = 0x800000;
    m.nv_bytes = 0x1000000;
    m.slot_bytes = 0x700000;
    strcpy(m.fw_version, "0.1.0-this-name-is-too-long");
    strcpy(m.profile, "stm32h7");
    m.committed.valid = 1;
    m.committed.plan_id[0] = 0xAA;
    m.committed.plan_id[31] = 0xBB;
    m.committed.rank = 1;
    m.committed.world = 2;
    m.committed.shard_bytes = 5000;
    m.committed.shard_crc = 0x12345678u;
    m.counters.frames_ok = 10;
    m.counters.bad_length = 3;
    CHECK(proto_pack_identify_reply(p, PROTO_IDENTIFY_REPLY_BYTES - 1, &m) == 0);
    CHECK(proto_pack_identify_reply(p, sizeof p, &m) == 164 && PROTO_IDENTIFY_REPLY_BYTES == 164);
    CHECK(proto_get_u32(p) == 0x11223344u && proto_get_u16(p + 4) == PROTO_VERSION && proto_get_u32(p + 8) == PROTO_MAX_PAYLOAD);
    CHECK(proto_get_u32(p + 12) == 8 && proto_get_u32(p + 28) == 0x700000);
    CHECK(memcmp(p + 32, "0.1.0-this-name", 15) == 0 && p[47] == 0); /* truncated, NUL-terminated */
    CHECK(memcmp(p + 48, "stm32h7", 7) == 0 && p[55] == 0 && p[79] == 0);
    CHECK(p[80] == 1 && p[84] == 0xAA && p[115] == 0xBB && proto_get_u32(p + 116) == 1);
    CHECK(proto_get_u32(p + 124) == 5000 && proto_get_u32(p + 128) == 0x12345678u);
    CHECK(proto_get_u32(p + 132) == 10 && proto_get_u32(p + 160) == 3);

    proto_trace_record r[3];
    memset(r, 0, sizeof r);
    r[2].token_index = 7;
    r[2].phase = PROTO_PHASE_ALLREDUCE_FFN;
    r[2].layer = 5;
    r[2].start_cycles = 0x1122334455667788ull;
    r[2].end_cycles = 0x99ull << 56;
    r[2].macs = 1;
    r[2].onchip_bytes = 2;
    r[2].offchip_bytes = 3;
    r[2].link_tx_bytes = 4;
    r[2].link_rx_bytes = 0xFFFFFFFFu;
    CHECK(proto_pack_trace(p, sizeof p, r, 3) == 4 + 3 * 56);
    {
        const uint8_t *q = p + 4 + 2 * 56;
        CHECK(proto_get_u32(p) == 3 && proto_get_u32(q) == 7 && q[4] == PROTO_PHASE_ALLREDUCE_FFN && q[5] == 5);
        CHECK(proto_get_u64(q + 8) == 0x1122334455667788ull && proto_get_u64(q + 16) == (0x99ull << 56));
        CHECK(proto_get_u64(q + 24) == 1 && proto_get_u64(q + 40) == 3 && proto_get_u32(q + 52) == 0xFFFFFFFFu);
    }
    CHECK(proto_pack_trace(p, sizeof p, r, PROTO_TRACE_MAX_RECORDS + 1u) == 0);
    CHECK(4 + PROTO_TRACE_MAX_RECORDS * 56 <= PROTO_MAX_PAYLOAD);

    int32_t v[3] = {-1, 0x7FFFFFFF, (int32_t)0x80000000u};
    CHECK(proto_pack_logits(p, sizeof p, 16000, v, 3) == 20);
    CHECK(proto_get_u32(p) == 16000 && proto_get_u32(p + 4) == 3 && proto_get_u32(p + 8) == 0xFFFFFFFFu);
    CHECK(proto_get_u32(p + 16) == 0x80000000u);
    CHECK(proto_pack_logits(p, sizeof p, 0, v, PROTO_LOGITS_MAX_COUNT + 1u) == 0);

    proto_done d = {PROTO_E_LINK_LOST, 17, 0xABCDEF0123ull};
    CHECK(proto_pack_done(p, sizeof p, &d) == 16 && proto_get_u16(p) == PROTO_E_LINK_LOST);
    CHECK(proto_get_u32(p + 4) == 17 && proto_get_u64(p + 8) == 0xABCDEF0123ull);

    proto_token t = {2, 9, 31999, 1234567};
    CHECK(proto_pack_token(p, sizeof p, &t) == 20 && proto_get_u32(p + 8) == 31999 && proto_get_u64(p + 12) == 1234567);
    CHECK(proto_pack_pong(p, sizeof p, 42, 1ull << 40) == 12 && proto_get_u64(p + 4) == 1ull << 40);
    CHECK(proto_pack_ack(p, sizeof p, 4096, 4000) == 8 && proto_get_u32(p + 4) == 4000);
    CHECK(proto_pack_nak(p, sizeof p, PROTO_E_BUSY, 8192) == 8 && proto_get_u16(p) == PROTO_E_BUSY && proto_get_u32(p + 4) == 8192);
    CHECK(proto_pack_crc_reply(p, sizeof p, 1, 2, 3) == 12 && proto_get_u32(p + 8) == 3);

    {
        char longtext[400];
        memset(longtext, 'x', sizeof longtext - 1);
        longtext[sizeof longtext - 1] = 0;
        CHECK(proto_pack_error(p, sizeof p, 7, longtext) == 2 + PROTO_ERROR_TEXT_MAX);
        CHECK(proto_pack_error(p, 10, 7, longtext) == 10);
        CHECK(proto_pack_error(p, sizeof p, 7, "hi") == 4 && p[2] == 'h' && proto_get_u16(p) == 7);
    }
    CHECK(strcmp(proto_error_text(PROTO_E_COMMIT_CRC), "crc mismatch on commit") == 0);
    CHECK(strcmp(proto_error_text(999), "unknown error") == 0);
}

/* ---------------------------------------------------------------- robustness */

/* One frame the stream generator produced, and what must happen to it. */
enum { EXPECT_DROP, EXPECT_OK, EXPECT_UNKNOWN, EXPECT_BADLEN, EXPECT_VERSION };

#define ROBUST_FRAMES 20000u
#define ROBUST_STREAM (16u * 1024u * 1024u)

typedef struct {
    uint8_t  type;
    uint16_t seq;
    uint32_t len;
    uint32_t crc; /* of the payload, to compare what was delivered */
    uint8_t  expect;
    uint8_t  kind; /* which mutation made it, for failure messages */
} robust_expect;

static robust_expect g_expect[ROBUST_FRAMES];
static uint8_t g_stream[ROBUST_STREAM];

typedef struct {
    test_ctx  t;
    uint32_t  delivered;
    uint32_t  next_expect; /* index into g_expect of the next frame that must arrive */
    uint32_t  mismatches;
    uint32_t  replies_missing;
    uint32_t  unknown_seen, badlen_seen, version_seen;
    proto_handlers h;
} robust_ctx;

static uint32_t expected_len(uint8_t type)
{
    switch (type) {
    case PROTO_T_IDENTIFY: case PROTO_T_RESET: case PROTO_T_STATS: return 0;
    case PROTO_T_REGION_CRC: return 8;
    case PROTO_T_COMMIT: return 48;
    case PROTO_T_CONFIGURE: return 16;
    case PROTO_T_PING: return 4;
    default: return 0;
    }
}

/* A payload that the dispatcher accepts for `type`. */
static uint32_t valid_payload(uint8_t type, uint8_t *p)
{
    uint32_t n;
    switch (type) {
    case PROTO_T_WRITE:
        n = 4u + 1u + rnd_below(rnd_below(8) == 0 ? PROTO_WRITE_MAX_DATA : 300u);
        rnd_fill(p, n);
        proto_put_u32(p, rnd_below(1u << 24));
        return n;
    case PROTO_T_REGION_CRC:
        proto_put_u32(p, rnd_below(1u << 20));
        proto_put_u32(p + 4, rnd_below(1u << 20));
        return 8;
    case PROTO_T_COMMIT:
        rnd_fill(p, 48);
        proto_put_u32(p, 1u + rnd_below(1000000));
        proto_put_u32(p + 44, 1u + rnd_below(8));
        proto_put_u32(p + 40, rnd_below(proto_get_u32(p + 44)));
        return 48;
    case PROTO_T_CONFIGURE:
        proto_put_u32(p + 4, 4);
        proto_put_u32(p, rnd_below(4));
        proto_put_u32(p + 8, rnd_below(2));
        proto_put_u32(p + 12, proto_get_u32(p + 8) ? 2 : 0);
        return 16;
    case PROTO_T_RUN: {
        uint32_t k = rnd_below(64);
        memset(p, 0, 24);
        proto_put_u32(p, rnd_below(4));
        proto_put_u32(p + 20, k);
        rnd_fill(p + 24, 4 * k);
        return 24 + 4 * k;
    }
    default:
        n = expected_len(type);
        rnd_fill(p, n);
        return n;
    }
}

static void on_robust_frame(void *vctx, const proto_frame *f)
{
    robust_ctx *c = vctx;
    c->delivered++;
    /* Frames must arrive in order; skip expectations of frames that were meant to be dropped. */
    while (c->next_expect < ROBUST_FRAMES && g_expect[c->next_expect].expect == EXPECT_DROP) c->next_expect++;
    if (c->next_expect >= ROBUST_FRAMES) {
        c->mismatches++;
        return;
    }
    const robust_expect *e = &g_expect[c->next_expect++];
    if (e->type != f->type || e->seq != f->seq || e->len != f->len || e->crc != crc32_ieee(f->payload, f->len)) {
        if (c->mismatches < 5)
            printf("unexpected frame: type %u seq %u len %u (made by mutation %u); expected type %u seq %u len %u\n",
                   f->type, f->seq, (unsigned)f->len, f->seq < ROBUST_FRAMES ? g_expect[f->seq].kind : 99u, e->type,
                   e->seq, (unsigned)e->len);
        c->mismatches++;
        return;
    }
    c->t.replies = 0;
    int rc = proto_dispatch(f, &c->h, &c->t);
    if (c->t.replies != 1 || c->t.reply_seq != f->seq) c->replies_missing++;
    if (rc == PROTO_E_UNKNOWN_TYPE) c->unknown_seen++;
    if (rc == PROTO_E_BAD_LENGTH) c->badlen_seen++;
    if (rc == PROTO_E_BAD_VERSION) c->version_seen++;
    switch (e->expect) {
    case EXPECT_OK: if (rc != 0) c->mismatches++; break;
    case EXPECT_UNKNOWN: if (rc != PROTO_E_UNKNOWN_TYPE) c->mismatches++; break;
    case EXPECT_BADLEN: if (rc != PROTO_E_BAD_LENGTH) c->mismatches++; break;
    case EXPECT_VERSION: if (rc != PROTO_E_BAD_VERSION) c->mismatches++; break;
    default: break;
    }
}

static void test_robustness(void)
{
    static const uint8_t known[] = {PROTO_T_IDENTIFY, PROTO_T_WRITE, PROTO_T_REGION_CRC, PROTO_T_COMMIT,
                                    PROTO_T_CONFIGURE, PROTO_T_PING, PROTO_T_RUN, PROTO_T_RESET, PROTO_T_STATS};
    static uint8_t payload[PROTO_MAX_PAYLOAD + 64];
    static proto_decoder d;
    static robust_ctx rc;
    uint32_t n = 0;
    uint32_t want_ok = 0, want_unknown = 0, want_badlen = 0, want_version = 0, want_delivered = 0;

    memset(&rc, 0, sizeof rc);
    memset(&g_disp_counters, 0, sizeof g_disp_counters);
    rc.h = test_handlers();
    proto_decoder_init(&d);
    rc.h.counters = &d.counters;

    for (uint32_t i = 0; i < ROBUST_FRAMES; i++) {
        robust_expect *e = &g_expect[i];
        uint8_t type = known[rnd_below(sizeof known)];
        uint16_t seq = (uint16_t)i;
        uint32_t len = valid_payload(type, payload);
        uint32_t kind = rnd_below(12);
        uint32_t start = n;
        uint8_t *out = g_stream + n;
        uint32_t cap = ROBUST_STREAM - n;
        uint32_t m;

        if (cap < 3u * PROTO_FRAME_WIRE_MAX + 4096u) break;
        e->expect = EXPECT_DROP;
        e->type = type;
        e->seq = seq;
        e->len = len;
        switch (kind) {
        case 0: case 1: case 2: /* intact */
            m = proto_frame_encode(type, seq, payload, len, out, cap);
            e->expect = EXPECT_OK;
            break;
        case 3: { /* 1..3 bit flips anywhere before the delimiter */
            m = proto_frame_encode(type, seq, payload, len, out, cap);
            /* Distinct bit positions: two flips of the same bit would cancel out. */
            uint32_t flips = 1 + rnd_below(3), bits[3];
            for (uint32_t k = 0; k < flips; k++) {
                uint32_t b, dup;
                do {
                    b = rnd_below(8u * (m - 1));
                    dup = 0;
                    for (uint32_t j = 0; j < k; j++) dup |= bits[j] == b;
                } while (dup);
                bits[k] = b;
                out[b / 8u] ^= (uint8_t)(1u << (b % 8u));
            }
            break;
        }
        case 4: /* truncated: cut somewhere, keep a delimiter */
            m = proto_frame_encode(type, seq, payload, len, out, cap);
            m = 1 + rnd_below(m - 1);
            out[m - 1] = 0;
            break;
        case 5: { /* length field that lies (CRC recomputed, so only the size can tell) */
            uint32_t lie = len + 1u + rnd_below(40);
            if (rnd_below(2) && len > 0) lie = rnd_below(len);
            m = craft_frame(PROTO_VERSION, type, seq, lie, payload, len, 0, out, cap);
            break;
        }
        case 6: /* wrong CRC */
            m = craft_frame(PROTO_VERSION, type, seq, len, payload, len, 1 + (int)rnd_below(1000), out, cap);
            break;
        case 7: /* unknown type, otherwise perfect */
            type = (uint8_t)(0x0A + rnd_below(0x70));
            if (rnd_below(2)) type = (uint8_t)(0x80 + rnd_below(0x80));
            e->type = type;
            m = proto_frame_encode(type, seq, payload, len, out, cap);
            e->expect = EXPECT_UNKNOWN;
            break;
        case 8: { /* oversized length field, some payload bytes follow */
            uint32_t big = PROTO_MAX_PAYLOAD + 1u + rnd_below(0x7FFFFFFFu);
            uint32_t k = rnd_below(PROTO_MAX_PAYLOAD + 64u);
            rnd_fill(payload, k);
            m = craft_frame(PROTO_VERSION, type, seq, big, payload, k, 0, out, cap);
            break;
        }
        case 9: { /* garbage, then a delimiter, then an intact frame */
            uint32_t g = rnd_below(600);
            for (uint32_t k = 0; k < g; k++) out[k] = (uint8_t)rnd();
            out[g] = 0;
            m = g + 1;
            m += proto_frame_encode(type, seq, payload, len, out + m, cap - m);
            e->expect = EXPECT_OK;
            break;
        }
        case 10: { /* a known type with a payload length it does not take */
            uint32_t fixed = expected_len(type);
            if (type == PROTO_T_WRITE) len = 4;
            else if (type == PROTO_T_RUN) len = 24 + 4 * proto_get_u32(payload + 20) + 4;
            else len = fixed + 1u + rnd_below(8);
            e->len = len;
            m = proto_frame_encode(type, seq, payload, len, out, cap);
            e->expect = EXPECT_BADLEN;
            break;
        }
        default: /* another protocol version */
            m = proto_frame_encode_version((uint8_t)(PROTO_VERSION + 1u + rnd_below(250)), type, seq, payload, len, out, cap);
            e->expect = EXPECT_VERSION;
            break;
        }
        if (m == 0) { /* cannot happen with these sizes; make the test fail loudly */
            CHECK(m != 0);
            return;
        }
        e->crc = crc32_ieee(payload, e->len);
        e->kind = (uint8_t)kind;
        if (e->expect != EXPECT_DROP) want_delivered++;
        if (e->expect == EXPECT_OK) want_ok++;
        if (e->expect == EXPECT_UNKNOWN) want_unknown++;
        if (e->expect == EXPECT_BADLEN) want_badlen++;
        if (e->expect == EXPECT_VERSION) want_version++;
        n = start + m;
    }

    /* Independently of the decoder: every non-empty run of bytes between delimiters is one frame
     * that must be counted exactly once. */
    uint32_t segments = 0;
    for (uint32_t i = 0, run = 0; i < n; i++) {
        if (g_stream[i] == 0) {
            if (run) segments++;
            run = 0;
        } else {
            run++;
        }
    }

    /* Feed in random chunks, as reads from a UART would arrive. */
    for (uint32_t i = 0; i < n;) {
        uint32_t k = 1 + rnd_below(3000);
        if (k > n - i) k = n - i;
        proto_decoder_feed(&d, g_stream + i, k, on_robust_frame, &rc);
        i += k;
    }

    const proto_counters *ct = &d.counters;
    uint32_t counted = ct->frames_ok + ct->crc_errors + ct->cobs_errors + ct->oversized + ct->size_mismatch +
                       ct->version_mismatch;
    printf("robustness: %u bytes, %u segments, ok %u crc %u cobs %u oversized %u size %u version %u "
           "unknown %u badlen %u\n",
           (unsigned)n, (unsigned)segments, (unsigned)ct->frames_ok, (unsigned)ct->crc_errors,
           (unsigned)ct->cobs_errors, (unsigned)ct->oversized, (unsigned)ct->size_mismatch,
           (unsigned)ct->version_mismatch, (unsigned)ct->unknown_type, (unsigned)ct->bad_length);
    CHECK(counted == segments);
    CHECK(rc.mismatches == 0);
    CHECK(rc.replies_missing == 0);
    CHECK(rc.delivered == want_delivered);
    CHECK(ct->frames_ok == want_ok + want_unknown + want_badlen);
    CHECK(ct->version_mismatch == want_version && rc.version_seen == want_version);
    CHECK(ct->unknown_type == want_unknown && rc.unknown_seen == want_unknown);
    CHECK(ct->bad_length == want_badlen && rc.badlen_seen == want_badlen);
    /* Every kind of fault actually occurred, so the loop tested what it claims to. */
    CHECK(ct->crc_errors > 0 && ct->size_mismatch > 0 && ct->oversized > 0 && ct->cobs_errors > 0);
    CHECK(want_ok > 100 && want_unknown > 50 && want_badlen > 50 && want_version > 50);

    /* After all that, a clean frame still decodes. */
    {
        proto_frame f = {0, 0, 0, 0, NULL};
        uint32_t m = proto_frame_encode(PROTO_T_PING, 0xBEEF, (const uint8_t *)"\x01\x02\x03\x04", 4, g_wire, sizeof g_wire);
        CHECK(decode_all(&d, g_wire, m, &f) == 1 && f.seq == 0xBEEF);
    }
}

/* Pure random bytes (with the odd zero) never crash the decoder and are all accounted for. */
static void test_random_noise(void)
{
    static proto_decoder d;
    proto_frame f = {0, 0, 0, 0, NULL};
    uint32_t segments = 0, run = 0;
    proto_decoder_init(&d);
    for (uint32_t i = 0; i < 2000000u; i++) {
        uint8_t b = (uint8_t)rnd();
        if (rnd_below(16) == 0) b = 0; /* keep segments short enough to reach the decode checks */
        if (b == 0) {
            if (run) segments++;
            run = 0;
        } else {
            run++;
        }
        if (proto_decoder_push(&d, b, &f)) {
            CHECK(f.len <= PROTO_MAX_PAYLOAD);
        }
    }
    /* Close the last segment: an oversized one is counted before its delimiter arrives. */
    if (run) segments++;
    proto_decoder_push(&d, 0, &f);
    const proto_counters *ct = &d.counters;
    CHECK(ct->frames_ok + ct->crc_errors + ct->cobs_errors + ct->oversized + ct->size_mismatch + ct->version_mismatch
          == segments);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    test_crc32();
    test_cobs_vectors();
    test_cobs_roundtrip();
    test_frame_roundtrip();
    test_decoder_counters();
    test_dispatch();
    test_pack();
    test_robustness();
    test_random_noise();
    printf("proto: %d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}

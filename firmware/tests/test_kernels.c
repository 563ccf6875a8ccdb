/* The C kernels against the integer spec: every kernel is run on the golden vectors that
 * tools/gen_golden.py wrote from orchestrator/quant/spec.py, and must return the same bits. The
 * last test chains all kernels through the tiny-test model (ChipSim, rank 0 of 1) and must match
 * every intermediate vector, the logits and the greedy tokens.
 *
 * Run from firmware/:
 *   make PYTHON=../.venv/bin/python build/golden/.stamp build/test_kernels && build/test_kernels build/golden
 * (also with SAN=1 and build-san/). The golden file format is described in tools/gen_golden.py. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

/* ---- golden file reader ---------------------------------------------------------------------- */

enum { GV_I8 = 1, GV_I32 = 2, GV_U32 = 3, GV_I64 = 4, GV_U64 = 5 };
#define GV_NAME_BYTES 16u
#define GV_HEAD_BYTES (GV_NAME_BYTES + 8u)
#define GV_MAX_FILE   (64u << 20)

typedef struct {
    char     path[512];
    uint8_t *buf;        /* 8-byte aligned (malloc), so int64 records can be used in place */
    size_t   size;
    size_t   off;
    uint32_t left;       /* records not yet taken */
    uint32_t cases;
    int      bad;        /* a format error was reported */
} gv_file;

static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t dtype_size(uint32_t dtype)
{
    switch (dtype) {
    case GV_I8: return 1;
    case GV_I32: case GV_U32: return 4;
    case GV_I64: case GV_U64: return 8;
    default: return 0;
    }
}

static void gv_error(gv_file *f, const char *what, const char *name)
{
    if (!f->bad)
        printf("  golden %s: %s%s%s\n", f->path, what, name ? " at record " : "", name ? name : "");
    f->bad = 1;
}

static const void *gv_take(gv_file *f, const char *name, uint32_t dtype, uint32_t *count);

/* 1 if the file exists and starts well; 0 if it is missing (caller decides); -1 if malformed. */
static int gv_open(gv_file *f, const char *dir, const char *name)
{
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s/%s.bin", dir, name);
    FILE *fp = fopen(f->path, "rb");
    if (!fp)
        return 0;
    if (fseek(fp, 0, SEEK_END) != 0) {
        fclose(fp);
        return -1;
    }
    long n = ftell(fp);
    rewind(fp);
    if (n < 8 || (unsigned long)n > GV_MAX_FILE) {
        fclose(fp);
        gv_error(f, "size out of range", NULL);
        return -1;
    }
    f->size = (size_t)n;
    f->buf = malloc(f->size);
    if (!f->buf || fread(f->buf, 1, f->size, fp) != f->size) {
        fclose(fp);
        gv_error(f, "cannot read", NULL);
        return -1;
    }
    fclose(fp);
    if (memcmp(f->buf, "OGV1", 4) != 0) {
        gv_error(f, "bad magic (expected OGV1)", NULL);
        return -1;
    }
    f->left = rd_u32(f->buf + 4);
    f->off = 8;
    uint32_t c;
    const uint32_t *cases = gv_take(f, "cases", GV_U32, &c);
    if (!cases || c != 1)
        return -1;
    f->cases = cases[0];
    return 1;
}

static void gv_close(gv_file *f)
{
    free(f->buf);
    f->buf = NULL;
}

/* The next record, which must have this name and type; NULL (and the file marked bad) otherwise. */
static const void *gv_take(gv_file *f, const char *name, uint32_t dtype, uint32_t *count)
{
    if (f->bad)
        return NULL;
    if (f->left == 0 || f->size - f->off < GV_HEAD_BYTES) {
        gv_error(f, "ran out of records", name);
        return NULL;
    }
    const uint8_t *h = f->buf + f->off;
    char got[GV_NAME_BYTES + 1];
    memcpy(got, h, GV_NAME_BYTES);
    got[GV_NAME_BYTES] = '\0';
    if (strcmp(got, name) != 0) {
        printf("  golden %s: expected record %s, found %s\n", f->path, name, got);
        f->bad = 1;
        return NULL;
    }
    uint32_t dt = rd_u32(h + GV_NAME_BYTES), n = rd_u32(h + GV_NAME_BYTES + 4);
    if (dt != dtype) {
        gv_error(f, "unexpected dtype", name);
        return NULL;
    }
    uint64_t bytes = (uint64_t)n * dtype_size(dt);
    uint64_t padded = (bytes + 7u) & ~(uint64_t)7u;
    if (padded > f->size - f->off - GV_HEAD_BYTES) {
        gv_error(f, "record runs past the end of the file", name);
        return NULL;
    }
    f->off += GV_HEAD_BYTES + (size_t)padded;
    f->left--;
    *count = n;
    return h + GV_HEAD_BYTES;
}

/* gv_take with an exact expected count. */
static const void *gv_take_n(gv_file *f, const char *name, uint32_t dtype, uint32_t want)
{
    uint32_t n;
    const void *p = gv_take(f, name, dtype, &n);
    if (p && n != want) {
        printf("  golden %s: record %s has %u elements, expected %u\n", f->path, name, n, want);
        f->bad = 1;
        return NULL;
    }
    return p;
}

/* ---- comparison helpers ------------------------------------------------------------------------ */

/* Each returns the number of mismatches and prints the first one. */
static uint32_t cmp_s8(const char *what, uint32_t cs, const int8_t *got, const int8_t *want, uint32_t n)
{
    uint32_t bad = 0;
    for (uint32_t i = 0; i < n; i++)
        if (got[i] != want[i] && bad++ == 0)
            printf("  %s case %u [%u]: got %d, spec %d\n", what, cs, i, got[i], want[i]);
    return bad;
}

static uint32_t cmp_s32(const char *what, uint32_t cs, const int32_t *got, const int32_t *want, uint32_t n)
{
    uint32_t bad = 0;
    for (uint32_t i = 0; i < n; i++)
        if (got[i] != want[i] && bad++ == 0)
            printf("  %s case %u [%u]: got %ld, spec %ld\n", what, cs, i, (long)got[i], (long)want[i]);
    return bad;
}

static uint32_t cmp_s64_one(const char *what, uint32_t cs, uint32_t i, int64_t got, int64_t want)
{
    if (got == want)
        return 0;
    printf("  %s case %u [%u]: got %lld, spec %lld\n", what, cs, i, (long long)got, (long long)want);
    return 1;
}

static uint32_t cmp_u64_one(const char *what, uint32_t cs, uint32_t i, uint64_t got, uint64_t want)
{
    if (got == want)
        return 0;
    printf("  %s case %u [%u]: got %llu, spec %llu\n", what, cs, i, (unsigned long long)got,
           (unsigned long long)want);
    return 1;
}

/* Scratch for kernel outputs: large enough for every golden case (checked before use). */
#define SCRATCH_N (1u << 18)
static int8_t  g_s8[SCRATCH_N];
static int32_t g_s32[SCRATCH_N];
static int32_t g_s32b[SCRATCH_N];

static int fits(gv_file *f, uint32_t n)
{
    if (n <= SCRATCH_N)
        return 1;
    printf("  golden %s: a case needs %u elements, the test's scratch holds %u\n", f->path, n, SCRATCH_N);
    f->bad = 1;
    return 0;
}

/* ---- one test per kernel ----------------------------------------------------------------------- */
/* Each returns the number of mismatching values; format problems set f->bad. */

static uint32_t t_requantize(gv_file *f)
{
    uint32_t n, bad = 0;
    const int32_t *acc = gv_take(f, "acc", GV_I32, &n);
    const int32_t *mult = gv_take_n(f, "mult", GV_I32, n);
    const int32_t *shift = gv_take_n(f, "shift", GV_I32, n);
    const int32_t *lo = gv_take_n(f, "lo", GV_I32, n);
    const int32_t *hi = gv_take_n(f, "hi", GV_I32, n);
    const int32_t *out = gv_take_n(f, "out", GV_I32, n);
    if (f->bad)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        bad += cmp_s64_one("requantize_s32", 0, i, requantize_s32(acc[i], mult[i], shift[i], lo[i], hi[i]), out[i]);
    return bad;
}

static uint32_t t_requant_vec(gv_file *f)
{
    uint32_t bad = 0;
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        uint32_t n;
        const int32_t *acc = gv_take(f, "acc", GV_I32, &n);
        const int32_t *rq = gv_take_n(f, "rq", GV_I32, 2 * n);
        const int8_t *rows_s8 = gv_take_n(f, "rows_s8", GV_I8, n);
        const int32_t *rows_logit = gv_take_n(f, "rows_logit", GV_I32, n);
        const int32_t *sc = gv_take_n(f, "scalar", GV_I32, 2);
        const int8_t *scalar_s8 = gv_take_n(f, "scalar_s8", GV_I8, n);
        const int8_t *row = gv_take_n(f, "row", GV_I8, n);
        const int32_t *embed = gv_take_n(f, "embed", GV_I32, n);
        if (f->bad || !fits(f, n))
            break;
        requantize_rows_s32_s8(acc, rq, g_s8, n);
        bad += cmp_s8("requantize_rows_s32_s8", cs, g_s8, rows_s8, n);
        requantize_rows_s32(acc, rq, g_s32, n, -KN_LOGIT_MAX, KN_LOGIT_MAX);
        bad += cmp_s32("requantize_rows_s32", cs, g_s32, rows_logit, n);
        requantize_s32_s8(acc, sc[0], sc[1], g_s8, n);
        bad += cmp_s8("requantize_s32_s8", cs, g_s8, scalar_s8, n);
        embed_row_s8_s32(row, sc[0], sc[1], g_s32, n);
        bad += cmp_s32("embed_row_s8_s32", cs, g_s32, embed, n);
    }
    return bad;
}

static uint32_t t_residual(gv_file *f)
{
    uint32_t bad = 0;
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        uint32_t n;
        const int32_t *x = gv_take(f, "x", GV_I32, &n);
        const int32_t *acc = gv_take_n(f, "acc", GV_I32, n);
        const int32_t *rq = gv_take_n(f, "rq", GV_I32, 2 * n);
        const int32_t *out = gv_take_n(f, "out", GV_I32, n);
        if (f->bad || !fits(f, n))
            break;
        memcpy(g_s32, x, n * sizeof *x);
        residual_add_s32(g_s32, acc, rq, n);
        bad += cmp_s32("residual_add_s32", cs, g_s32, out, n);
    }
    return bad;
}

static uint32_t t_div_round(gv_file *f)
{
    uint32_t n, bad = 0;
    const int64_t *num = gv_take(f, "num", GV_I64, &n);
    const int64_t *den = gv_take_n(f, "den", GV_I64, n);
    const int64_t *out = gv_take_n(f, "out", GV_I64, n);
    if (f->bad)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        bad += cmp_s64_one("div_round_s64", 0, i, div_round_s64(num[i], den[i]), out[i]);
    return bad;
}

static uint32_t t_gemv(gv_file *f)
{
    uint32_t bad = 0;
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        const uint32_t *dims = gv_take_n(f, "dims", GV_U32, 2);
        if (!dims)
            break;
        const uint32_t rows = dims[0], cols = dims[1];
        if ((uint64_t)rows * cols > (1u << 28)) {
            gv_error(f, "matrix too large", "dims");
            break;
        }
        const int8_t *w = gv_take_n(f, "w", GV_I8, rows * cols);
        const int8_t *x = gv_take_n(f, "x", GV_I8, cols);
        const int32_t *acc = gv_take_n(f, "acc", GV_I32, rows);
        if (f->bad || !fits(f, rows))
            break;
        gemv_s8_s32(w, x, g_s32, rows, cols);
        bad += cmp_s32("gemv_s8_s32", cs, g_s32, acc, rows);
    }
    return bad;
}

static uint32_t t_isqrt(gv_file *f)
{
    uint32_t n, bad = 0;
    const uint64_t *v = gv_take(f, "v", GV_U64, &n);
    const uint64_t *r = gv_take_n(f, "r", GV_U64, n);
    if (f->bad)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        bad += cmp_u64_one("isqrt_u64", 0, i, isqrt_u64(v[i]), r[i]);
    return bad;
}

static uint32_t t_rmsnorm(gv_file *f)
{
    uint32_t bad = 0;
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        uint32_t n;
        const int32_t *x = gv_take(f, "x", GV_I32, &n);
        const int32_t *gain = gv_take_n(f, "gain", GV_I32, n);
        const int32_t *eps = gv_take_n(f, "eps", GV_I32, 1);
        const int8_t *out = gv_take_n(f, "out", GV_I8, n);
        if (f->bad || !fits(f, n))
            break;
        rmsnorm_s32_s8(x, gain, eps[0], g_s8, n);
        bad += cmp_s8("rmsnorm_s32_s8", cs, g_s8, out, n);
    }
    return bad;
}

static uint32_t t_rope(gv_file *f)
{
    uint32_t n, bad = 0;
    const int32_t *table = gv_take_n(f, "table", GV_I32, KN_SIN_TABLE_LEN);
    const uint32_t *phase = gv_take(f, "phase", GV_U32, &n);
    const int32_t *sin = gv_take_n(f, "sin", GV_I32, n);
    if (f->bad)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        bad += cmp_s64_one("sin_q15", 0, i, sin_q15(phase[i], table), sin[i]);
    for (uint32_t cs = 1; cs < f->cases && !f->bad; cs++) {
        const uint32_t *p = gv_take_n(f, "params", GV_U32, 3);
        if (!p)
            break;
        const uint32_t n_heads = p[0], hs = p[1], pos = p[2];
        if (hs % 2u != 0 || (uint64_t)n_heads * hs > SCRATCH_N) {
            gv_error(f, "bad rope shape", "params");
            break;
        }
        const uint32_t *steps = gv_take_n(f, "steps", GV_U32, hs / 2u);
        const int32_t *tab = gv_take_n(f, "table", GV_I32, KN_SIN_TABLE_LEN);
        const int8_t *v = gv_take_n(f, "v", GV_I8, n_heads * hs);
        const int8_t *out = gv_take_n(f, "out", GV_I8, n_heads * hs);
        if (f->bad)
            break;
        memcpy(g_s8, v, n_heads * hs);
        rope_s8(g_s8, n_heads, hs, pos, steps, tab);
        bad += cmp_s8("rope_s8", cs, g_s8, out, n_heads * hs);
    }
    return bad;
}

static uint32_t t_exp2(gv_file *f)
{
    uint32_t n, bad = 0;
    const int32_t *table = gv_take_n(f, "table", GV_I32, KN_EXP2_TABLE_LEN);
    const int32_t *z = gv_take(f, "z", GV_I32, &n);
    const int64_t *e = gv_take_n(f, "e", GV_I64, n);
    if (f->bad)
        return 0;
    for (uint32_t i = 0; i < n; i++)
        bad += cmp_s64_one("exp2_neg_q30", 0, i, exp2_neg_q30(z[i], table), e[i]);
    return bad;
}

static int32_t g_exp2_table[KN_EXP2_TABLE_LEN];  /* spec.exp2_table(), taken from exp2.bin */
static int g_have_exp2_table;

static uint32_t t_softmax(gv_file *f)
{
    uint32_t bad = 0;
    if (!g_have_exp2_table) {
        gv_error(f, "needs the exp2 table from exp2.bin", NULL);
        return 0;
    }
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        uint32_t n;
        const int32_t *p = gv_take_n(f, "params", GV_I32, 2);
        const int32_t *scores = gv_take(f, "scores", GV_I32, &n);
        const int32_t *prob = gv_take_n(f, "p", GV_I32, n);
        if (f->bad || !fits(f, n) || n == 0)
            break;
        softmax_q15(scores, g_s32, n, p[0], p[1], g_exp2_table);
        bad += cmp_s32("softmax_q15", cs, g_s32, prob, n);
        memcpy(g_s32b, scores, n * sizeof *scores);  /* in place gives the same */
        softmax_q15(g_s32b, g_s32b, n, p[0], p[1], g_exp2_table);
        bad += cmp_s32("softmax_q15 (in place)", cs, g_s32b, prob, n);
    }
    return bad;
}

static uint32_t t_attention(gv_file *f)
{
    uint32_t bad = 0;
    if (!g_have_exp2_table) {
        gv_error(f, "needs the exp2 table from exp2.bin", NULL);
        return 0;
    }
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        const uint32_t *p = gv_take_n(f, "params", GV_U32, 4);
        if (!p)
            break;
        const uint32_t n_pos = p[0], hs = p[1], stride = p[2], off = p[3];
        if (n_pos == 0 || n_pos > SCRATCH_N || hs > SCRATCH_N || (uint64_t)off + hs > stride ||
            (uint64_t)n_pos * stride > (1u << 26)) {
            gv_error(f, "bad attention shape", "params");
            break;
        }
        const int32_t *rq = gv_take_n(f, "rq", GV_I32, 2);
        const int8_t *q = gv_take_n(f, "q", GV_I8, hs);
        const int8_t *k = gv_take_n(f, "k", GV_I8, n_pos * stride);
        const int8_t *v = gv_take_n(f, "v", GV_I8, n_pos * stride);
        const int32_t *out = gv_take_n(f, "out", GV_I32, hs);
        if (f->bad)
            break;
        attention_head_s8(q, k + off, v + off, n_pos, hs, stride, rq[0], rq[1], g_exp2_table, g_s32b, g_s32);
        bad += cmp_s32("attention_head_s8", cs, g_s32, out, hs);
    }
    return bad;
}

static uint32_t t_swiglu(gv_file *f)
{
    uint32_t bad = 0;
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        uint32_t n;
        const int32_t *p = gv_take_n(f, "params", GV_I32, 2);
        const int32_t *lut = gv_take_n(f, "lut", GV_I32, KN_SILU_LUT_LEN);
        const int8_t *h1 = gv_take(f, "h1", GV_I8, &n);
        const int8_t *h3 = gv_take_n(f, "h3", GV_I8, n);
        const int8_t *out = gv_take_n(f, "out", GV_I8, n);
        if (f->bad || !fits(f, n))
            break;
        swiglu_s8(h1, h3, lut, p[0], p[1], g_s8, n);
        bad += cmp_s8("swiglu_s8", cs, g_s8, out, n);
    }
    return bad;
}

static uint32_t t_argmax(gv_file *f)
{
    uint32_t bad = 0;
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        uint32_t n;
        const int32_t *v = gv_take(f, "v", GV_I32, &n);
        const uint32_t *idx = gv_take_n(f, "idx", GV_U32, 1);
        if (f->bad || n == 0)
            break;
        bad += cmp_u64_one("argmax_s32", cs, 0, argmax_s32(v, n), idx[0]);
    }
    return bad;
}

static uint32_t t_xorshift(gv_file *f)
{
    uint32_t bad = 0;
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        uint32_t n32, n64;
        const uint64_t *seed = gv_take_n(f, "seed", GV_U64, 1);
        const uint32_t *u32 = gv_take(f, "u32", GV_U32, &n32);
        const uint64_t *u64 = gv_take(f, "u64", GV_U64, &n64);
        if (f->bad)
            break;
        xorshift64 rng;
        xorshift64_seed(&rng, seed[0]);
        for (uint32_t i = 0; i < n32; i++)
            bad += cmp_u64_one("xorshift64_u32", cs, i, xorshift64_u32(&rng), u32[i]);
        for (uint32_t i = 0; i < n64; i++)
            bad += cmp_u64_one("xorshift64_u64", cs, i, xorshift64_u64(&rng), u64[i]);
    }
    return bad;
}

static uint32_t t_temperature(gv_file *f)
{
    uint32_t n, bad = 0;
    const int32_t *in = gv_take(f, "in", GV_I32, &n);
    const int32_t *out = gv_take_n(f, "out", GV_I32, n);
    if (f->bad || n % 3u != 0)
        return 0;
    for (uint32_t i = 0; i < n; i += 3) {
        int32_t m = 0, s = 0;
        int rc = temperature_multiplier(in[i], in[i + 1], in[i + 2], &m, &s);
        bad += cmp_s64_one("temperature_multiplier status", 0, i / 3, rc != 0, out[i]);
        if (rc == 0 && out[i] == 0) {
            bad += cmp_s64_one("temperature_multiplier mult", 0, i / 3, m, out[i + 1]);
            bad += cmp_s64_one("temperature_multiplier shift", 0, i / 3, s, out[i + 2]);
        }
    }
    return bad;
}

static uint32_t t_sample(gv_file *f)
{
    uint32_t bad = 0;
    if (!g_have_exp2_table) {
        gv_error(f, "needs the exp2 table from exp2.bin", NULL);
        return 0;
    }
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        uint32_t n, k;
        const int32_t *p = gv_take_n(f, "params", GV_I32, 3);
        const int32_t *logits = gv_take(f, "logits", GV_I32, &n);
        const int32_t *w = gv_take_n(f, "w", GV_I32, n);
        const uint64_t *sum = gv_take_n(f, "sum", GV_U64, 1);
        const uint64_t *target = gv_take(f, "target", GV_U64, &k);
        const uint32_t *pick = gv_take_n(f, "pick", GV_U32, k);
        if (f->bad || !fits(f, n))
            break;
        uint64_t total = sample_weights_s32(logits, n, p[0], p[1], p[2], g_exp2_table, g_s32);
        bad += cmp_s32("sample_weights_s32", cs, g_s32, w, n);
        bad += cmp_u64_one("sample_weights_s32 sum", cs, 0, total, sum[0]);
        for (uint32_t i = 0; i < k; i++)
            bad += cmp_u64_one("sample_pick", cs, i, sample_pick(w, n, target[i]), pick[i]);
    }
    return bad;
}

static uint32_t t_layernorm(gv_file *f)
{
    uint32_t bad = 0;
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        uint32_t n;
        const int32_t *x = gv_take(f, "x", GV_I32, &n);
        const int32_t *gain = gv_take_n(f, "gain", GV_I32, n);
        const int32_t *bias = gv_take_n(f, "bias", GV_I32, n);
        const int32_t *eps = gv_take_n(f, "eps", GV_I32, 1);
        const int8_t *out = gv_take_n(f, "out", GV_I8, n);
        if (f->bad || !fits(f, n))
            break;
        layernorm_s32_s8(x, gain, bias, eps[0], g_s8, n);
        bad += cmp_s8("layernorm_s32_s8", cs, g_s8, out, n);
    }
    return bad;
}

static uint32_t t_gelu(gv_file *f)
{
    uint32_t bad = 0;
    for (uint32_t cs = 0; cs < f->cases && !f->bad; cs++) {
        uint32_t n;
        const int8_t *lut = gv_take_n(f, "lut", GV_I8, 256);
        const int8_t *x = gv_take(f, "x", GV_I8, &n);
        const int8_t *out = gv_take_n(f, "out", GV_I8, n);
        if (f->bad || !fits(f, n))
            break;
        gelu_s8(x, lut, g_s8, n);
        bad += cmp_s8("gelu_s8", cs, g_s8, out, n);
    }
    return bad;
}

/* ---- every kernel chained through a model ---------------------------------------------------- */

#define LAYER_MAX_DIM    1024u
#define LAYER_MAX_HIDDEN 4096u
#define LAYER_MAX_LAYERS 8u
#define LAYER_MAX_CTX    64u
#define LAYER_MAX_VOCAB  4096u
#define LAYER_MAX_HS     256u

typedef struct {
    const int32_t *att_norm, *wq_rq, *wk_rq, *wv_rq, *wo_rq, *ffn_norm, *w1_rq, *w3_rq, *w2_rq, *silu, *params;
    const int8_t *wq, *wk, *wv, *wo, *w1, *w3, *w2;
} layer_w;

static int8_t  g_kcache[LAYER_MAX_LAYERS * LAYER_MAX_CTX * LAYER_MAX_DIM];
static int8_t  g_vcache[LAYER_MAX_LAYERS * LAYER_MAX_CTX * LAYER_MAX_DIM];

/* Compare one intermediate with the next golden record; counts a mismatch once per vector. */
static uint32_t check_s8(gv_file *f, const char *name, uint32_t pos, const int8_t *got, uint32_t n)
{
    const int8_t *want = gv_take_n(f, name, GV_I8, n);
    return want ? (cmp_s8(name, pos, got, want, n) != 0) : 0;
}

static uint32_t check_s32(gv_file *f, const char *name, uint32_t pos, const int32_t *got, uint32_t n)
{
    const int32_t *want = gv_take_n(f, name, GV_I32, n);
    return want ? (cmp_s32(name, pos, got, want, n) != 0) : 0;
}

static uint32_t t_layer(gv_file *f)
{
    const uint32_t *c = gv_take_n(f, "config", GV_U32, 10);
    if (!c)
        return 0;
    const uint32_t dim = c[0], hidden = c[1], n_layers = c[2], n_heads = c[3], n_kv = c[4], vocab = c[5],
                   ctx = c[6], hs = c[7], n_pos = c[8], n_prompt = c[9];
    if (dim == 0 || dim > LAYER_MAX_DIM || hidden == 0 || hidden > LAYER_MAX_HIDDEN || n_layers == 0 ||
        n_layers > LAYER_MAX_LAYERS || n_heads == 0 || n_kv == 0 || n_heads % n_kv != 0 || vocab == 0 ||
        vocab > LAYER_MAX_VOCAB || ctx > LAYER_MAX_CTX || n_pos > ctx || hs == 0 || hs > LAYER_MAX_HS ||
        hs % 2u != 0 || hs * n_heads != dim) {
        gv_error(f, "model config outside the test's limits", "config");
        return 0;
    }
    const uint32_t kvd = n_kv * hs, kv_mul = n_heads / n_kv;
    const int32_t *eps = gv_take_n(f, "eps", GV_I32, 1);
    const uint32_t *steps = gv_take_n(f, "rope_steps", GV_U32, hs / 2u);
    const int32_t *sin_t = gv_take_n(f, "sin", GV_I32, KN_SIN_TABLE_LEN);
    const int32_t *exp2_t = gv_take_n(f, "exp2", GV_I32, KN_EXP2_TABLE_LEN);
    const int32_t *final_norm = gv_take_n(f, "final_norm", GV_I32, dim);
    const int8_t *embed = gv_take_n(f, "embed", GV_I8, vocab * dim);
    const int32_t *embed_rq = gv_take_n(f, "embed_rq", GV_I32, 2u * vocab);
    const int8_t *cls = gv_take_n(f, "cls", GV_I8, vocab * dim);
    const int32_t *cls_rq = gv_take_n(f, "cls_rq", GV_I32, 2u * vocab);
    layer_w L[LAYER_MAX_LAYERS];
    for (uint32_t l = 0; l < n_layers && !f->bad; l++) {
        L[l].att_norm = gv_take_n(f, "att_norm", GV_I32, dim);
        L[l].wq = gv_take_n(f, "wq", GV_I8, dim * dim);
        L[l].wq_rq = gv_take_n(f, "wq_rq", GV_I32, 2u * dim);
        L[l].wk = gv_take_n(f, "wk", GV_I8, kvd * dim);
        L[l].wk_rq = gv_take_n(f, "wk_rq", GV_I32, 2u * kvd);
        L[l].wv = gv_take_n(f, "wv", GV_I8, kvd * dim);
        L[l].wv_rq = gv_take_n(f, "wv_rq", GV_I32, 2u * kvd);
        L[l].wo = gv_take_n(f, "wo", GV_I8, dim * dim);
        L[l].wo_rq = gv_take_n(f, "wo_rq", GV_I32, 2u * dim);
        L[l].ffn_norm = gv_take_n(f, "ffn_norm", GV_I32, dim);
        L[l].w1 = gv_take_n(f, "w1", GV_I8, hidden * dim);
        L[l].w1_rq = gv_take_n(f, "w1_rq", GV_I32, 2u * hidden);
        L[l].w3 = gv_take_n(f, "w3", GV_I8, hidden * dim);
        L[l].w3_rq = gv_take_n(f, "w3_rq", GV_I32, 2u * hidden);
        L[l].w2 = gv_take_n(f, "w2", GV_I8, dim * hidden);
        L[l].w2_rq = gv_take_n(f, "w2_rq", GV_I32, 2u * dim);
        L[l].silu = gv_take_n(f, "silu", GV_I32, KN_SILU_LUT_LEN);
        L[l].params = gv_take_n(f, "params", GV_I32, 6);
    }
    if (f->bad)
        return 0;
    /* the checks a runtime makes on a shard before running it */
    uint32_t bad = 0;
    if (!sin_table_valid(sin_t) || !exp2_table_valid(exp2_t) || !requant_rows_valid(cls_rq, vocab) ||
        !requant_rows_valid(embed_rq, vocab)) {
        printf("  layer: a table of the golden model fails its *_valid check\n");
        bad++;
    }
    for (uint32_t l = 0; l < n_layers; l++)
        if (!silu_lut_valid(L[l].silu) || !requant_rows_valid(L[l].wq_rq, dim) || !requant_rows_valid(L[l].w2_rq, dim)) {
            printf("  layer %u: a table fails its *_valid check\n", l);
            bad++;
        }

    int32_t x[LAYER_MAX_DIM], acc[LAYER_MAX_HIDDEN], att[LAYER_MAX_DIM], logits[LAYER_MAX_VOCAB];
    int32_t scores[LAYER_MAX_CTX];
    int8_t xn[LAYER_MAX_DIM], q[LAYER_MAX_DIM], k[LAYER_MAX_DIM], v[LAYER_MAX_DIM], o[LAYER_MAX_DIM];
    int8_t h1[LAYER_MAX_HIDDEN], h3[LAYER_MAX_HIDDEN], g[LAYER_MAX_HIDDEN];
    uint32_t next = 0;
    for (uint32_t pos = 0; pos < n_pos && !f->bad; pos++) {
        const uint32_t *tok = gv_take_n(f, "token", GV_U32, 1);
        if (!tok || tok[0] >= vocab) {
            gv_error(f, "bad token", "token");
            break;
        }
        if (pos >= n_prompt && tok[0] != next) {
            /* past the prompt, each input is the previous step's greedy token: ours must agree */
            printf("  layer pos %u: input token %u is not our previous argmax %u\n", pos, tok[0], next);
            bad++;
        }
        embed_row_s8_s32(embed + (size_t)tok[0] * dim, embed_rq[2 * tok[0]], embed_rq[2 * tok[0] + 1], x, dim);
        bad += check_s32(f, "x", pos, x, dim);
        for (uint32_t l = 0; l < n_layers && !f->bad; l++) {
            const layer_w *W = &L[l];
            int8_t *kc = g_kcache + (size_t)l * LAYER_MAX_CTX * kvd;
            int8_t *vc = g_vcache + (size_t)l * LAYER_MAX_CTX * kvd;
            rmsnorm_s32_s8(x, W->att_norm, eps[0], xn, dim);
            bad += check_s8(f, "xn", pos, xn, dim);
            gemv_s8_s32(W->wq, xn, acc, dim, dim);
            requantize_rows_s32_s8(acc, W->wq_rq, q, dim);
            bad += check_s8(f, "q", pos, q, dim);
            gemv_s8_s32(W->wk, xn, acc, kvd, dim);
            requantize_rows_s32_s8(acc, W->wk_rq, k, kvd);
            bad += check_s8(f, "k", pos, k, kvd);
            gemv_s8_s32(W->wv, xn, acc, kvd, dim);
            requantize_rows_s32_s8(acc, W->wv_rq, v, kvd);
            bad += check_s8(f, "v", pos, v, kvd);
            rope_s8(q, n_heads, hs, pos, steps, sin_t);
            bad += check_s8(f, "q_rope", pos, q, dim);
            rope_s8(k, n_kv, hs, pos, steps, sin_t);
            bad += check_s8(f, "k_rope", pos, k, kvd);
            memcpy(kc + (size_t)pos * kvd, k, kvd);
            memcpy(vc + (size_t)pos * kvd, v, kvd);
            for (uint32_t h = 0; h < n_heads; h++) {
                const uint32_t kvh = h / kv_mul;
                attention_head_s8(q + h * hs, kc + kvh * hs, vc + kvh * hs, pos + 1, hs, kvd,
                                  W->params[0], W->params[1], exp2_t, scores, att + h * hs);
            }
            bad += check_s32(f, "att", pos, att, dim);
            requantize_s32_s8(att, W->params[2], W->params[3], o, dim);
            bad += check_s8(f, "o", pos, o, dim);
            gemv_s8_s32(W->wo, o, acc, dim, dim);
            bad += check_s32(f, "att_acc", pos, acc, dim);
            residual_add_s32(x, acc, W->wo_rq, dim);
            bad += check_s32(f, "x_mid", pos, x, dim);
            rmsnorm_s32_s8(x, W->ffn_norm, eps[0], xn, dim);
            bad += check_s8(f, "xn_ffn", pos, xn, dim);
            gemv_s8_s32(W->w1, xn, acc, hidden, dim);
            requantize_rows_s32_s8(acc, W->w1_rq, h1, hidden);
            bad += check_s8(f, "h1", pos, h1, hidden);
            gemv_s8_s32(W->w3, xn, acc, hidden, dim);
            requantize_rows_s32_s8(acc, W->w3_rq, h3, hidden);
            bad += check_s8(f, "h3", pos, h3, hidden);
            swiglu_s8(h1, h3, W->silu, W->params[4], W->params[5], g, hidden);
            bad += check_s8(f, "g", pos, g, hidden);
            gemv_s8_s32(W->w2, g, acc, dim, hidden);
            bad += check_s32(f, "ffn_acc", pos, acc, dim);
            residual_add_s32(x, acc, W->w2_rq, dim);
            bad += check_s32(f, "x_out", pos, x, dim);
        }
        if (f->bad)
            break;
        rmsnorm_s32_s8(x, final_norm, eps[0], xn, dim);
        gemv_s8_s32(cls, xn, acc, vocab, dim);
        requantize_rows_s32(acc, cls_rq, logits, vocab, -KN_LOGIT_MAX, KN_LOGIT_MAX);
        bad += check_s32(f, "logits", pos, logits, vocab);
        next = argmax_s32(logits, vocab);
        const uint32_t *want = gv_take_n(f, "next", GV_U32, 1);
        if (want)
            bad += cmp_u64_one("next token", pos, 0, next, want[0]);
    }
    return bad;
}

/* ---- hand-written checks (no golden file): table validation and out-of-spec inputs ------------- */

static uint32_t t_guards(void)
{
    uint32_t bad = 0;
    int32_t m = 0, s = 0;
    /* the spec's loop never ends for a multiplier <= 0; the kernel refuses it */
    bad += temperature_multiplier(-5, 20, 65536, &m, &s) != -1;
    bad += temperature_multiplier(0, 20, 65536, &m, &s) != -1;
    /* shifts outside 1..62 stay defined (UBSan watches this) and rq validation rejects them */
    int32_t rq_bad[4] = {1 << 30, 0, 1 << 30, 63};
    int32_t rq_ok[4] = {1 << 30, 1, INT32_MAX, 62};
    int32_t rq_small[2] = {(1 << 30) - 1, 10};
    bad += requant_rows_valid(rq_bad, 1) != 0 || requant_rows_valid(rq_bad + 2, 1) != 0;
    bad += requant_rows_valid(rq_ok, 2) != 1 || requant_rows_valid(rq_small, 1) != 0;
    (void)requantize_s32(INT32_MIN, INT32_MIN, 0, INT32_MIN, INT32_MAX);
    (void)requantize_s32(INT32_MAX, INT32_MAX, 100, INT32_MIN, INT32_MAX);
    /* exp2 table checks */
    int32_t t[KN_EXP2_TABLE_LEN];
    for (uint32_t i = 0; i < KN_EXP2_TABLE_LEN; i++)
        t[i] = g_have_exp2_table ? g_exp2_table[i] : KN_EXP_ONE - (int32_t)i;
    bad += exp2_table_valid(t) != 1;
    t[100] = t[99] + 1;
    bad += exp2_table_valid(t) != 0;
    t[100] = t[101];
    t[0] = KN_EXP_ONE - 1;
    bad += exp2_table_valid(t) != 0;
    /* a corrupt exp2 table (all zero) must not divide by zero or overflow */
    int32_t zeros[KN_EXP2_TABLE_LEN] = {0};
    int32_t sc[3] = {5, 6, 7}, out[4];
    softmax_q15(sc, sc, 3, 1 << 30, 20, zeros);
    bad += sc[0] != 0 || sc[1] != 0 || sc[2] != 0;
    int8_t qv[4] = {127, 127, 127, 127}, kv[12] = {127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127};
    int32_t huge[KN_EXP2_TABLE_LEN];
    for (uint32_t i = 0; i < KN_EXP2_TABLE_LEN; i++)
        huge[i] = (i % 2u) ? INT32_MIN : INT32_MAX;
    attention_head_s8(qv, kv, kv, 3, 4, 4, INT32_MAX, 1, huge, sc, out);
    /* sine and SiLU tables */
    int32_t sin_t[KN_SIN_TABLE_LEN] = {0};
    bad += sin_table_valid(sin_t) != 1;
    sin_t[7] = (1 << 15) + 1;
    bad += sin_table_valid(sin_t) != 0;
    int32_t lut[KN_SILU_LUT_LEN] = {0};
    bad += silu_lut_valid(lut) != 1;
    lut[255] = -32768;
    bad += silu_lut_valid(lut) != 0;
    /* RMSNorm outside its spec range (|x| > RES_MAX, negative eps) stays defined */
    int32_t xr[4] = {INT32_MIN, INT32_MAX, INT32_MIN, INT32_MAX}, gr[4] = {INT32_MIN, INT32_MAX, 1, -1};
    int8_t yr[4];
    rmsnorm_s32_s8(xr, gr, INT32_MIN, yr, 4);
    rmsnorm_s32_s8(xr, gr, INT32_MAX, yr, 4);
    /* argmax ties go to the lowest index; sample_pick past the total returns n */
    int32_t ties[5] = {INT32_MIN, 4, 4, -1, 4};
    bad += argmax_s32(ties, 5) != 1;
    int32_t w[3] = {1, 0, 2};
    bad += sample_pick(w, 3, 0) != 0 || sample_pick(w, 3, 1) != 2 || sample_pick(w, 3, 3) != 3;
    if (bad)
        printf("  guards: %u checks failed\n", bad);
    return bad;
}

/* ---- driver ------------------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    uint32_t (*run)(gv_file *f);
} golden_test;

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "build/golden";
    static const golden_test tests[] = {
        {"requantize", t_requantize}, {"requant_vec", t_requant_vec}, {"residual", t_residual},
        {"div_round", t_div_round}, {"gemv", t_gemv}, {"isqrt", t_isqrt}, {"rmsnorm", t_rmsnorm},
        {"rope", t_rope}, {"exp2", t_exp2}, {"softmax", t_softmax}, {"attention", t_attention},
        {"swiglu", t_swiglu}, {"argmax", t_argmax}, {"xorshift", t_xorshift},
        {"temperature", t_temperature}, {"sample", t_sample}, {"layernorm", t_layernorm},
        {"gelu", t_gelu}, {"layer", t_layer},
    };
    uint32_t passed = 0, failed = 0;
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        printf("kernels: golden files are little-endian; this host is not\nkernels: 0 passed, 1 failed\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        gv_file f;
        int rc = gv_open(&f, dir, tests[i].name);
        if (rc == 0 && strcmp(tests[i].name, "layer") == 0) {
            /* gen_golden.py skips it while the model pipeline is not importable, and says so */
            printf("SKIP %-12s (no %s: model pipeline not available to gen_golden.py)\n", tests[i].name, f.path);
            continue;
        }
        uint32_t bad = 0;
        if (rc == 0) {
            printf("  golden %s: missing (run tools/gen_golden.py %s)\n", f.path, dir);
            f.bad = 1;
        } else if (rc < 0) {
            f.bad = 1;
        } else {
            bad = tests[i].run(&f);
            if (!f.bad && f.left != 0) {
                printf("  golden %s: %u records left unread\n", f.path, f.left);
                f.bad = 1;
            }
        }
        if (rc > 0 && !f.bad && strcmp(tests[i].name, "exp2") == 0) {
            /* the spec's exp2 table, for the tests that follow */
            gv_file t;
            uint32_t n;
            if (gv_open(&t, dir, "exp2") > 0) {
                const int32_t *tab = gv_take(&t, "table", GV_I32, &n);
                if (tab && n == KN_EXP2_TABLE_LEN) {
                    memcpy(g_exp2_table, tab, sizeof g_exp2_table);
                    g_have_exp2_table = 1;
                }
            }
            gv_close(&t);
        }
        int ok = bad == 0 && !f.bad;
        printf("%s %-12s (%u case%s", ok ? "PASS" : "FAIL", tests[i].name, f.cases, f.cases == 1 ? "" : "s");
        if (bad)
            printf(", %u mismatches", bad);
        printf(")\n");
        if (ok)
            passed++;
        else
            failed++;
        gv_close(&f);
    }
    uint32_t gb = t_guards();
    printf("%s %-12s (hand-written checks)\n", gb ? "FAIL" : "PASS", "guards");
    if (gb)
        failed++;
    else
        passed++;
    printf("kernels: %u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}

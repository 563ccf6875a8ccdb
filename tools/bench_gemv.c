/* Throughput of the firmware's int8 kernels on this machine (the loopback mock runs them natively).
 * Build and run from the repository root (the kernels are every .c file in firmware/kernels):
 *
 *   cc -std=c99 -O2 -Ifirmware firmware/kernels/[a-z]*.c tools/bench_gemv.c -o /tmp/bench_gemv
 *   /tmp/bench_gemv
 *
 * Use the flags of firmware/Makefile (-O2, no -march) to see what the mock chip gets. Reports MAC/s
 * of gemv_s8_s32 for the TinyLlama-42M shapes with the weights hot in cache, then one token's worth
 * of distinct weight matrices (42 MB, larger than the last-level cache, as in a real forward pass)
 * and the attention of one head at a few context lengths. Timing uses C's clock() (CPU time), so
 * the program needs nothing beyond the C library. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/kernels.h"

static uint64_t g_state = 0x9E3779B97F4A7C15ull;

static int8_t rnd_s8(void)
{
    g_state ^= g_state >> 12;
    g_state ^= g_state << 25;
    g_state ^= g_state >> 27;
    return (int8_t)((int32_t)((g_state * 0x2545F4914F6CDD1Dull) >> 56) % 128);
}

static void fill(int8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = rnd_s8();
}

static double seconds(clock_t a, clock_t b)
{
    return (double)(b - a) / CLOCKS_PER_SEC;
}

static volatile int32_t g_sink;

/* Repeats one rows x cols product for about half a second of CPU time. */
static void bench_shape(uint32_t rows, uint32_t cols)
{
    int8_t *w = malloc((size_t)rows * cols), *x = malloc(cols);
    int32_t *acc = malloc(sizeof(int32_t) * rows);
    if (!w || !x || !acc) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    fill(w, (size_t)rows * cols);
    fill(x, cols);
    uint64_t iters = 0;
    clock_t t0 = clock(), t1;
    do {
        for (int k = 0; k < 16; k++) {
            gemv_s8_s32(w, x, acc, rows, cols);
            g_sink += acc[iters % rows];
            x[iters % cols] ^= 1;  /* keep every call live */
            iters++;
        }
        t1 = clock();
    } while (seconds(t0, t1) < 0.5);
    double s = seconds(t0, t1);
    printf("gemv_s8_s32 %5u x %-5u  %7.2f GMAC/s  (%8.1f us per call, weights in cache)\n", rows, cols,
           (double)rows * cols * (double)iters / s / 1e9, s / (double)iters * 1e6);
    free(w);
    free(x);
    free(acc);
}

/* Every projection of TinyLlama-42M (dim 512, hidden 1376, 8 layers, vocab 32000), each with its
 * own weights, as one forward pass streams them. */
static void bench_model(void)
{
    enum { DIM = 512, HID = 1376, LAYERS = 8, VOCAB = 32000 };
    const uint32_t shapes[7][2] = {{DIM, DIM}, {DIM, DIM}, {DIM, DIM}, {DIM, DIM}, {HID, DIM}, {HID, DIM}, {DIM, HID}};
    int8_t *w[LAYERS][7];
    int8_t *cls = malloc((size_t)VOCAB * DIM), *x = malloc(HID);
    int32_t *acc = malloc(sizeof(int32_t) * VOCAB);
    double macs = (double)VOCAB * DIM;
    if (!cls || !x || !acc) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    fill(cls, (size_t)VOCAB * DIM);
    fill(x, HID);
    for (int l = 0; l < LAYERS; l++)
        for (int m = 0; m < 7; m++) {
            w[l][m] = malloc((size_t)shapes[m][0] * shapes[m][1]);
            if (!w[l][m]) {
                fprintf(stderr, "out of memory\n");
                exit(1);
            }
            fill(w[l][m], (size_t)shapes[m][0] * shapes[m][1]);
            macs += (double)shapes[m][0] * shapes[m][1];
        }
    int tokens = 0;
    clock_t t0 = clock(), t1;
    do {
        for (int l = 0; l < LAYERS; l++)
            for (int m = 0; m < 7; m++)
                gemv_s8_s32(w[l][m], x, acc, shapes[m][0], shapes[m][1]);
        gemv_s8_s32(cls, x, acc, VOCAB, DIM);
        g_sink += acc[tokens % VOCAB];
        tokens++;
        t1 = clock();
    } while (seconds(t0, t1) < 2.0);
    double s = seconds(t0, t1);
    printf("tinyllama-42m gemvs      %7.2f GMAC/s  (%.1f M MACs, %.2f ms per token = %.0f tokens/s, "
           "%.1f MB of distinct weights)\n", macs * tokens / s / 1e9, macs / 1e6, s / tokens * 1e3,
           tokens / s, macs / 1e6);
    for (int l = 0; l < LAYERS; l++)
        for (int m = 0; m < 7; m++)
            free(w[l][m]);
    free(cls);
    free(x);
    free(acc);
}

static void bench_attention(uint32_t n_pos)
{
    enum { HS = 64, STRIDE = 512 };
    int8_t *k = malloc((size_t)n_pos * STRIDE), *v = malloc((size_t)n_pos * STRIDE), q[HS];
    int32_t *scratch = malloc(sizeof(int32_t) * n_pos), out[HS], table[KN_EXP2_TABLE_LEN];
    if (!k || !v || !scratch) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    fill(k, (size_t)n_pos * STRIDE);
    fill(v, (size_t)n_pos * STRIDE);
    fill(q, HS);
    /* a decreasing table with the right end points: the speed does not depend on its values */
    for (uint32_t i = 0; i < KN_EXP2_TABLE_LEN; i++)
        table[i] = KN_EXP_ONE - (int32_t)(i * ((uint32_t)KN_EXP_ONE / 2u / (KN_EXP2_TABLE_LEN - 1u)));
    uint64_t iters = 0;
    clock_t t0 = clock(), t1;
    do {
        attention_head_s8(q, k, v, n_pos, HS, STRIDE, 1518500250, 26, table, scratch, out);
        g_sink += out[iters % HS];
        q[iters % HS] ^= 1;
        iters++;
        t1 = clock();
    } while (seconds(t0, t1) < 0.3);
    double s = seconds(t0, t1);
    printf("attention_head_s8 hs %u, %5u positions: %8.1f us per head (%.2f GMAC/s; x64 heads per token = %.2f ms)\n",
           HS, n_pos, s / (double)iters * 1e6, 2.0 * HS * n_pos * (double)iters / s / 1e9,
           s / (double)iters * 64 * 1e3);
    free(k);
    free(v);
    free(scratch);
}

int main(void)
{
    bench_shape(512, 512);
    bench_shape(1376, 512);
    bench_shape(512, 1376);
    bench_shape(32000, 512);
    bench_model();
    bench_attention(16);
    bench_attention(256);
    bench_attention(1024);
    return 0;
}

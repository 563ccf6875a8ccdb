/* model.h: one chip's slice of a decoder, as the shard lays it out (docs/shard-format.md).
 * Every pointer points into the committed shard, read in place from flash; nothing is copied. */
#ifndef RUNTIME_MODEL_H
#define RUNTIME_MODEL_H

#include <stdint.h>

#define RT_MAX_LAYERS 64u

/* Tensor kinds: the ids of orchestrator/partition/split.py's Kind. */
enum {
    TK_ROPE_STEPS = 1, TK_SIN_TABLE = 2, TK_EXP2_TABLE = 3, TK_FINAL_NORM = 4, TK_EMBED = 5,
    TK_EMBED_RQ = 6, TK_CLS = 7, TK_CLS_RQ = 8,
    TK_ATT_NORM = 16, TK_WQ, TK_WQ_RQ, TK_WK, TK_WK_RQ, TK_WV, TK_WV_RQ, TK_WO, TK_WO_RQ, TK_FFN_NORM,
    TK_W1, TK_W1_RQ, TK_W3, TK_W3_RQ, TK_W2, TK_W2_RQ, TK_SILU_LUT, TK_LAYER_PARAMS,
    TK_FIRST_LAYER_KIND = TK_ATT_NORM, TK_LAST_LAYER_KIND = TK_LAYER_PARAMS
};

#define SHARD_FLAG_SHARED_CLASSIFIER 1u
#define SHARD_FLAG_KV_OFFCHIP        2u

/* A weight matrix [rows][cols] with its per-row requantization pairs, and where it is stored
 * (on chip, or streamed from off-chip memory every token: this decides what the cycle counter
 * charges for reading it). */
typedef struct {
    const int8_t *w;
    const int32_t *rq; /* (rows, 2): multiplier, shift */
    uint32_t rows, cols;
    uint8_t offchip;
} qlinear_t;

typedef struct {
    const int32_t *att_norm, *ffn_norm; /* Q16 gains, (dim) */
    qlinear_t wq, wk, wv, wo, w1, w3, w2;
    const int32_t *silu_lut;            /* (256) */
    int32_t soft_mult, soft_shift, o_mult, o_shift, g_mult, g_shift;
} layer_t;

typedef struct {
    /* the whole model */
    uint32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, context;
    uint32_t head_size, kv_mul;
    /* this chip's slice */
    uint32_t rank, world;
    uint32_t head_start, n_heads_local, kv_start, n_kv_local, ffn_start, n_ffn_local, vocab_start, n_vocab_local;
    uint32_t flags;
    int32_t eps_q, temp_mult, temp_shift;
    uint8_t plan_id[32];
    /* tensors */
    const uint32_t *rope_steps;  /* (head_size/2) */
    const int32_t *sin_table, *exp2_table, *final_norm;
    qlinear_t embed;             /* (n_vocab_local, dim), rq to the residual scale */
    qlinear_t cls;               /* the same int8 rows when tied, rq to the logit scale */
    layer_t layers[RT_MAX_LAYERS];
} model_t;

/* Shard validation errors, reported to the host with the name of the first thing wrong. */
typedef struct {
    char text[160];
} shard_error_t;

/* Parses and validates the shard at p[0..size): header and table CRCs, every tensor's bounds,
 * size, dtype, shape (against the dimensions) and CRC. Returns 0, or -1 with err filled. */
int shard_parse(const uint8_t *p, uint32_t size, model_t *m, shard_error_t *err);

#endif

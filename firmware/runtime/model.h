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

/* ---- encoder shards (model kind 2; docs/shard-format.md "Encoder shards") ------------------------ */

#define SHARD_KIND_DECODER 1u
#define SHARD_KIND_ENCODER 2u
#define RT_ENC_MAX_LAYERS 32u
#define RT_ENC_MAX_FFN    4u

/* Tensor kinds of encoder shards: the ids of orchestrator/partition/split_encoder.py. */
enum {
    EK_EXP2 = 64, EK_WORD, EK_WORD_RQ, EK_POS, EK_POS_RQ, EK_TYPE, EK_TYPE_RQ, EK_PROJ, EK_PROJ_RQB, EK_EMB_NORM,
    EK_EMB_PARAMS, EK_LAST_GLOBAL = EK_EMB_PARAMS,
    EK_IN = 80, EK_IN_RQB, EK_BIN_NORM, EK_BATT_NORM, EK_WQ, EK_WQ_RQB, EK_WK, EK_WK_RQB, EK_WV, EK_WV_RQB, EK_WO,
    EK_WO_RQB, EK_ATT_NORM, EK_BOUT, EK_BOUT_RQB, EK_BOUT_NORM, EK_PARAMS, EK_LAST_LAYER = EK_PARAMS,
    EK_FFN_BASE = 100, EK_FFN_STRIDE = 8, /* + 8 k + j for stacked FFN k: */
    EK_FFN_W1 = 0, EK_FFN_W1_RQB, EK_FFN_W2, EK_FFN_W2_RQB, EK_FFN_NORM, EK_FFN_LUT, EK_FFN_PARAMS, EK_FFN_CLS,
    EK_FFN_PER = 8
};

#define ENC_VARIANT_BERT       1u
#define ENC_VARIANT_MOBILEBERT 2u
#define ENC_NORM_LAYERNORM     1u
#define ENC_NORM_NONORM        2u
#define ENC_POOL_MEAN          1u
#define ENC_POOL_CLS           2u
#define ENC_LAYER_PARAMS       32u
#define ENC_SMALL_PARAMS       8u

/* A weight matrix with its (rows, 3) multiplier, shift and bias per row. */
typedef struct {
    const int8_t *w;
    const int32_t *rqb;
    uint32_t rows, cols;
    uint8_t offchip;
} qlin3_t;

typedef struct {
    qlin3_t w1, w2;                   /* this chip's units: rows of W1, input columns of W2 */
    const int32_t *norm;              /* (inner, 5) */
    const int8_t *lut, *cls;          /* (KN_ACT_CLASSES, 256); (n_ffn_local) class of each unit */
    const int32_t *params;            /* (8): residual mult, shift, norm arg */
} enc_ffn_t;

typedef struct {
    qlin3_t in;                       /* MobileBERT: [input; attention bottleneck; values] x my columns */
    const int32_t *bin_norm, *batt_norm;
    qlin3_t wq, wk, wv, wo;           /* wv: BERT only (MobileBERT's values come from `in`) */
    const int32_t *att_norm;
    enc_ffn_t ffn[RT_ENC_MAX_FFN];
    qlin3_t bout;                     /* MobileBERT: output bottleneck rows of my columns */
    const int32_t *bout_norm;
    const int32_t *params;            /* (32): softmax, context, norm and residual parameters */
} enc_layer_t;

typedef struct {
    /* the whole model */
    uint32_t variant, hidden, inner, intermediate, n_layers, n_heads, head_size, vocab_size, context;
    uint32_t emb_width, n_ffn, type_vocab, max_positions, norm, pooling, trigram;
    /* this chip's slice */
    uint32_t rank, world;
    uint32_t head_start, n_heads_local, ffn_start, n_ffn_local, vocab_start, n_vocab_local, col_start, n_cols;
    uint8_t plan_id[32];
    /* tensors */
    const int32_t *exp2_table;
    qlin3_t word;                     /* rq is (n_vocab_local, 2) */
    const int8_t *pos, *type;         /* (max_positions, n_cols), (type_vocab, n_cols) */
    const int32_t *pos_rq, *type_rq;  /* (rows, 2) */
    qlin3_t proj;                     /* MobileBERT: trigram projection rows of my columns */
    const int32_t *emb_norm, *emb_params;
    enc_layer_t layers[RT_ENC_MAX_LAYERS];
} enc_model_t;

/* Model kind (offset 36) of a shard with a full header, else 0. */
uint32_t shard_model_kind(const uint8_t *p, uint32_t size);
/* Parses and validates an encoder shard in place, like shard_parse. */
int enc_shard_parse(const uint8_t *p, uint32_t size, enc_model_t *m, shard_error_t *err);
/* shard.c's helpers, shared with shard_encoder.c. */
uint32_t shard_rd32(const uint8_t *p);
void shard_fail(shard_error_t *e, const char *what, uint32_t kind, uint32_t layer);
/* Header and table checks common to every model kind: magic, CRCs, version, sizes, table bounds.
 * want_kind is the model kind the caller parses. Returns 0 and the tensor count, or -1. */
int shard_check_common(const uint8_t *p, uint32_t size, uint32_t want_kind, shard_error_t *e, uint32_t *n_tensors);

#endif

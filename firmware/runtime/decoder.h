/* decoder.h: one chip's share of a decoder forward pass, with its collectives and trace records.
 * Reads top to bottom like llama2.c's forward(): embedding, blocks, classifier, next token. */
#ifndef RUNTIME_DECODER_H
#define RUNTIME_DECODER_H

#include <stdint.h>

#include "proto/msg.h"
#include "runtime/model.h"

/* Activations, KV cache and scratch: carved once from the arena when a shard is loaded. */
typedef struct {
    int32_t *x;        /* (dim) residual stream, replicated on every chip */
    int8_t *xn;        /* (dim) normalised input of a matrix product */
    int32_t *acc;      /* (max rows of any local product) int32 accumulators */
    int8_t *q, *k, *v; /* (nq), (nkv), (nkv) */
    int32_t *att;      /* (nq) attention output before requantization */
    int8_t *o;         /* (nq) */
    int32_t *part;     /* (dim) partial sums, summed by the all-reduce */
    int32_t *scratch;  /* (scratch_n) all-reduce chunk buffer */
    uint32_t scratch_n;
    int32_t *h1acc, *h3acc; /* (n_ffn) */
    int8_t *h1, *h3, *g;    /* (n_ffn) */
    int32_t *scores;   /* (context) one head's scores, then probabilities */
    int32_t *logits;   /* (n_vocab_local) */
    int32_t *weights;  /* (n_vocab_local) sampling weights, Q30 */
    int64_t *sums, *sums_scratch; /* (world) per-chip sampling sums */
    int8_t *k_cache, *v_cache;    /* (n_layers, context, nkv) */
} runbuf_t;

/* Bytes of working memory a model slice needs (what the arena must hold). */
uint64_t decoder_ram_bytes(const model_t *m);
/* Carves the buffers out of arena[0..cap). Returns 0, or -1 if they do not fit. */
int decoder_bind(const model_t *m, runbuf_t *b, uint8_t *arena, uint64_t cap);

#define RT_TRACE_MAX (3u + 4u * RT_MAX_LAYERS)

/* Trace records of one token, filled by decoder_step. */
typedef struct {
    proto_trace_record rec[RT_TRACE_MAX];
    uint32_t n;
} trace_buf_t;

/* Sampling state of one run. temp_q16 == 0: greedy. */
typedef struct {
    int32_t temp_q16;
    int32_t mult, shift;
    uint64_t rng_state;
} sampler_t;

/* One position: forward pass of `token` at `pos`, then (if pick) the next token into *next.
 * Returns 0 or a negative HAL_ERR_* from a collective (the run must then stop). */
int decoder_step(const model_t *m, runbuf_t *b, uint32_t token, uint32_t pos, int pick, sampler_t *s,
                 uint32_t token_index, trace_buf_t *t, uint32_t *next);

#endif

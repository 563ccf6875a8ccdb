/* encoder.h: one chip's share of an encoder forward pass over a whole sequence (BERT, MobileBERT),
 * with its collectives and trace records (docs/encoders.md). No KV cache: every phase works on all
 * S rows, and the weights of a phase are read once per inference. */
#ifndef RUNTIME_ENCODER_H
#define RUNTIME_ENCODER_H

#include <stdint.h>

#include "proto/msg.h"
#include "runtime/model.h"

/* Working memory, carved once from the arena when a shard is loaded, sized for `context` rows. */
typedef struct {
    int32_t *x32;   /* (S, hn) the stream between blocks: hn = hidden (BERT) or my columns (MobileBERT) */
    int8_t *x8;     /* (S, hn) its int8 copy */
    int32_t *a32;   /* (S, inner) MobileBERT's input bottleneck: the attention's residual */
    int32_t *y32;   /* (S, inner) the stream inside a block */
    int8_t *y8;     /* (S, inner) */
    int8_t *q, *k, *v, *o; /* (S, nq) this chip's heads */
    int8_t *e8;     /* (S, emb_width) MobileBERT's word embeddings */
    int32_t *part;  /* (S, part_w) int32 partial sums, then their all-reduced total */
    uint32_t part_w;
    int32_t *acc;   /* (rowbuf) one row's accumulators */
    int8_t *row8;   /* (rowbuf) one row of int8 */
    int16_t *x16;   /* (rowbuf) one row of int8 with its exponent classes applied */
    uint32_t rowbuf;
    int8_t *g8;     /* (n_ffn_local) */
    int32_t *scores; /* (S) one head's scores, then probabilities */
    int32_t *pooled; /* (hn) */
    int32_t *scratch; /* all-reduce chunk buffer */
    uint32_t scratch_n;
} encbuf_t;

/* Bytes of working memory an encoder slice needs for `context` rows (what the arena must hold;
 * orchestrator/partition/split_encoder.encoder_data_bytes mirrors this). */
uint64_t encoder_ram_bytes(const enc_model_t *m);
/* Carves the buffers out of arena[0..cap). Returns 0, or -1 if they do not fit. */
int encoder_bind(const enc_model_t *m, encbuf_t *b, uint8_t *arena, uint64_t cap);

#define ENC_TRACE_MAX (4u + 13u * RT_ENC_MAX_LAYERS)

typedef struct {
    proto_trace_record rec[ENC_TRACE_MAX];
    uint32_t n;
} enc_trace_t;

/* One inference: ids and segment ids of n_tokens positions (n_tokens <= m->context, already checked
 * against the vocabulary), keys >= n_valid masked out, then this chip's columns of the pooled int32
 * embedding into b->pooled (m->n_cols values). Returns 0 or a negative HAL_ERR_* from a collective. */
int encoder_run(const enc_model_t *m, encbuf_t *b, const uint8_t *ids_le, const uint8_t *segs, uint32_t n_tokens,
                uint32_t n_valid, uint32_t run_index, enc_trace_t *t);

#endif

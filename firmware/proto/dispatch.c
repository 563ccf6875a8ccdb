#include "proto/dispatch.h"

/* Error texts are assembled without stdio (not available, or too big, on the target). */
typedef struct {
    char     buf[96];
    uint32_t n;
} dispatch_text;

static void text_str(dispatch_text *t, const char *s)
{
    while (*s != '\0' && t->n + 1u < sizeof t->buf) t->buf[t->n++] = *s++;
    t->buf[t->n] = '\0';
}

static void text_u32(dispatch_text *t, uint32_t v)
{
    char digits[10];
    uint32_t k = 0;
    do {
        digits[k++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (k > 0u && t->n + 1u < sizeof t->buf) t->buf[t->n++] = digits[--k];
    t->buf[t->n] = '\0';
}

static const char *type_name(uint8_t type)
{
    switch (type) {
    case PROTO_T_IDENTIFY: return "IDENTIFY";
    case PROTO_T_WRITE: return "WRITE";
    case PROTO_T_REGION_CRC: return "REGION_CRC";
    case PROTO_T_COMMIT: return "COMMIT";
    case PROTO_T_CONFIGURE: return "CONFIGURE";
    case PROTO_T_PING: return "PING";
    case PROTO_T_RUN: return "RUN";
    case PROTO_T_RESET: return "RESET";
    case PROTO_T_STATS: return "STATS";
    case PROTO_T_RUN_ENCODER: return "RUN_ENCODER";
    default: return "type";
    }
}

void proto_reply_error(const proto_handlers *h, void *ctx, uint16_t seq, uint16_t code, const char *text)
{
    uint8_t payload[PROTO_ERROR_HEADER_BYTES + PROTO_ERROR_TEXT_MAX];
    if (!h->reply) return;
    uint32_t n = proto_pack_error(payload, sizeof payload, code, text ? text : proto_error_text(code));
    h->reply(ctx, (uint8_t)PROTO_T_ERROR, seq, payload, n);
}

/* `want_min`..`want_max` is the payload size the type needs; `note` explains a variable part. */
static int reject_length(const proto_frame *f, const proto_handlers *h, void *ctx,
                         uint32_t want_min, uint32_t want_max, const char *note)
{
    dispatch_text t = {{0}, 0};
    if (h->counters) h->counters->bad_length++;
    text_str(&t, type_name(f->type));
    text_str(&t, ": payload of ");
    text_u32(&t, f->len);
    text_str(&t, " bytes, want ");
    text_u32(&t, want_min);
    if (want_max != want_min) {
        text_str(&t, "..");
        text_u32(&t, want_max);
    }
    if (note) text_str(&t, note);
    proto_reply_error(h, ctx, f->seq, (uint16_t)PROTO_E_BAD_LENGTH, t.buf);
    return (int)PROTO_E_BAD_LENGTH;
}

static int reject_arg(const proto_frame *f, const proto_handlers *h, void *ctx, const char *what)
{
    dispatch_text t = {{0}, 0};
    if (h->counters) h->counters->bad_length++;
    text_str(&t, type_name(f->type));
    text_str(&t, ": ");
    text_str(&t, what);
    proto_reply_error(h, ctx, f->seq, (uint16_t)PROTO_E_BAD_ARG, t.buf);
    return (int)PROTO_E_BAD_ARG;
}

static int reject_unknown(const proto_frame *f, const proto_handlers *h, void *ctx)
{
    dispatch_text t = {{0}, 0};
    if (h->counters) h->counters->unknown_type++;
    text_str(&t, "unknown message type ");
    text_u32(&t, f->type);
    proto_reply_error(h, ctx, f->seq, (uint16_t)PROTO_E_UNKNOWN_TYPE, t.buf);
    return (int)PROTO_E_UNKNOWN_TYPE;
}

/* A handler's non-zero return becomes the ERROR reply. */
static int handled(const proto_frame *f, const proto_handlers *h, void *ctx, int rc)
{
    if (rc == 0) return (int)PROTO_E_NONE;
    if (rc < 0 || rc > 0xFFFF) rc = (int)PROTO_E_INTERNAL;
    proto_reply_error(h, ctx, f->seq, (uint16_t)rc, 0);
    return rc;
}

int proto_dispatch(const proto_frame *f, const proto_handlers *h, void *ctx)
{
    const uint8_t *p = f->payload;

    if (f->version != PROTO_VERSION) {
        /* Already counted by the decoder. The reply uses our version; the header layout and
         * ERROR are frozen across versions so the sender can still read it. */
        dispatch_text t = {{0}, 0};
        text_str(&t, "frame has protocol version ");
        text_u32(&t, f->version);
        text_str(&t, ", this chip speaks ");
        text_u32(&t, PROTO_VERSION);
        proto_reply_error(h, ctx, f->seq, (uint16_t)PROTO_E_BAD_VERSION, t.buf);
        return (int)PROTO_E_BAD_VERSION;
    }
    if (f->len > PROTO_MAX_PAYLOAD) return reject_length(f, h, ctx, 0u, PROTO_MAX_PAYLOAD, 0);

    switch (f->type) {
    case PROTO_T_IDENTIFY:
        if (!h->identify) break;
        if (f->len != 0u) return reject_length(f, h, ctx, 0u, 0u, 0);
        return handled(f, h, ctx, h->identify(ctx, f->seq));

    case PROTO_T_WRITE: {
        if (!h->write) break;
        if (f->len <= PROTO_WRITE_HEADER_BYTES)
            return reject_length(f, h, ctx, PROTO_WRITE_HEADER_BYTES + 1u, PROTO_MAX_PAYLOAD, " (offset + data)");
        uint32_t offset = proto_get_u32(p);
        uint32_t n = f->len - PROTO_WRITE_HEADER_BYTES;
        if (offset > 0xFFFFFFFFu - n) return reject_arg(f, h, ctx, "offset + length wraps past 4 GiB");
        return handled(f, h, ctx, h->write(ctx, f->seq, offset, p + PROTO_WRITE_HEADER_BYTES, n));
    }

    case PROTO_T_REGION_CRC: {
        if (!h->region_crc) break;
        if (f->len != PROTO_REGION_CRC_BYTES)
            return reject_length(f, h, ctx, PROTO_REGION_CRC_BYTES, PROTO_REGION_CRC_BYTES, 0);
        uint32_t offset = proto_get_u32(p);
        uint32_t length = proto_get_u32(p + 4);
        if (offset > 0xFFFFFFFFu - length) return reject_arg(f, h, ctx, "offset + length wraps past 4 GiB");
        return handled(f, h, ctx, h->region_crc(ctx, f->seq, offset, length));
    }

    case PROTO_T_COMMIT: {
        proto_commit c;
        if (!h->commit) break;
        if (f->len != PROTO_COMMIT_BYTES)
            return reject_length(f, h, ctx, PROTO_COMMIT_BYTES, PROTO_COMMIT_BYTES, 0);
        c.total_bytes = proto_get_u32(p);
        c.crc32 = proto_get_u32(p + 4);
        for (uint32_t i = 0; i < PROTO_PLAN_ID_BYTES; i++) c.plan_id[i] = p[8 + i];
        c.rank = proto_get_u32(p + 40);
        c.world = proto_get_u32(p + 44);
        if (c.world == 0u || c.rank >= c.world) return reject_arg(f, h, ctx, "rank must be < world and world >= 1");
        if (c.total_bytes == 0u) return reject_arg(f, h, ctx, "total length is 0");
        return handled(f, h, ctx, h->commit(ctx, f->seq, &c));
    }

    case PROTO_T_CONFIGURE: {
        proto_configure c;
        if (!h->configure) break;
        if (f->len != PROTO_CONFIGURE_BYTES)
            return reject_length(f, h, ctx, PROTO_CONFIGURE_BYTES, PROTO_CONFIGURE_BYTES, 0);
        c.rank = proto_get_u32(p);
        c.world = proto_get_u32(p + 4);
        c.topology = proto_get_u32(p + 8);
        c.group_size = proto_get_u32(p + 12);
        if (c.world == 0u || c.rank >= c.world) return reject_arg(f, h, ctx, "rank must be < world and world >= 1");
        if (c.topology == PROTO_TOPO_RING) {
            if (c.group_size != 0u) return reject_arg(f, h, ctx, "ring topology takes group size 0");
        } else if (c.topology == PROTO_TOPO_HIERARCHICAL) {
            if (c.group_size == 0u || c.world % c.group_size != 0u)
                return reject_arg(f, h, ctx, "group size must divide world");
        } else {
            return reject_arg(f, h, ctx, "unknown topology");
        }
        return handled(f, h, ctx, h->configure(ctx, f->seq, &c));
    }

    case PROTO_T_PING:
        if (!h->ping) break;
        if (f->len != PROTO_PING_BYTES)
            return reject_length(f, h, ctx, PROTO_PING_BYTES, PROTO_PING_BYTES, 0);
        return handled(f, h, ctx, h->ping(ctx, f->seq, proto_get_u32(p)));

    case PROTO_T_RUN: {
        proto_run r;
        if (!h->run) break;
        if (f->len < PROTO_RUN_HEADER_BYTES)
            return reject_length(f, h, ctx, PROTO_RUN_HEADER_BYTES, PROTO_MAX_PAYLOAD, " (24 + 4 * n_prompt)");
        r.flags = proto_get_u32(p);
        r.n_tokens = proto_get_u32(p + 4);
        r.temperature_q16 = proto_get_u32(p + 8);
        r.seed = proto_get_u64(p + 12);
        r.n_prompt = proto_get_u32(p + 20);
        /* Compare counts, not products: a huge n_prompt must not wrap 4 * n_prompt. */
        if (r.n_prompt > PROTO_RUN_MAX_PROMPT ||
            f->len - PROTO_RUN_HEADER_BYTES != 4u * r.n_prompt)
            return reject_length(f, h, ctx, PROTO_RUN_HEADER_BYTES, PROTO_MAX_PAYLOAD, " (24 + 4 * n_prompt)");
        if (r.flags & ~PROTO_RUN_FLAGS_KNOWN) return reject_arg(f, h, ctx, "unknown flag bits");
        r.prompt_le = p + PROTO_RUN_HEADER_BYTES;
        return handled(f, h, ctx, h->run(ctx, f->seq, &r));
    }

    case PROTO_T_RUN_ENCODER: {
        proto_run_encoder r;
        if (!h->run_encoder) break;
        if (f->len < PROTO_RUN_ENCODER_HEADER_BYTES)
            return reject_length(f, h, ctx, PROTO_RUN_ENCODER_HEADER_BYTES, PROTO_MAX_PAYLOAD, " (12 + 5 * n_tokens)");
        r.flags = proto_get_u32(p);
        r.n_tokens = proto_get_u32(p + 4);
        r.n_valid = proto_get_u32(p + 8);
        /* Compare counts, not products: a huge n_tokens must not wrap 5 * n_tokens. */
        if (r.n_tokens > PROTO_RUN_ENCODER_MAX_TOKENS || f->len - PROTO_RUN_ENCODER_HEADER_BYTES != 5u * r.n_tokens)
            return reject_length(f, h, ctx, PROTO_RUN_ENCODER_HEADER_BYTES, PROTO_MAX_PAYLOAD, " (12 + 5 * n_tokens)");
        if (r.n_tokens == 0u || r.n_valid == 0u || r.n_valid > r.n_tokens)
            return reject_arg(f, h, ctx, "need 1 <= n_valid <= n_tokens");
        if (r.flags & ~PROTO_RUN_ENCODER_FLAGS_KNOWN) return reject_arg(f, h, ctx, "unknown flag bits");
        r.ids_le = p + PROTO_RUN_ENCODER_HEADER_BYTES;
        r.segments = r.ids_le + 4u * r.n_tokens;
        return handled(f, h, ctx, h->run_encoder(ctx, f->seq, &r));
    }

    case PROTO_T_RESET:
        if (!h->reset) break;
        if (f->len != 0u) return reject_length(f, h, ctx, 0u, 0u, 0);
        return handled(f, h, ctx, h->reset(ctx, f->seq));

    case PROTO_T_STATS:
        if (!h->stats) break;
        if (f->len != 0u) return reject_length(f, h, ctx, 0u, 0u, 0);
        return handled(f, h, ctx, h->stats(ctx, f->seq));

    default:
        break;
    }
    return reject_unknown(f, h, ctx);
}

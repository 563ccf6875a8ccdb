/* coll_tree.c: broadcast, barrier, argmax and int64 all-reduce over a spanning tree of the links.
 *
 * The tree for a root uses only configured links and is a pair of chains, so waits can never form a
 * cycle (no deadlock, whatever the socket buffer size):
 *   ring: the root sends both ways round the ring; chips at clockwise distance 1..world/2 are fed
 *         from the left, the others from the right.
 *   hierarchical: in the root's group a chain from the root round the group ring; a chain across
 *         the group leaders starting at the root's leader; in every other group a chain from the
 *         leader (member 1, 2, ..., G-1).
 * Reductions (barrier, argmax, int64 sum) go up the tree rooted at rank 0 and come back down as a
 * broadcast; a node combines its own value first, then its children's in the order listed. */
#include <string.h>

#include "collective/coll_internal.h"

typedef struct {
    int has_parent;
    uint32_t parent;
    uint32_t n_children;
    uint32_t children[2];
} coll_tree;

static void tree_for_root(uint32_t root, coll_tree *t) {
    uint32_t rank = coll_g.rank, w = coll_g.world;
    memset(t, 0, sizeof(*t));
    if (w == 1) return;
    if (coll_g.topo.kind != HAL_TOPO_HIER) {
        uint32_t d = (rank + w - root) % w, h = w / 2u;
        uint32_t right = (rank + 1u) % w, left = (rank + w - 1u) % w;
        if (d == 0) {
            t->children[t->n_children++] = right;
            if (w >= 3u) t->children[t->n_children++] = left;
        } else if (d <= h) {
            t->has_parent = 1;
            t->parent = left;
            if (d + 1u <= h) t->children[t->n_children++] = right;
        } else {
            t->has_parent = 1;
            t->parent = right;
            if (d - 1u >= h + 1u) t->children[t->n_children++] = left;
        }
        return;
    }
    uint32_t g = coll_g.topo.group_size, n_groups = w / g;
    uint32_t i = rank % g, base = rank - i, k = rank / g;
    uint32_t root_i = root % g, root_k = root / g;
    if (k == root_k) {
        uint32_t d = (i + g - root_i) % g;
        if (d > 0) {
            t->has_parent = 1;
            t->parent = base + (i + g - 1u) % g;
        }
        if (d + 1u < g) t->children[t->n_children++] = base + (i + 1u) % g;
        if (i == 0 && n_groups > 1u) t->children[t->n_children++] = (rank + g) % w;
    } else if (i == 0) {
        uint32_t dk = (k + n_groups - root_k) % n_groups;
        t->has_parent = 1;
        t->parent = (rank + w - g) % w;
        if (dk + 1u < n_groups) t->children[t->n_children++] = (rank + g) % w;
        if (g > 1u) t->children[t->n_children++] = rank + 1u;
    } else {
        t->has_parent = 1;
        t->parent = rank - 1u;
        if (i + 1u < g) t->children[t->n_children++] = rank + 1u;
    }
}

/* Chunks of nbytes, at least one (so a zero-byte broadcast still synchronises). */
static int tree_bcast(uint8_t *buf, uint32_t nbytes, uint32_t chunk, uint32_t root) {
    coll_tree t;
    tree_for_root(root, &t);
    uint32_t off = 0;
    do {
        uint32_t m = nbytes - off < chunk ? nbytes - off : chunk;
        if (t.has_parent) {
            int rc = coll_recv(t.parent, buf + off, m);
            if (rc) return rc;
        }
        for (uint32_t c = 0; c < t.n_children; c++) {
            int rc = coll_send(t.children[c], buf + off, m);
            if (rc) return rc;
        }
        off += m;
    } while (off < nbytes);
    return 0;
}

typedef void (*coll_combine_fn)(uint8_t *acc, const uint8_t *in, uint32_t count);

/* buf holds count elements of esize bytes; scratch holds chunk elements. Reduce up to rank 0 with
 * combine(), then broadcast the result. */
static int tree_allreduce(uint8_t *buf, uint32_t count, uint32_t esize, uint8_t *scratch, uint32_t chunk,
                          coll_combine_fn combine) {
    coll_tree t;
    tree_for_root(0, &t);
    uint32_t off = 0;
    do {
        uint32_t m = count - off < chunk ? count - off : chunk;
        for (uint32_t c = 0; c < t.n_children; c++) {
            int rc = coll_recv(t.children[c], scratch, m * esize);
            if (rc) return rc;
            combine(buf + (uint64_t)off * esize, scratch, m);
        }
        if (t.has_parent) {
            int rc = coll_send(t.parent, buf + (uint64_t)off * esize, m * esize);
            if (rc) return rc;
        }
        off += m;
    } while (off < count);
    return tree_bcast(buf, count * esize, chunk * esize, 0);
}

int coll_broadcast(void *buf, uint32_t n, uint32_t root) {
    int rc = coll_ready();
    if (rc) return rc;
    if (root >= coll_g.world || (buf == NULL && n)) return HAL_ERR_ARG;
    if (coll_g.world == 1) return 0;
    return tree_bcast((uint8_t *)buf, n, COLL_CHUNK_BYTES, root);
}

static void combine_none(uint8_t *acc, const uint8_t *in, uint32_t count) {
    (void)acc;
    (void)in;
    (void)count;
}

int coll_barrier(void) {
    uint8_t token = 0, scratch = 0;
    int rc = coll_ready();
    if (rc) return rc;
    if (coll_g.world == 1) return 0;
    /* zero elements: one empty message up each tree edge, then one down */
    return tree_allreduce(&token, 0, 1, &scratch, 1, combine_none);
}

/* An argmax candidate as it travels: native byte order, like every link payload. */
typedef struct {
    int32_t value;
    uint32_t index;
} coll_argmax_pair;

static void combine_argmax(uint8_t *acc, const uint8_t *in, uint32_t count) {
    coll_argmax_pair a, b;
    for (uint32_t e = 0; e < count; e++) {
        memcpy(&a, acc + e * sizeof(a), sizeof(a));
        memcpy(&b, in + e * sizeof(b), sizeof(b));
        if (b.value > a.value || (b.value == a.value && b.index < a.index)) memcpy(acc + e * sizeof(a), &b, sizeof(b));
    }
    hal_account(count, 3u * sizeof(a) * (uint64_t)count, 0);
}

int coll_argmax_reduce(int32_t value, uint32_t index, int32_t *max_value, uint32_t *max_index) {
    coll_argmax_pair mine, scratch;
    int rc = coll_ready();
    if (rc) return rc;
    if (max_value == NULL || max_index == NULL) return HAL_ERR_ARG;
    mine.value = value;
    mine.index = index;
    if (coll_g.world > 1) {
        rc = tree_allreduce((uint8_t *)&mine, 1, sizeof(mine), (uint8_t *)&scratch, 1, combine_argmax);
        if (rc) return rc;
    }
    *max_value = mine.value;
    *max_index = mine.index;
    return 0;
}

static void combine_s64(uint8_t *acc, const uint8_t *in, uint32_t count) {
    /* both point into int64_t arrays at element boundaries */
    coll_add_s64((int64_t *)(void *)acc, (const int64_t *)(const void *)in, count);
}

int coll_allreduce_sum_s64(int64_t *buf, uint32_t n, int64_t *scratch, uint32_t scratch_n) {
    int rc = coll_ready();
    if (rc) return rc;
    if (coll_g.world == 1 || n == 0) return 0;
    if (buf == NULL || scratch == NULL || scratch_n == 0) return HAL_ERR_ARG;
    uint32_t chunk = scratch_n < COLL_CHUNK_BYTES / 8u ? scratch_n : COLL_CHUNK_BYTES / 8u;
    return tree_allreduce((uint8_t *)buf, n, 8u, (uint8_t *)scratch, chunk, combine_s64);
}

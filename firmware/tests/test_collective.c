/* test_collective.c: the collectives on real mock chips. Every cluster is `world` forked processes,
 * each running the posix HAL with its own rank in a fresh run dir, linked by Unix sockets exactly
 * as `orch-chip` processes are. Each rank checks its own results against values it computes
 * serially from the same deterministic inputs and reports through shared memory. */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "collective/coll.h"
#include "hal/posix/posix_chip.h"
#include "tests/check.h"

#define MAXW 8u
#define BIG_N 70001u

/* Profile of every test chip; the expected cycle counts below are derived from these numbers. */
#define T_MACS_MILLI 2000u     /* 2 MACs/cycle */
#define T_ONCHIP_MILLI 4000u   /* 4 B/cycle */
#define T_OFFCHIP_MILLI 1000u  /* 1 B/cycle */
#define T_LINK_MILLI 500u      /* 0.5 B/cycle */
#define T_LINK_LATENCY 300u

typedef struct {
    uint32_t passed[MAXW];
    uint32_t failed[MAXW];
    char first_fail[MAXW][200];
    uint64_t cycles[MAXW];
    uint64_t tx[MAXW], rx[MAXW];
    volatile uint32_t arrived[MAXW][4];
} shm_t;

typedef struct cluster_opts cluster_opts;
struct cluster_opts {
    const char *name;
    uint32_t world;
    hal_topology topo;
    uint64_t cycle_offset_step; /* rank r boots with counter r * step */
    uint32_t victim;            /* rank killed by the fault hook; >= world: none */
    uint32_t victim_sends;
    int jitter;                 /* perturb real-time scheduling between operations */
    void (*body)(const cluster_opts *o);
};

static shm_t *S;
static uint32_t R;           /* this child's rank */

/* ---- deterministic inputs ---------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
static uint64_t val64(uint64_t seed, uint32_t rank, uint32_t i) {
    return mix64(mix64(seed * 0x100000001ull + rank) ^ ((uint64_t)i << 20));
}
static int32_t val32(uint64_t seed, uint32_t rank, uint32_t i) { return (int32_t)(uint32_t)val64(seed, rank, i); }

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_us(long us) {
    struct timespec ts;
    ts.tv_sec = us / 1000000L;
    ts.tv_nsec = (us % 1000000L) * 1000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Real-time perturbation: changes which process runs first, never what is computed. */
static void jitter(const cluster_opts *o, uint32_t step) {
    if (o->jitter) sleep_us((long)(mix64((uint64_t)now_ms() ^ ((uint64_t)R << 32) ^ step) % 3000u));
}

/* ---- cluster harness --------------------------------------------------------------------------- */

static void child_main(const cluster_opts *o, const char *dir, uint32_t rank) {
    posix_chip_args a;
    R = rank;
    alarm(60); /* a hang becomes a reported death, not a stuck test run */
    posix_default_args(&a);
    snprintf(a.run_dir, sizeof(a.run_dir), "%s", dir);
    a.chip_id = rank;
    a.nv_size = 0;
    a.no_pty = 1;
    a.quiet = 1;
    a.link_timeout_ms = 20000;
    snprintf(a.profile.name, sizeof(a.profile.name), "test");
    a.profile.macs_per_kcycle = T_MACS_MILLI;
    a.profile.onchip_bytes_per_kcycle = T_ONCHIP_MILLI;
    a.profile.offchip_bytes_per_kcycle = T_OFFCHIP_MILLI;
    a.profile.link_bytes_per_kcycle = T_LINK_MILLI;
    a.profile.link_latency_cycles = T_LINK_LATENCY;
    a.profile.cycle_offset = (uint64_t)rank * o->cycle_offset_step;
    if (rank == o->victim) a.fault_exit_after_sends = o->victim_sends;
    int rc = posix_chip_init(&a);
    CCHECK(rc == 0, "rank %u: posix_chip_init: %s", rank, posix_chip_error());
    if (rc == 0) {
        rc = coll_configure(rank, o->world, &o->topo);
        CCHECK(rc == 0, "rank %u: coll_configure: %s (%s)", rank, hal_strerror(rc), posix_chip_error());
        if (rc == 0) o->body(o);
    }
    posix_chip_close();
    _exit(0);
}

/* Runs o->body on o->world chips. Returns 0 if every chip exited as expected. */
static int run_cluster(const cluster_opts *o) {
    char dir[] = "/tmp/orch-coll-XXXXXX";
    pid_t pids[MAXW];
    int bad = 0;
    memset(S, 0, sizeof(*S));
    if (mkdtemp(dir) == NULL) {
        CHECK(0, "%s: mkdtemp: %s", o->name, strerror(errno));
        return -1;
    }
    fflush(stdout);
    for (uint32_t r = 0; r < o->world; r++) {
        pids[r] = fork();
        if (pids[r] == 0) child_main(o, dir, r);
        if (pids[r] < 0) {
            CHECK(0, "%s: fork: %s", o->name, strerror(errno));
            return -1;
        }
    }
    for (uint32_t r = 0; r < o->world; r++) {
        int st = 0;
        while (waitpid(pids[r], &st, 0) < 0 && errno == EINTR) {
        }
        int want = (r == o->victim) ? POSIX_FAULT_EXIT_STATUS : 0;
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == want;
        CHECK(ok, "%s: rank %u %s %d (expected exit %d)", o->name, r,
              WIFSIGNALED(st) ? "killed by signal" : "exited with", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
              want);
        bad |= !ok;
    }
    for (uint32_t r = 0; r < o->world; r++) {
        g_pass += S->passed[r];
        g_fail += S->failed[r];
        if (S->failed[r]) printf("FAIL %s: rank %u: %u checks failed, first: %s\n", o->name, r, S->failed[r], S->first_fail[r]);
        bad |= S->failed[r] != 0;
    }
    rmdir(dir); /* sockets are removed by the chips once linked */
    return bad;
}

/* ---- bodies ------------------------------------------------------------------------------------ */

static int32_t g_buf[BIG_N];
static int32_t g_scratch[4096];
static int64_t g_buf64[5000];
static int64_t g_scratch64[2048];
static uint8_t g_bytes[40000];

static void check_allreduce_s32(const cluster_opts *o, uint64_t seed, uint32_t n, uint32_t scratch_n) {
    for (uint32_t i = 0; i < n; i++) g_buf[i] = val32(seed, R, i);
    int rc = coll_allreduce_sum_s32(g_buf, n, g_scratch, scratch_n);
    CCHECK(rc == 0, "allreduce n=%u scratch=%u: %s", n, scratch_n, hal_strerror(rc));
    uint32_t wrong = 0, first = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t want = 0;
        for (uint32_t r = 0; r < o->world; r++) want += (uint32_t)val32(seed, r, i);
        if ((uint32_t)g_buf[i] != want && wrong++ == 0) first = i;
    }
    CCHECK(wrong == 0, "allreduce n=%u scratch=%u: %u wrong elements, first at %u", n, scratch_n, wrong, first);
}

static uint32_t part_len(uint32_t j, uint32_t n, uint32_t parts) {
    j %= parts;
    return (uint32_t)((uint64_t)(j + 1u) * n / parts - (uint64_t)j * n / parts);
}

static void body_battery(const cluster_opts *o) {
    uint32_t w = o->world;
    const uint32_t lens[] = {1u, w > 1 ? w - 1u : 2u, 2u * w + 1u, 3001u, BIG_N};
    for (uint32_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        coll_link_stats before, after;
        coll_link_stats_get(&before);
        check_allreduce_s32(o, 100u + k, lens[k], 4096u);
        coll_link_stats_get(&after);
        if (o->topo.kind == HAL_TOPO_RING) {
            /* reduce-scatter sends every segment but idx+1, all-gather every segment but idx+2 */
            uint32_t n = lens[k];
            uint64_t want = w == 1 ? 0 : 4u * (uint64_t)(2u * n - part_len(R + 1u, n, w) - part_len(R + 2u, n, w));
            CCHECK(after.tx_bytes - before.tx_bytes == want, "ring n=%u: sent %llu bytes, expected %llu", n,
                   (unsigned long long)(after.tx_bytes - before.tx_bytes), (unsigned long long)want);
        }
        jitter(o, k);
    }
    check_allreduce_s32(o, 200u, 101u, 5u); /* many small chunks */
    check_allreduce_s32(o, 201u, 7u, 1u);

    coll_link_stats st;
    coll_link_stats_get(&st);
    S->tx[R] = st.tx_bytes;
    S->rx[R] = st.rx_bytes;

    /* int64 sums */
    const uint32_t lens64[] = {3u, 5000u};
    for (uint32_t k = 0; k < 2; k++) {
        uint32_t n = lens64[k];
        for (uint32_t i = 0; i < n; i++) g_buf64[i] = (int64_t)val64(300u + k, R, i);
        int rc = coll_allreduce_sum_s64(g_buf64, n, g_scratch64, 2048u);
        CCHECK(rc == 0, "allreduce_s64 n=%u: %s", n, hal_strerror(rc));
        uint32_t wrong = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t want = 0;
            for (uint32_t r = 0; r < w; r++) want += val64(300u + k, r, i);
            wrong += (uint64_t)g_buf64[i] != want;
        }
        CCHECK(wrong == 0, "allreduce_s64 n=%u: %u wrong", n, wrong);
    }

    /* broadcast from every root, sizes 0, 1 and several chunks */
    const uint32_t bsz[] = {0u, 1u, 40000u};
    for (uint32_t root = 0; root < w; root++) {
        for (uint32_t k = 0; k < 3; k++) {
            uint32_t n = bsz[k];
            for (uint32_t i = 0; i < n; i++) g_bytes[i] = R == root ? (uint8_t)val64(400u + root, root, i) : 0xEE;
            int rc = coll_broadcast(g_bytes, n, root);
            CCHECK(rc == 0, "broadcast root=%u n=%u: %s", root, n, hal_strerror(rc));
            uint32_t wrong = 0;
            for (uint32_t i = 0; i < n; i++) wrong += g_bytes[i] != (uint8_t)val64(400u + root, root, i);
            CCHECK(wrong == 0, "broadcast root=%u n=%u: %u wrong bytes", root, n, wrong);
        }
    }

    /* argmax with many ties; indices are a rotation of ranks so "lowest index" is not "lowest rank" */
    for (uint32_t round = 0; round < 24; round++) {
        int32_t vals[MAXW] = {0};
        uint32_t idx[MAXW] = {0};
        for (uint32_t r = 0; r < w; r++) {
            if (round == 0) vals[r] = INT32_MIN;
            else if (round == 1) vals[r] = INT32_MAX;
            else vals[r] = (int32_t)(val64(500u + round, r, 0) % 3u) - 1;
            idx[r] = ((r + round) % w) * 1000u + 31999u - (r + round) % w;
        }
        int32_t best_v = vals[0];
        uint32_t best_i = idx[0];
        for (uint32_t r = 1; r < w; r++)
            if (vals[r] > best_v || (vals[r] == best_v && idx[r] < best_i)) best_v = vals[r], best_i = idx[r];
        int32_t got_v = 0;
        uint32_t got_i = 0;
        int rc = coll_argmax_reduce(vals[R], idx[R], &got_v, &got_i);
        CCHECK(rc == 0 && got_v == best_v && got_i == best_i, "argmax round %u: got (%d,%u) rc %d, expected (%d,%u)",
               round, got_v, got_i, rc, best_v, best_i);
    }

    /* barrier: one late rank per round; after the barrier everyone must have arrived */
    for (uint32_t k = 0; k < 4; k++) {
        if (R == k % w) sleep_us(20000);
        S->arrived[R][k] = 1;
        int rc = coll_barrier();
        CCHECK(rc == 0, "barrier %u: %s", k, hal_strerror(rc));
        uint32_t missing = 0;
        for (uint32_t r = 0; r < w; r++) missing += S->arrived[r][k] != 1;
        CCHECK(missing == 0, "barrier %u returned with %u ranks not arrived", k, missing);
    }
    int rc = coll_broadcast(g_bytes, 1, w);
    CCHECK(rc == HAL_ERR_ARG, "broadcast with root == world gave %d", rc);
}

static void run_battery(uint32_t w, hal_topology topo, const char *name) {
    cluster_opts o;
    memset(&o, 0, sizeof(o));
    o.name = name;
    o.world = w;
    o.topo = topo;
    o.cycle_offset_step = 1000003u;
    o.victim = MAXW;
    o.body = body_battery;
    if (run_cluster(&o) == 0) {
        uint64_t tx = 0, rx = 0;
        for (uint32_t r = 0; r < w; r++) tx += S->tx[r], rx += S->rx[r];
        CHECK(tx == rx, "%s: cluster sent %llu bytes but received %llu", name, (unsigned long long)tx,
              (unsigned long long)rx);
    }
}

/* Sender's clock advances by latency + n / rate; the receiver's becomes max(own, stamp), measured
 * on the shared virtual time axis (hal_cycles minus the chip's boot offset). */
static void body_stamp(const cluster_opts *o) {
    uint64_t off = (uint64_t)R * o->cycle_offset_step;
    uint8_t msg[1000];
    uint64_t pred = 0;
    CCHECK(hal_cycles() == off, "boot counter %llu, expected offset %llu", (unsigned long long)hal_cycles(),
           (unsigned long long)off);
    /* round 1: sender far ahead (1,000,000 cycles of off-chip traffic at 1 B/cycle) */
    if (R == 0) {
        hal_account(0, 0, 1000000u);
        uint64_t before = hal_cycles() - off;
        pred = before + T_LINK_LATENCY + (1000u * 1000u + T_LINK_MILLI - 1u) / T_LINK_MILLI;
        memcpy(msg, &pred, sizeof(pred));
        int rc = hal_link_send(1, msg, sizeof(msg));
        CCHECK(rc == 0 && hal_cycles() - off == pred, "send: rc %d, vt %llu, expected %llu", rc,
               (unsigned long long)(hal_cycles() - off), (unsigned long long)pred);
    } else {
        uint64_t before = hal_cycles() - off;
        int rc = hal_link_recv(0, msg, sizeof(msg), 10000u);
        memcpy(&pred, msg, sizeof(pred));
        uint64_t want = before > pred ? before : pred;
        CCHECK(rc == 0 && hal_cycles() - off == want, "recv behind: rc %d vt %llu expected %llu", rc,
               (unsigned long long)(hal_cycles() - off), (unsigned long long)want);
    }
    /* round 2: the receiver is far ahead; a message from the past does not move its clock */
    if (R == 1) {
        hal_account(0, 0, 5000000u);
        uint64_t before = hal_cycles();
        int rc = hal_link_recv(0, msg, 10, 10000u);
        CCHECK(rc == 0 && hal_cycles() == before, "recv ahead: rc %d, clock moved from %llu to %llu", rc,
               (unsigned long long)before, (unsigned long long)hal_cycles());
    } else {
        int rc = hal_link_send(1, msg, 10);
        CCHECK(rc == 0, "send 10: %d", rc);
    }
}

/* Two chips, n = 2m elements, rank 0 starting P cycles ahead. Worked from the cost rule:
 * both end at P + 2 (L + ceil(4m / link_rate)) + max(ceil(m / macs_rate), ceil(12m / onchip_rate)). */
static void body_w2_formula(const cluster_opts *o) {
    const uint32_t m = 1000u;
    const uint64_t p = 777777u;
    uint64_t off = (uint64_t)R * o->cycle_offset_step;
    if (R == 0) hal_account(0, 0, p);
    check_allreduce_s32(o, 600u, 2u * m, 4096u);
    uint64_t link = T_LINK_LATENCY + (4u * m * 1000u + T_LINK_MILLI - 1u) / T_LINK_MILLI;
    uint64_t add_mac = (m * 1000u + T_MACS_MILLI - 1u) / T_MACS_MILLI;
    uint64_t add_mem = (12u * m * 1000u + T_ONCHIP_MILLI - 1u) / T_ONCHIP_MILLI;
    uint64_t want = p + 2u * link + (add_mac > add_mem ? add_mac : add_mem);
    CCHECK(hal_cycles() - off == want, "w2 allreduce: vt %llu, expected %llu", (unsigned long long)(hal_cycles() - off),
           (unsigned long long)want);
}

static void body_determinism(const cluster_opts *o) {
    jitter(o, 1);
    check_allreduce_s32(o, 700u, 20001u, 4096u);
    jitter(o, 2);
    hal_account(R * 1000u, 0, 0); /* unequal work so that stamps, not luck, align the clocks */
    for (uint32_t i = 0; i < 3000u; i++) g_bytes[i] = (uint8_t)i;
    int rc = coll_broadcast(g_bytes, 3000u, 1u % o->world);
    CCHECK(rc == 0, "det broadcast: %d", rc);
    jitter(o, 3);
    int32_t v;
    uint32_t ix;
    rc = coll_argmax_reduce((int32_t)R, R, &v, &ix);
    CCHECK(rc == 0, "det argmax: %d", rc);
    rc = coll_barrier();
    CCHECK(rc == 0, "det barrier: %d", rc);
    check_allreduce_s32(o, 701u, 33u, 4096u);
    S->cycles[R] = hal_cycles();
}

static void body_fault(const cluster_opts *o) {
    (void)o;
    coll_set_timeout_ms(30000u);
    uint64_t t0 = now_ms();
    for (uint32_t i = 0; i < 50000u; i++) g_buf[i] = (int32_t)i;
    int rc = coll_allreduce_sum_s32(g_buf, 50000u, g_scratch, 4096u);
    uint64_t dt = now_ms() - t0;
    /* The victim never gets here: the fault hook ends it inside a send. */
    CCHECK(rc == HAL_ERR_LINK_LOST, "survivor %u: allreduce returned %d (%s), expected link lost", R, rc,
           hal_strerror(rc));
    CCHECK(dt < 10000u, "survivor %u: took %llu ms to notice (a timeout, not a lost link?)", R, (unsigned long long)dt);
    rc = coll_barrier();
    CCHECK(rc == HAL_ERR_LINK_LOST, "survivor %u: barrier after abort returned %d", R, rc);
}

/* ---- single-process checks ------------------------------------------------------------------------ */

static void test_unconfigured(void) {
    int32_t x = 1, s = 0;
    int32_t v;
    uint32_t i;
    CHECK(coll_allreduce_sum_s32(&x, 1, &s, 1) == HAL_ERR_NOT_CONFIGURED, "allreduce before configure");
    CHECK(coll_barrier() == HAL_ERR_NOT_CONFIGURED, "barrier before configure");
    CHECK(coll_argmax_reduce(1, 2, &v, &i) == HAL_ERR_NOT_CONFIGURED, "argmax before configure");
    hal_topology bad = {HAL_TOPO_HIER, 3};
    CHECK(coll_configure(0, 4, &bad) == HAL_ERR_ARG, "group size 3 does not divide world 4");
    hal_topology ring = {HAL_TOPO_RING, 0};
    CHECK(coll_configure(4, 4, &ring) == HAL_ERR_ARG, "rank 4 of world 4");
    hal_topology weird = {7, 0};
    CHECK(coll_configure(0, 2, &weird) == HAL_ERR_ARG, "unknown topology kind");
}

static void test_topo_peers(void) {
    uint32_t p[HAL_MAX_PEERS];
    hal_topology ring = {HAL_TOPO_RING, 0}, hier = {HAL_TOPO_HIER, 4};
    CHECK(hal_topo_peers(0, 1, &ring, p) == 0, "world 1 has no peers");
    CHECK(hal_topo_peers(0, 2, &ring, p) == 1 && p[0] == 1, "world 2 has one peer");
    CHECK(hal_topo_peers(0, 5, &ring, p) == 2 && p[0] == 4 && p[1] == 1, "ring neighbours of 0 in 5");
    /* leader 4 of 8 in groups of 4: group ring 7,5 and leader ring 0 (both directions) */
    CHECK(hal_topo_peers(4, 8, &hier, p) == 3 && p[0] == 7 && p[1] == 5 && p[2] == 0, "hier leader peers");
    CHECK(hal_topo_peers(6, 8, &hier, p) == 2 && p[0] == 5 && p[1] == 7, "hier member peers");
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (S == MAP_FAILED) {
        printf("collective: cannot map shared memory\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    test_unconfigured();
    test_topo_peers();

    hal_topology ring = {HAL_TOPO_RING, 0};
    char name[64];
    for (uint32_t w = 1; w <= MAXW; w++) {
        snprintf(name, sizeof(name), "ring world=%u", w);
        run_battery(w, ring, name);
    }
    const uint32_t hier_cases[][2] = {{4, 2}, {8, 2}, {8, 4}, {4, 1}, {4, 4}, {6, 3}};
    for (uint32_t k = 0; k < sizeof(hier_cases) / sizeof(hier_cases[0]); k++) {
        hal_topology h = {HAL_TOPO_HIER, hier_cases[k][1]};
        snprintf(name, sizeof(name), "hier world=%u group=%u", hier_cases[k][0], hier_cases[k][1]);
        run_battery(hier_cases[k][0], h, name);
    }

    cluster_opts o;
    memset(&o, 0, sizeof(o));
    o.world = 2;
    o.topo = ring;
    o.cycle_offset_step = 123456789u;
    o.victim = MAXW;
    o.name = "clock stamps";
    o.body = body_stamp;
    run_cluster(&o);
    o.name = "w2 cost formula";
    o.body = body_w2_formula;
    run_cluster(&o);

    /* Same work twice, the second time with random real-time delays: identical cycle counts. */
    const uint32_t det_worlds[] = {4, 8};
    for (uint32_t k = 0; k < 2; k++) {
        uint64_t first[MAXW];
        o.world = det_worlds[k];
        o.topo = k == 0 ? ring : (hal_topology){HAL_TOPO_HIER, 4};
        o.cycle_offset_step = 1000003u;
        o.name = "determinism run 1";
        o.body = body_determinism;
        o.jitter = 0;
        int bad = run_cluster(&o);
        memcpy(first, S->cycles, sizeof(first));
        o.name = "determinism run 2 (jittered)";
        o.jitter = 1;
        bad |= run_cluster(&o);
        if (!bad) {
            for (uint32_t r = 0; r < o.world; r++)
                CHECK(first[r] == S->cycles[r], "world %u rank %u: %llu cycles, then %llu with jitter", o.world, r,
                      (unsigned long long)first[r], (unsigned long long)S->cycles[r]);
        }
    }
    o.jitter = 0;

    /* A chip dies inside a collective: every survivor sees a lost link, promptly. */
    o.name = "peer killed (ring 4)";
    o.world = 4;
    o.topo = ring;
    o.victim = 2;
    o.victim_sends = 2;
    o.body = body_fault;
    run_cluster(&o);
    o.name = "peer killed (hier 8/4)";
    o.world = 8;
    o.topo = (hal_topology){HAL_TOPO_HIER, 4};
    o.victim = 5;
    o.victim_sends = 3;
    run_cluster(&o);

    printf("collective: %u passed, %u failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}

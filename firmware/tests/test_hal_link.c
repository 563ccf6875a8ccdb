/* test_hal_link.c: the posix port's chip-to-chip links between forked chip processes: framing,
 * size checks, timeouts, lost peers, set-up robustness and the buffering bound the collectives
 * rely on. */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hal/hal.h"
#include "hal/posix/posix_chip.h"
#include "tests/check.h"

#define MAXW 4u

typedef struct {
    uint32_t passed[MAXW + 1];
    uint32_t failed[MAXW + 1];
    char first_fail[MAXW + 1][200];
} shm_t;

static shm_t *S;
static uint32_t R; /* rank of this process; MAXW = the test driver itself */
static char g_dir[64];

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

typedef void (*body_fn)(void);

typedef struct {
    const char *name;
    uint32_t world;       /* processes started: ranks 0..world-1 ... */
    uint32_t skip_rank;   /* ... except this one (>= world: none), to leave a rank absent */
    hal_topology topo;
    uint32_t link_timeout_ms;
    uint32_t fault_rank, fault_sends;
    int configure;        /* children call hal_links_configure before the body */
    body_fn body;
    body_fn driver;       /* runs in the parent while the chips run (may be NULL) */
} link_case;

static const link_case *g_case;

static void chip_start(const link_case *c, uint32_t rank) {
    posix_chip_args a;
    posix_default_args(&a);
    snprintf(a.run_dir, sizeof(a.run_dir), "%s", g_dir);
    a.chip_id = rank;
    a.nv_size = 0;
    a.no_pty = 1;
    a.quiet = 1;
    a.link_timeout_ms = c->link_timeout_ms ? c->link_timeout_ms : 10000u;
    if (rank == c->fault_rank) a.fault_exit_after_sends = c->fault_sends;
    int rc = posix_chip_init(&a);
    CCHECK(rc == 0, "rank %u init: %s", rank, posix_chip_error());
}

static int run_case(const link_case *c, int want_exit[MAXW]) {
    pid_t pids[MAXW];
    int bad = 0;
    memset(S, 0, sizeof(*S));
    g_case = c;
    fflush(stdout);
    for (uint32_t r = 0; r < c->world; r++) {
        pids[r] = -1;
        if (r == c->skip_rank) continue;
        pids[r] = fork();
        if (pids[r] == 0) {
            R = r;
            alarm(30);
            chip_start(c, r);
            if (c->configure) {
                int rc = hal_links_configure(r, c->world, &c->topo);
                CCHECK(rc == 0, "rank %u configure: %s (%s)", r, hal_strerror(rc), posix_chip_error());
            }
            c->body();
            posix_chip_close();
            _exit(0);
        }
    }
    R = MAXW;
    if (c->driver) c->driver();
    for (uint32_t r = 0; r < c->world; r++) {
        int st = 0;
        if (pids[r] < 0) continue;
        while (waitpid(pids[r], &st, 0) < 0 && errno == EINTR) {
        }
        int want = want_exit ? want_exit[r] : 0;
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == want;
        if (!ok) {
            printf("FAIL %s: rank %u ended with status 0x%x (expected exit %d)\n", c->name, r, st, want);
            g_fail++;
        }
        bad |= !ok;
    }
    for (uint32_t r = 0; r <= MAXW; r++) {
        g_pass += S->passed[r];
        g_fail += S->failed[r];
        if (S->failed[r]) printf("FAIL %s: %s %u: %s\n", c->name, r == MAXW ? "driver" : "rank", r, S->first_fail[r]);
        bad |= S->failed[r] != 0;
    }
    return bad;
}

/* ---- bodies ---------------------------------------------------------------------------------------- */

static uint8_t g_big[HAL_LINK_MIN_BUFFERED_MSGS][HAL_LINK_MAX_MSG];
static uint8_t g_in[HAL_LINK_MAX_MSG + 16];

static void fill(uint8_t *p, uint32_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1u;
    for (uint32_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static void body_basic(void) {
    uint32_t peer = 1u - R;
    uint8_t small[5] = {1, 2, 3, 4, 5};
    /* payload integrity both ways, zero-length and largest messages */
    if (R == 0) {
        fill(g_big[0], HAL_LINK_MAX_MSG, 7);
        CCHECK(hal_link_send(peer, small, 5) == 0, "send 5");
        CCHECK(hal_link_send(peer, NULL, 0) == 0, "send 0");
        CCHECK(hal_link_send(peer, g_big[0], HAL_LINK_MAX_MSG) == 0, "send max");
        CCHECK(hal_link_send(peer, g_big[0], HAL_LINK_MAX_MSG + 1u) == HAL_ERR_SIZE, "oversized send refused");
        /* size mismatch: receiver expects 12, gets 10; the next message must still arrive intact */
        CCHECK(hal_link_send(peer, g_big[0], 10) == 0, "send 10");
        CCHECK(hal_link_send(peer, small, 5) == 0, "send 5 after mismatch");
        CCHECK(hal_link_recv(peer, g_in, 3, 10000) == 0 && memcmp(g_in, "ack", 3) == 0, "ack from rank 1");
    } else {
        fill(g_big[1], HAL_LINK_MAX_MSG, 7);
        CCHECK(hal_link_recv(peer, g_in, 5, 10000) == 0 && memcmp(g_in, small, 5) == 0, "recv 5");
        CCHECK(hal_link_recv(peer, NULL, 0, 10000) == 0, "recv 0");
        CCHECK(hal_link_recv(peer, g_in, HAL_LINK_MAX_MSG, 10000) == 0 && memcmp(g_in, g_big[1], HAL_LINK_MAX_MSG) == 0,
               "recv max intact");
        CCHECK(hal_link_recv(peer, g_in, 12, 10000) == HAL_ERR_SIZE, "size mismatch reported");
        CCHECK(hal_link_recv(peer, g_in, 5, 10000) == 0 && memcmp(g_in, small, 5) == 0, "stream still framed");
        /* nothing pending: a clean timeout, and the link still works afterwards */
        uint64_t t0 = now_ms();
        int rc = hal_link_recv(peer, g_in, 4, 200);
        uint64_t dt = now_ms() - t0;
        CCHECK(rc == HAL_ERR_TIMEOUT && dt >= 190 && dt < 3000, "timeout: rc %d after %llu ms", rc, (unsigned long long)dt);
        CCHECK(hal_link_send(peer, "ack", 3) == 0, "link usable after a timeout");
    }
    CCHECK(hal_link_send(R, small, 1) == HAL_ERR_NO_LINK, "no link to self");
    CCHECK(hal_link_recv(5, g_in, 1, 10) == HAL_ERR_NO_LINK, "no link to a rank outside the world");
}

/* Both chips push HAL_LINK_MIN_BUFFERED_MSGS largest messages before reading any: the buffering
 * bound promised in hal.h, which is what keeps ring collectives deadlock-free. */
static void body_buffering(void) {
    uint32_t peer = 1u - R;
    for (uint32_t k = 0; k < HAL_LINK_MIN_BUFFERED_MSGS; k++) {
        fill(g_big[k], HAL_LINK_MAX_MSG, 100u * R + k);
        CCHECK(hal_link_send(peer, g_big[k], HAL_LINK_MAX_MSG) == 0, "send %u of a full window", k);
    }
    uint32_t wrong = 0;
    for (uint32_t k = 0; k < HAL_LINK_MIN_BUFFERED_MSGS; k++) {
        int rc = hal_link_recv(peer, g_in, HAL_LINK_MAX_MSG, 10000);
        fill(g_big[0], HAL_LINK_MAX_MSG, 100u * peer + k);
        wrong += rc != 0 || memcmp(g_in, g_big[0], HAL_LINK_MAX_MSG) != 0;
    }
    CCHECK(wrong == 0, "%u of the window's messages wrong", wrong);
}

static void body_ring4_links(void) {
    uint8_t b = (uint8_t)R;
    /* ring of 4: 0-1, 1-2, 2-3, 3-0 linked; 0-2 and 1-3 are not */
    CCHECK(hal_link_send((R + 2u) % 4u, &b, 1) == HAL_ERR_NO_LINK, "rank %u: no link across the ring", R);
    CCHECK(hal_link_send((R + 1u) % 4u, &b, 1) == 0, "rank %u: send right", R);
    int rc = hal_link_recv((R + 3u) % 4u, &b, 1, 10000);
    CCHECK(rc == 0 && b == (uint8_t)((R + 3u) % 4u), "rank %u: got %u from the left (rc %d)", R, b, rc);
    /* reconfigure as hierarchical 2x2 (links 0-1, 2-3, 0-2) and talk again */
    hal_topology h = {HAL_TOPO_HIER, 2};
    rc = hal_links_configure(R, 4, &h);
    CCHECK(rc == 0, "rank %u: reconfigure: %s", R, hal_strerror(rc));
    uint32_t mate = R ^ 1u;
    CCHECK(hal_link_send(mate, &b, 1) == 0 && hal_link_recv(mate, &b, 1, 10000) == 0, "rank %u: group link", R);
    if (R == 0 || R == 2) {
        CCHECK(hal_link_send(R ^ 2u, &b, 1) == 0 && hal_link_recv(R ^ 2u, &b, 1, 10000) == 0, "rank %u: leader link", R);
    } else {
        CCHECK(hal_link_send(R ^ 2u, &b, 1) == HAL_ERR_NO_LINK, "rank %u: members of different groups unlinked", R);
    }
}

static void body_peer_exit(void) {
    uint8_t b = 0;
    if (R == 1) return; /* exits right after linking */
    uint64_t t0 = now_ms();
    int rc = hal_link_recv(1, &b, 1, 20000);
    CCHECK(rc == HAL_ERR_LINK_LOST, "recv from an exited peer: %d (%s)", rc, hal_strerror(rc));
    CCHECK(now_ms() - t0 < 5000, "lost link noticed promptly");
    CCHECK(hal_link_send(1, &b, 1) == HAL_ERR_LINK_LOST, "send on a lost link");
    CCHECK(hal_link_recv(1, &b, 1, 10) == HAL_ERR_LINK_LOST, "lost link stays lost");
}

static void body_send_to_dead(void) {
    uint8_t b = 0;
    if (R == 1) {
        CCHECK(hal_link_send(0, &b, 1) == 0, "tell rank 0 we are leaving");
        return;
    }
    CCHECK(hal_link_recv(1, &b, 1, 10000) == 0, "goodbye received");
    /* wait for the peer's end to close: EOF on its side shows up as a lost link on recv */
    int rc = hal_link_recv(1, &b, 1, 10000);
    CCHECK(rc == HAL_ERR_LINK_LOST, "EOF is a lost link: %d", rc);
}

static void body_unconfigured(void) {
    uint8_t b = 0;
    CCHECK(hal_link_send(1, &b, 1) == HAL_ERR_NOT_CONFIGURED, "send before configure");
    CCHECK(hal_link_recv(1, &b, 1, 1) == HAL_ERR_NOT_CONFIGURED, "recv before configure");
    hal_topology bad = {HAL_TOPO_HIER, 3};
    CCHECK(hal_links_configure(0, 4, &bad) == HAL_ERR_ARG, "group size must divide the world");
    hal_topology ring = {HAL_TOPO_RING, 0};
    CCHECK(hal_links_configure(2, 2, &ring) == HAL_ERR_ARG, "rank must be below world");
    CCHECK(hal_links_configure(0, HAL_MAX_WORLD + 1u, &ring) == HAL_ERR_ARG, "world too large");
    CCHECK(hal_links_configure(0, 1, &ring) == 0, "world 1 needs no links");
}

static void body_absent_peer(void) {
    hal_topology ring = {HAL_TOPO_RING, 0};
    uint64_t t0 = now_ms();
    int rc = hal_links_configure(0, 2, &ring);
    uint64_t dt = now_ms() - t0;
    CCHECK(rc == HAL_ERR_TIMEOUT, "configure with an absent peer: %d", rc);
    CCHECK(dt >= 250 && dt < 5000, "gave up after %llu ms (timeout 300)", (unsigned long long)dt);
}

static void body_fault_hook(void) {
    uint8_t b = 0;
    if (R == 0) {
        for (int k = 0; k < 5; k++) hal_link_send(1, &b, 1); /* exits inside the 3rd */
        CCHECK(0, "fault hook did not fire");
    } else {
        int got = 0;
        while (hal_link_recv(0, &b, 1, 10000) == 0) got++;
        CCHECK(got == 2, "peer saw %d messages before the fault, expected 2", got);
    }
}

/* ---- a hand-made peer speaking the documented link format ----------------------------------------- */

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static int raw_connect(uint32_t rank) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/link%u.sock", g_dir, rank);
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 10000) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) return fd;
        close(fd);
        poll(NULL, 0, 5); /* the chip has not bound its socket yet */
    }
    return -1;
}

static void hello(uint8_t h[24], uint32_t rank, uint32_t world) {
    put_u32(h, 0x4B4E4C4Fu);
    put_u32(h + 4, 1);
    put_u32(h + 8, rank);
    put_u32(h + 12, world);
    put_u32(h + 16, HAL_TOPO_RING);
    put_u32(h + 20, 0);
}

static int read_full(int fd, uint8_t *b, size_t n) {
    size_t got = 0;
    while (got < n) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) return -1;
        ssize_t r = read(fd, b + got, n - got);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Driver plays rank 0 of a 2-chip ring towards the real rank 1: first a stranger with a bad hello
 * (must be ignored), then a correct hello, then corrupt frames. */
static void driver_fake_rank0(void) {
    uint8_t h[24], ack[8], hdr[16];
    int stray = raw_connect(1);
    CCHECK(stray >= 0, "stray connects");
    hello(h, 0, 3); /* wrong world */
    CCHECK(write(stray, h, 24) == 24, "stray hello");
    int fd = raw_connect(1);
    CCHECK(fd >= 0, "fake rank 0 connects");
    hello(h, 0, 2);
    CCHECK(write(fd, h, 24) == 24, "fake hello");
    CCHECK(read_full(fd, ack, 8) == 0 && ack[4] == 1, "ack from rank 1");
    /* stray must have been dropped: reading it gives EOF, not an ack */
    uint8_t x;
    struct pollfd p = {stray, POLLIN, 0};
    CCHECK(poll(&p, 1, 10000) == 1 && read(stray, &x, 1) == 0, "stray connection closed");
    close(stray);
    /* message 0: fine, 3 bytes, stamp 5000 */
    put_u32(hdr, 3);
    put_u32(hdr + 4, 0);
    put_u32(hdr + 8, 5000);
    put_u32(hdr + 12, 0);
    CCHECK(write(fd, hdr, 16) == 16 && write(fd, "abc", 3) == 3, "frame 0");
    /* message 1 claims to be larger than HAL_LINK_MAX_MSG: must be refused without reading it */
    put_u32(hdr, HAL_LINK_MAX_MSG + 1u);
    put_u32(hdr + 4, 1);
    CCHECK(write(fd, hdr, 16) == 16, "oversized header");
    /* the chip drops the link: we see EOF */
    p.fd = fd;
    CCHECK(poll(&p, 1, 10000) == 1 && read(fd, &x, 1) == 0, "chip closed the corrupt link");
    close(fd);
}

static void body_rank1_vs_fake(void) {
    uint8_t b[8];
    int rc = hal_link_recv(0, b, 3, 10000);
    CCHECK(rc == 0 && memcmp(b, "abc", 3) == 0, "good frame from the fake peer: %d", rc);
    CCHECK(hal_cycles() == 5000, "stamp 5000 moved the clock to %llu", (unsigned long long)hal_cycles());
    rc = hal_link_recv(0, b, 3, 10000);
    CCHECK(rc == HAL_ERR_PROTO, "oversized length: %d", rc);
    CCHECK(hal_link_recv(0, b, 3, 10) == HAL_ERR_LINK_LOST, "link dropped after corruption");
}

static void driver_bad_seq(void) {
    uint8_t h[24], ack[8], frame[17];
    int fd = raw_connect(1);
    hello(h, 0, 2);
    CCHECK(fd >= 0 && write(fd, h, 24) == 24 && read_full(fd, ack, 8) == 0, "fake rank 0 linked");
    memset(frame, 0, sizeof(frame));
    put_u32(frame, 1);
    put_u32(frame + 4, 7); /* first message must be sequence 0 */
    frame[16] = 'z';
    /* one write: the chip may drop the link as soon as it has seen the header */
    CCHECK(write(fd, frame, 17) == 17, "out-of-sequence frame");
    uint8_t x;
    struct pollfd p = {fd, POLLIN, 0};
    CCHECK(poll(&p, 1, 10000) == 1 && read(fd, &x, 1) <= 0, "chip closed the link");
    close(fd);
}

static void body_rank1_bad_seq(void) {
    uint8_t b;
    int rc = hal_link_recv(0, &b, 1, 10000);
    CCHECK(rc == HAL_ERR_PROTO, "out-of-sequence frame: %d", rc);
}

static void body_rank1_only_configure(void) {
    hal_topology ring = {HAL_TOPO_RING, 0};
    int rc = hal_links_configure(1, 2, &ring);
    CCHECK(rc == 0, "rank 1 links with the fake rank 0: %s (%s)", hal_strerror(rc), posix_chip_error());
    if (rc == 0) {
        if (g_case->driver == driver_fake_rank0) body_rank1_vs_fake();
        else body_rank1_bad_seq();
    }
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    strcpy(g_dir, "/tmp/orch-link-XXXXXX");
    if (S == MAP_FAILED || mkdtemp(g_dir) == NULL) {
        printf("hal_link: setup failed\n");
        return 1;
    }
    hal_topology ring = {HAL_TOPO_RING, 0};
    int fault_exit[MAXW] = {POSIX_FAULT_EXIT_STATUS, 0, 0, 0};

    link_case c;
    memset(&c, 0, sizeof(c));
    c.world = 2;
    c.skip_rank = MAXW;
    c.fault_rank = MAXW;
    c.topo = ring;
    c.configure = 1;

    c.name = "basic";
    c.body = body_basic;
    run_case(&c, NULL);
    c.name = "buffering bound";
    c.body = body_buffering;
    run_case(&c, NULL);
    c.name = "peer exits";
    c.body = body_peer_exit;
    run_case(&c, NULL);
    c.name = "send then exit";
    c.body = body_send_to_dead;
    run_case(&c, NULL);
    c.name = "fault hook";
    c.body = body_fault_hook;
    c.fault_rank = 0;
    c.fault_sends = 3;
    run_case(&c, fault_exit);
    c.fault_rank = MAXW;

    c.name = "ring of 4 and reconfigure";
    c.world = 4;
    c.body = body_ring4_links;
    run_case(&c, NULL);

    c.name = "unconfigured";
    c.world = 1;
    c.configure = 0;
    c.body = body_unconfigured;
    run_case(&c, NULL);

    c.name = "absent peer";
    c.world = 2;
    c.skip_rank = 1;
    c.link_timeout_ms = 300;
    c.body = body_absent_peer;
    run_case(&c, NULL);
    c.link_timeout_ms = 0;

    c.name = "stray and corrupt frames";
    c.skip_rank = 0;
    c.body = body_rank1_only_configure;
    c.driver = driver_fake_rank0;
    run_case(&c, NULL);
    c.name = "out-of-sequence frame";
    c.driver = driver_bad_seq;
    run_case(&c, NULL);

    rmdir(g_dir);
    printf("hal_link: %u passed, %u failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}

/* posix_link.c: the mock chip's chip-to-chip links, Unix-domain stream sockets in the run dir.
 *
 * Set-up (hal_links_configure): a chip with lower-ranked neighbours listens on
 * <run_dir>/link<rank>.sock; it first links to each higher-ranked neighbour in turn (connect, send a
 * hello naming itself and the cluster shape, wait for the ack; retry while the neighbour is not
 * listening yet), then accepts its lower neighbours and acks their hellos. A chip only ever waits
 * for higher ranks, and the highest rank waits for nobody, so set-up cannot deadlock. The listener
 * is removed once all neighbours are in.
 *
 * Each message is a 16-byte header {u32 length, u32 sequence, u64 stamp} (little-endian) followed by
 * the payload. The stamp is the sender's virtual time at the end of the send; the receiver's clock
 * moves up to it. The sequence number catches a desynchronised stream.
 *
 * Speed: with 8 chip processes on a 2-core host a token needs a few hundred dependent message hops,
 * so the cost of a hop is the cost of its system calls and wake-ups. Hence each link reads into
 * its own buffer (one recv takes header, payload and whatever follows), and link sockets stay
 * blocking with SO_RCVTIMEO so that waiting for a message is the recv itself, not recv, EAGAIN,
 * poll and two more recvs. A hop is then one sendmsg on one side and one recv on the other.
 * Non-blocking operations pass MSG_DONTWAIT instead of switching the socket mode. */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hal/posix/posix_internal.h"

#define LINK_HDR_BYTES 16u
#define HELLO_BYTES 24u
#define ACK_BYTES 8u
#define HELLO_MAGIC 0x4B4E4C4Fu /* "OLNK" */
#define LINK_VERSION 1u
#define SOCK_BUF_REQUEST (1u << 20)

/* Room for two largest messages: a whole message always fits behind a partial one after
 * compaction, so a receive never has to wait for the caller to make space. */
#define LINK_RX_CAP (2u * (HAL_LINK_MAX_MSG + LINK_HDR_BYTES))
#define RCVTIMEO_UNSET 0xFFFFFFFEu

typedef struct {
    uint32_t peer;
    int fd; /* -1 once the link is lost or closed */
    uint32_t tx_seq;
    uint32_t rx_seq;
    uint32_t rx_lo, rx_hi;  /* received, not yet consumed: rx[rx_lo, rx_hi) */
    uint32_t rcvtimeo_ms;   /* the socket's SO_RCVTIMEO in ms (HAL_WAIT_FOREVER = none) */
    uint8_t rx[LINK_RX_CAP];
} posix_link;

static posix_link g_links[HAL_MAX_PEERS];
static int g_n_links;
static int g_configured;
static uint32_t g_rank, g_world;
static uint32_t g_sends;

/* ---- little helpers ---------------------------------------------------------------------------- */

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_u64(uint8_t *p, uint64_t v) {
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}
static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

/* Waits for events on fd until the absolute deadline (UINT64_MAX = for ever).
 * Returns 1 ready, 0 timed out, -1 error. POLLHUP/POLLERR count as ready: the next read or write
 * reports what happened. */
static int wait_fd(int fd, short events, uint64_t deadline) {
    struct pollfd p;
    for (;;) {
        int t = -1;
        if (deadline != UINT64_MAX) {
            uint64_t now = now_ms();
            if (now >= deadline) t = 0;
            else t = (deadline - now > 0x7fffffffu) ? 0x7fffffff : (int)(deadline - now);
        }
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        int r = poll(&p, 1, t);
        if (r > 0) return 1;
        if (r == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

static uint64_t deadline_after(uint32_t timeout_ms) {
    return timeout_ms == HAL_WAIT_FOREVER ? UINT64_MAX : now_ms() + timeout_ms;
}

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* Link sockets stay blocking (their receives wait in recv with SO_RCVTIMEO); every call that must
 * not block passes MSG_DONTWAIT. */
static int set_blocking_cloexec(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) return -1;
    return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* Writes all of iov[0..n_iov) or fails: HAL_ERR_LINK_LOST (peer gone), HAL_ERR_TIMEOUT. */
static int write_all(int fd, struct iovec *iov, int n_iov, uint64_t deadline) {
    struct msghdr mh;
    while (n_iov > 0) {
        if (iov[0].iov_len == 0) {
            iov++;
            n_iov--;
            continue;
        }
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t)n_iov;
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int r = wait_fd(fd, POLLOUT, deadline);
                if (r == 0) return HAL_ERR_TIMEOUT;
                if (r < 0) return HAL_ERR_IO;
                continue;
            }
            return HAL_ERR_LINK_LOST; /* EPIPE, ECONNRESET, ENOTCONN: the peer is gone */
        }
        size_t left = (size_t)w;
        while (n_iov > 0 && left >= iov[0].iov_len) {
            left -= iov[0].iov_len;
            iov++;
            n_iov--;
        }
        if (n_iov > 0) {
            iov[0].iov_base = (uint8_t *)iov[0].iov_base + left;
            iov[0].iov_len -= left;
        }
    }
    return 0;
}

/* Reads exactly n bytes. *got counts progress so the caller can tell "nothing arrived" (a clean
 * timeout) from "a message stopped half way" (the stream is unusable). */
static int read_all(int fd, uint8_t *buf, uint32_t n, uint64_t deadline, uint32_t *got) {
    *got = 0;
    while (*got < n) {
        ssize_t r = recv(fd, buf + *got, n - *got, MSG_DONTWAIT);
        if (r > 0) {
            *got += (uint32_t)r;
            continue;
        }
        if (r == 0) return HAL_ERR_LINK_LOST; /* orderly close: the peer exited or aborted */
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLIN, deadline);
            if (w == 0) return HAL_ERR_TIMEOUT;
            if (w < 0) return HAL_ERR_IO;
            continue;
        }
        return HAL_ERR_LINK_LOST; /* ECONNRESET */
    }
    return 0;
}

static void link_drop(posix_link *l) {
    if (l->fd >= 0) close(l->fd);
    l->fd = -1;
    l->rx_lo = l->rx_hi = 0;
}

static void link_attach(posix_link *l, int fd) {
    l->fd = fd;
    l->rx_lo = l->rx_hi = 0;
    l->rcvtimeo_ms = RCVTIMEO_UNSET;
}

/* Callers have checked that the run dir leaves room in sun_path; truncation is still refused. */
static void sock_path(char *out, size_t cap, uint32_t rank) {
    char tmp[POSIX_PATH_MAX + 32];
    int len = snprintf(tmp, sizeof(tmp), "%s/link%u.sock", posix_args()->run_dir, (unsigned)rank);
    if (len < 0 || (size_t)len >= cap) len = 0;
    memcpy(out, tmp, (size_t)len);
    out[len] = '\0';
}

/* ---- configure ---------------------------------------------------------------------------------- */

void hal_links_close(void) {
    for (int i = 0; i < g_n_links; i++) link_drop(&g_links[i]);
}

void posix_links_reset(void) {
    hal_links_close();
    g_n_links = 0;
    g_configured = 0;
    g_sends = 0;
}

static posix_link *find_link(uint32_t peer) {
    for (int i = 0; i < g_n_links; i++)
        if (g_links[i].peer == peer) return &g_links[i];
    return NULL;
}

static int size_buffers(int fd) {
    int want = (int)SOCK_BUF_REQUEST, got = 0;
    socklen_t len = sizeof(got);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len) != 0) return -1;
    /* Linux reports twice the usable payload room (the rest is bookkeeping), hence the factor 2. */
    if ((uint64_t)got < 2u * HAL_LINK_MIN_BUFFERED_MSGS * (HAL_LINK_MAX_MSG + LINK_HDR_BYTES)) return -1;
    return 0;
}

static void pack_hello(uint8_t *h, const hal_topology *t) {
    put_u32(h, HELLO_MAGIC);
    put_u32(h + 4, LINK_VERSION);
    put_u32(h + 8, g_rank);
    put_u32(h + 12, g_world);
    put_u32(h + 16, t->kind);
    put_u32(h + 20, t->kind == HAL_TOPO_HIER ? t->group_size : 0u);
}

/* Connects to a higher-ranked neighbour and completes the hello/ack exchange, retrying until the
 * deadline. A retry is needed not only while the neighbour has not bound its socket yet: right
 * after a reconfigure we may reach the listener of the neighbour's previous configure, which closes
 * without answering (we see EOF or a reset), or answers for another cluster shape. */
static int connect_peer(posix_link *l, const hal_topology *t, uint64_t deadline) {
    struct sockaddr_un sa;
    const char *why = "no answer";
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    sock_path(sa.sun_path, sizeof(sa.sun_path), l->peer);
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0) return posix_fail(HAL_ERR_IO, "socket: %s", strerror(errno));
        if (size_buffers(fd) != 0) {
            close(fd);
            return posix_fail(HAL_ERR_IO, "link socket buffers are smaller than %u messages of %u bytes",
                              HAL_LINK_MIN_BUFFERED_MSGS, HAL_LINK_MAX_MSG);
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            uint8_t hello[HELLO_BYTES], ack[ACK_BYTES];
            uint32_t got = 0;
            struct iovec iov;
            if (set_blocking_cloexec(fd) != 0) {
                close(fd);
                return posix_fail(HAL_ERR_IO, "fcntl: %s", strerror(errno));
            }
            pack_hello(hello, t);
            iov.iov_base = hello;
            iov.iov_len = sizeof(hello);
            int rc = write_all(fd, &iov, 1, deadline);
            if (rc == 0) rc = read_all(fd, ack, ACK_BYTES, deadline, &got);
            if (rc == 0 && get_u32(ack) == HELLO_MAGIC && get_u32(ack + 4) == l->peer) {
                link_attach(l, fd);
                return 0;
            }
            why = rc ? hal_strerror(rc) : "bad ack";
            close(fd);
        } else {
            int e = errno;
            close(fd);
            if (e != ENOENT && e != ECONNREFUSED && e != EINTR && e != EAGAIN)
                return posix_fail(HAL_ERR_IO, "connect to '%s': %s", sa.sun_path, strerror(e));
            why = "not listening";
        }
        if (now_ms() >= deadline)
            return posix_fail(HAL_ERR_TIMEOUT, "rank %u did not accept a link on '%s' in time (%s)",
                              (unsigned)l->peer, sa.sun_path, why);
        /* Nothing to poll on while the neighbour's listener is missing or stale; back off briefly. */
        poll(NULL, 0, 5);
    }
}

/* Accepts connections until every lower-ranked neighbour has greeted us. A connection whose hello
 * is malformed, from a stranger, or for another cluster shape is closed and ignored. */
static int accept_lower(int lfd, const hal_topology *t, uint64_t deadline) {
    uint8_t want[HELLO_BYTES];
    pack_hello(want, t);
    for (;;) {
        int missing = 0;
        for (int i = 0; i < g_n_links; i++) missing |= (g_links[i].peer < g_rank && g_links[i].fd < 0);
        if (!missing) return 0;
        int r = wait_fd(lfd, POLLIN, deadline);
        if (r == 0) return posix_fail(HAL_ERR_TIMEOUT, "lower-ranked neighbours did not connect in time");
        if (r < 0) return posix_fail(HAL_ERR_IO, "poll on listener: %s", strerror(errno));
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED) continue;
            return posix_fail(HAL_ERR_IO, "accept: %s", strerror(errno));
        }
        uint8_t hello[HELLO_BYTES], ack[ACK_BYTES];
        uint32_t got = 0;
        struct iovec iov;
        if (set_blocking_cloexec(fd) != 0 || size_buffers(fd) != 0 ||
            read_all(fd, hello, HELLO_BYTES, deadline, &got) != 0) {
            close(fd);
            continue;
        }
        uint32_t peer = get_u32(hello + 8);
        posix_link *l = find_link(peer);
        /* Everything but the sender's rank must match our own hello. */
        put_u32(want + 8, peer);
        if (memcmp(hello, want, HELLO_BYTES) != 0 || l == NULL || peer >= g_rank || l->fd >= 0) {
            close(fd);
            continue;
        }
        put_u32(ack, HELLO_MAGIC);
        put_u32(ack + 4, g_rank);
        iov.iov_base = ack;
        iov.iov_len = sizeof(ack);
        if (write_all(fd, &iov, 1, deadline) != 0) {
            close(fd);
            continue;
        }
        link_attach(l, fd);
    }
}

int hal_links_configure(uint32_t rank, uint32_t world, const hal_topology *t) {
    uint32_t peers[HAL_MAX_PEERS];
    int n = hal_topo_peers(rank, world, t, peers);
    if (n < 0) return posix_fail(HAL_ERR_ARG, "bad topology for rank %u of %u", (unsigned)rank, (unsigned)world);

    hal_links_close();
    g_configured = 0;
    g_n_links = n;
    g_rank = rank;
    g_world = world;
    for (int i = 0; i < n; i++) {
        g_links[i].peer = peers[i];
        g_links[i].fd = -1;
        g_links[i].tx_seq = 0;
        g_links[i].rx_seq = 0;
        g_links[i].rx_lo = g_links[i].rx_hi = 0;
    }
    if (n == 0) {
        g_configured = 1;
        return 0;
    }

    const posix_chip_args *a = posix_args();
    uint64_t deadline = deadline_after(a->link_timeout_ms);
    struct sockaddr_un sa;
    int lfd = -1, rc = 0, has_lower = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(a->run_dir) + 24u > sizeof(sa.sun_path))
        return posix_fail(HAL_ERR_ARG, "run dir '%s' is too long for a socket path (max %u characters)",
                          a->run_dir, (unsigned)(sizeof(sa.sun_path) - 24u));
    sock_path(sa.sun_path, sizeof(sa.sun_path), rank);
    for (int i = 0; i < n; i++) has_lower |= peers[i] < rank;

    if (has_lower) {
        unlink(sa.sun_path); /* a stale socket from an earlier run */
        lfd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (lfd < 0) return posix_fail(HAL_ERR_IO, "socket: %s", strerror(errno));
        if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 16) != 0 ||
            set_nonblock(lfd) != 0) {
            rc = posix_fail(HAL_ERR_IO, "cannot listen on '%s': %s", sa.sun_path, strerror(errno));
            goto out;
        }
    }
    for (int i = 0; i < n && rc == 0; i++)
        if (g_links[i].peer > rank) rc = connect_peer(&g_links[i], t, deadline);
    if (rc == 0 && has_lower) rc = accept_lower(lfd, t, deadline);
out:
    if (lfd >= 0) {
        close(lfd);
        unlink(sa.sun_path);
    }
    if (rc != 0) {
        hal_links_close();
        return rc;
    }
    g_configured = 1;
    return 0;
}

/* ---- messages ------------------------------------------------------------------------------------ */

static int usable_link(uint32_t peer, posix_link **out) {
    if (!g_configured) return HAL_ERR_NOT_CONFIGURED;
    posix_link *l = find_link(peer);
    if (l == NULL) return HAL_ERR_NO_LINK;
    if (l->fd < 0) return HAL_ERR_LINK_LOST;
    *out = l;
    return 0;
}

int hal_link_send(uint32_t peer, const void *buf, uint32_t n) {
    posix_link *l = NULL;
    int rc = usable_link(peer, &l);
    if (rc) return rc;
    if (n > HAL_LINK_MAX_MSG) return HAL_ERR_SIZE;
    if (buf == NULL && n) return HAL_ERR_ARG;
    const posix_chip_args *a = posix_args();
    if (a->fault_exit_after_sends && ++g_sends >= a->fault_exit_after_sends) _exit(POSIX_FAULT_EXIT_STATUS);

    uint8_t hdr[LINK_HDR_BYTES];
    uint64_t stamp = posix_clock_charge_send(n);
    put_u32(hdr, n);
    put_u32(hdr + 4, l->tx_seq++);
    put_u64(hdr + 8, stamp);
    struct iovec iov[2];
    iov[0].iov_base = hdr;
    iov[0].iov_len = LINK_HDR_BYTES;
    iov[1].iov_base = (void *)(uintptr_t)buf;
    iov[1].iov_len = n;
    rc = write_all(l->fd, iov, 2, deadline_after(a->link_timeout_ms));
    if (rc) link_drop(l); /* half a message may be on the wire: the stream cannot be trusted */
    return rc;
}

/* Sets the socket's receive timeout unless it already has it (a collective uses one timeout for
 * every receive, so this is a system call per link, not per message). */
static int set_rcvtimeo(posix_link *l, uint32_t timeout_ms) {
    if (l->rcvtimeo_ms == timeout_ms) return 0;
    struct timeval tv = {0, 0}; /* 0 = wait for ever */
    if (timeout_ms != HAL_WAIT_FOREVER) {
        tv.tv_sec = (time_t)(timeout_ms / 1000u);
        tv.tv_usec = (suseconds_t)(timeout_ms % 1000u) * 1000;
    }
    if (setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) return -1;
    l->rcvtimeo_ms = timeout_ms;
    return 0;
}

/* Buffers at least `need` bytes (need <= LINK_RX_CAP) of the link's stream. The first wait is a
 * blocking recv bounded by SO_RCVTIMEO = first_timeout_ms (0: do not wait; only when nothing of the
 * message is buffered yet, so the timeout runs from the caller's start); any later wait polls
 * until `deadline`. Returns 0, HAL_ERR_TIMEOUT, HAL_ERR_LINK_LOST (EOF, reset) or HAL_ERR_IO. */
static int link_fill(posix_link *l, uint32_t need, uint32_t first_timeout_ms, uint64_t deadline) {
    int first = 1;
    while (l->rx_hi - l->rx_lo < need) {
        if (l->rx_lo + need > LINK_RX_CAP) { /* make room behind the partial message */
            memmove(l->rx, l->rx + l->rx_lo, l->rx_hi - l->rx_lo);
            l->rx_hi -= l->rx_lo;
            l->rx_lo = 0;
        }
        int flags = MSG_DONTWAIT;
        if (first && first_timeout_ms != 0) {
            if (set_rcvtimeo(l, first_timeout_ms) != 0) return HAL_ERR_IO;
            flags = 0;
        }
        ssize_t r = recv(l->fd, l->rx + l->rx_hi, LINK_RX_CAP - l->rx_hi, flags);
        if (r > 0) {
            l->rx_hi += (uint32_t)r;
            first = 0;
            continue;
        }
        if (r == 0) return HAL_ERR_LINK_LOST; /* orderly close: the peer exited or aborted */
        if (errno == EINTR) {
            first = 0; /* a signal: the remaining wait is measured against the deadline */
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) return HAL_ERR_LINK_LOST; /* ECONNRESET */
        if (flags == 0) return HAL_ERR_TIMEOUT; /* SO_RCVTIMEO ran out */
        first = 0;
        int w = wait_fd(l->fd, POLLIN, deadline);
        if (w == 0) return HAL_ERR_TIMEOUT;
        if (w < 0) return HAL_ERR_IO;
    }
    return 0;
}

int hal_link_recv(uint32_t peer, void *buf, uint32_t n, uint32_t timeout_ms) {
    posix_link *l = NULL;
    int rc = usable_link(peer, &l);
    if (rc) return rc;
    if (buf == NULL && n) return HAL_ERR_ARG;

    /* Nothing of this message buffered yet: wait up to timeout_ms for it to begin. A timeout then
     * leaves the link usable. The deadline is only read from the clock when a wait is split. */
    if (l->rx_hi == l->rx_lo) {
        uint64_t deadline = timeout_ms == 0 ? 0 : deadline_after(timeout_ms);
        rc = link_fill(l, 1, timeout_ms, deadline);
        if (rc == HAL_ERR_TIMEOUT && l->rx_hi == l->rx_lo) return rc;
        if (rc && rc != HAL_ERR_TIMEOUT) {
            link_drop(l);
            return rc;
        }
    }
    /* Once a message has begun, the rest is already in flight: give it the link timeout. */
    uint64_t rest_deadline = UINT64_MAX;
    uint32_t link_timeout_ms = posix_args()->link_timeout_ms;
    if (l->rx_hi - l->rx_lo < LINK_HDR_BYTES) {
        rest_deadline = deadline_after(link_timeout_ms);
        rc = link_fill(l, LINK_HDR_BYTES, 0, rest_deadline);
        if (rc) {
            link_drop(l);
            return rc;
        }
    }
    const uint8_t *hdr = l->rx + l->rx_lo;
    uint32_t len = get_u32(hdr);
    uint32_t seq = get_u32(hdr + 4);
    uint64_t stamp = get_u64(hdr + 8);
    if (len > HAL_LINK_MAX_MSG || seq != l->rx_seq) {
        link_drop(l);
        return HAL_ERR_PROTO;
    }
    if (l->rx_hi - l->rx_lo < LINK_HDR_BYTES + len) {
        if (rest_deadline == UINT64_MAX) rest_deadline = deadline_after(link_timeout_ms);
        rc = link_fill(l, LINK_HDR_BYTES + len, 0, rest_deadline);
        if (rc) {
            link_drop(l);
            return rc;
        }
        hdr = l->rx + l->rx_lo; /* link_fill may have moved the buffered bytes */
    }
    l->rx_seq++;
    if (len == n && n) memcpy(buf, hdr + LINK_HDR_BYTES, n);
    l->rx_lo += LINK_HDR_BYTES + len;
    if (l->rx_lo == l->rx_hi) l->rx_lo = l->rx_hi = 0;
    posix_clock_observe(stamp);
    return len == n ? 0 : HAL_ERR_SIZE;
}

/* posix_host.c: the mock chip's host link, a pseudo-terminal the host opens like a USB-UART.
 *
 * The chip holds the master side. It also keeps one slave fd open for its whole life: when the last
 * slave fd closes, Linux makes the master return EIO/POLLHUP, so without it a host that disconnects
 * (or has not connected yet) would break the link; with it the pty simply looks idle. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "hal/posix/posix_internal.h"

static int g_master = -1;
static int g_slave_keep = -1;
static char g_slave_path[128];

const char *posix_host_pty_path(void) { return g_slave_path; }

/* Writes "<run_dir>/chip<ID>.pty" atomically (temp file + rename) so a host polling for it never
 * reads half a path. */
static int write_pty_file(const posix_chip_args *a) {
    char path[POSIX_PATH_MAX + 32], tmp[POSIX_PATH_MAX + 40];
    snprintf(path, sizeof(path), "%s/chip%u.pty", a->run_dir, (unsigned)a->chip_id);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) return posix_fail(HAL_ERR_IO, "cannot write '%s': %s", tmp, strerror(errno));
    int bad = fprintf(f, "%s\n", g_slave_path) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0)
        return posix_fail(HAL_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    return 0;
}

int posix_host_open(void) {
    const posix_chip_args *a = posix_args();
    struct termios tio;
    posix_host_close();

    g_master = posix_openpt(O_RDWR | O_NOCTTY);
    if (g_master < 0) return posix_fail(HAL_ERR_IO, "posix_openpt failed: %s", strerror(errno));
    if (grantpt(g_master) != 0 || unlockpt(g_master) != 0) {
        posix_host_close();
        return posix_fail(HAL_ERR_IO, "cannot unlock pty: %s", strerror(errno));
    }
    const char *name = ptsname(g_master);
    if (name == NULL || strlen(name) >= sizeof(g_slave_path)) {
        posix_host_close();
        return posix_fail(HAL_ERR_IO, "ptsname failed");
    }
    strcpy(g_slave_path, name);
    g_slave_keep = open(g_slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (g_slave_keep < 0) {
        posix_host_close();
        return posix_fail(HAL_ERR_IO, "cannot open pty slave '%s': %s", name, strerror(errno));
    }
    /* Raw: the protocol is binary (no echo, no line editing, no CR/LF translation, no signals). */
    if (tcgetattr(g_slave_keep, &tio) != 0) {
        posix_host_close();
        return posix_fail(HAL_ERR_IO, "tcgetattr on pty failed: %s", strerror(errno));
    }
    cfmakeraw(&tio);
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    if (tcsetattr(g_slave_keep, TCSANOW, &tio) != 0) {
        posix_host_close();
        return posix_fail(HAL_ERR_IO, "tcsetattr on pty failed: %s", strerror(errno));
    }
    /* Non-blocking master: waiting is done by poll() with the caller's timeout. */
    int fl = fcntl(g_master, F_GETFL);
    if (fl < 0 || fcntl(g_master, F_SETFL, fl | O_NONBLOCK) != 0 ||
        fcntl(g_master, F_SETFD, FD_CLOEXEC) != 0) {
        posix_host_close();
        return posix_fail(HAL_ERR_IO, "cannot set pty flags: %s", strerror(errno));
    }
    int rc = write_pty_file(a);
    if (rc < 0) {
        posix_host_close();
        return rc;
    }
    if (!a->quiet) {
        printf("PTY %s\n", g_slave_path);
        fflush(stdout);
    }
    return 0;
}

void posix_host_close(void) {
    if (g_master >= 0) close(g_master);
    if (g_slave_keep >= 0) close(g_slave_keep);
    g_master = -1;
    g_slave_keep = -1;
    g_slave_path[0] = '\0';
}

static int poll_ms(int fd, short events, uint32_t timeout_ms) {
    struct pollfd p;
    p.fd = fd;
    p.events = events;
    p.revents = 0;
    int t = timeout_ms == HAL_WAIT_FOREVER ? -1 : (timeout_ms > 0x7fffffffu ? 0x7fffffff : (int)timeout_ms);
    for (;;) {
        int r = poll(&p, 1, t);
        if (r >= 0) return r;
        if (errno != EINTR) return -1;
    }
}

int hal_host_read(uint8_t *buf, uint32_t cap, uint32_t timeout_ms) {
    if (g_master < 0) return HAL_ERR_NOT_CONFIGURED;
    if (cap == 0) return 0;
    for (;;) {
        ssize_t r = read(g_master, buf, cap > 0x10000u ? 0x10000u : cap);
        if (r > 0) return (int)r;
        if (r < 0 && errno == EINTR) continue;
        /* EIO cannot happen while g_slave_keep is open; treat it as "nothing yet" like EAGAIN. */
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EIO) return HAL_ERR_IO;
        if (timeout_ms == 0) return 0;
        int p = poll_ms(g_master, POLLIN, timeout_ms);
        if (p < 0) return HAL_ERR_IO;
        if (p == 0) return 0;
        timeout_ms = 0; /* readable now: one more read, never a second full wait */
    }
}

int hal_host_write(const uint8_t *buf, uint32_t n) {
    uint32_t done = 0;
    if (g_master < 0) return HAL_ERR_NOT_CONFIGURED;
    if (n > 0x7fffffffu) return HAL_ERR_ARG;
    while (done < n) {
        ssize_t w = write(g_master, buf + done, n - done);
        if (w > 0) {
            done += (uint32_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return HAL_ERR_IO;
        /* The pty buffer is full: the host is not reading (or not connected). */
        int p = poll_ms(g_master, POLLOUT, posix_args()->host_write_timeout_ms);
        if (p < 0) return HAL_ERR_IO;
        if (p == 0) return HAL_ERR_TIMEOUT;
    }
    return (int)n;
}

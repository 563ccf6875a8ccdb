/* test_hal.c: the posix HAL in one process: cost rule, command line, non-volatile storage, pty. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "hal/hal.h"
#include "hal/posix/posix_chip.h"
#include "tests/check.h"


static char g_dir[64];

static void make_dir(void) {
    strcpy(g_dir, "/tmp/orch-hal-XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        printf("hal: mkdtemp failed: %s\n", strerror(errno));
        exit(1);
    }
}

static void base_args(posix_chip_args *a) {
    posix_default_args(a);
    snprintf(a->run_dir, sizeof(a->run_dir), "%s", g_dir);
    a->no_pty = 1;
    a->quiet = 1;
    a->nv_size = 0;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* ---- cost rule --------------------------------------------------------------------------------- */

static void test_account(void) {
    posix_chip_args a;
    base_args(&a);
    a.profile.macs_per_kcycle = 2000;         /* 2 MAC/cycle */
    a.profile.onchip_bytes_per_kcycle = 4000; /* 4 B/cycle */
    a.profile.offchip_bytes_per_kcycle = 500; /* 0.5 B/cycle */
    a.profile.cycle_offset = 1000000007u;
    CHECK(posix_chip_init(&a) == 0, "init: %s", posix_chip_error());
    uint64_t c0 = hal_cycles();
    CHECK(c0 == 1000000007u, "boot counter is the cycle offset, got %llu", (unsigned long long)c0);
    hal_account(1001, 0, 0); /* 500.5 -> 501 */
    CHECK(hal_cycles() - c0 == 501, "1001 MACs at 2/cycle: %llu", (unsigned long long)(hal_cycles() - c0));
    c0 = hal_cycles();
    hal_account(0, 4001, 0); /* 1000.25 -> 1001 */
    CHECK(hal_cycles() - c0 == 1001, "4001 on-chip bytes at 4/cycle: %llu", (unsigned long long)(hal_cycles() - c0));
    c0 = hal_cycles();
    hal_account(0, 0, 3); /* 6 */
    CHECK(hal_cycles() - c0 == 6, "3 off-chip bytes at 0.5/cycle: %llu", (unsigned long long)(hal_cycles() - c0));
    c0 = hal_cycles();
    hal_account(1000, 4000, 100); /* max(500, 1000, 200) */
    CHECK(hal_cycles() - c0 == 1000, "roofline takes the max: %llu", (unsigned long long)(hal_cycles() - c0));
    c0 = hal_cycles();
    hal_account(0, 0, 0);
    CHECK(hal_cycles() == c0, "no work, no cycles");
    /* no 64-bit overflow in amount * 1000: 3e18+1 MACs at 3/cycle is 1e18+1 cycles */
    posix_chip_close();
    a.profile.macs_per_kcycle = 3000;
    a.profile.cycle_offset = 0;
    CHECK(posix_chip_init(&a) == 0, "init: %s", posix_chip_error());
    hal_account(3000000000000000001ull, 0, 0);
    CHECK(hal_cycles() == 1000000000000000001ull, "huge MAC count: %llu", (unsigned long long)hal_cycles());
    hal_profile p;
    CHECK(hal_profile_get(&p) == 0 && p.macs_per_kcycle == 3000 && p.offchip_bytes_per_kcycle == 500, "profile_get");
    hal_chip_info_t info;
    hal_chip_info(&info);
    CHECK(info.chip_id == a.chip_id && strcmp(info.profile_name, a.profile.name) == 0 &&
              info.onchip_bytes == a.profile.onchip_bytes && info.nv_bytes == 0,
          "chip info mirrors the arguments");
    posix_chip_close();
}

/* ---- command line ------------------------------------------------------------------------------ */

static int parse(posix_chip_args *a, const char *const *args, int n) {
    char *argv[32];
    argv[0] = (char *)"orch-chip";
    for (int i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    return posix_parse_args(n + 1, argv, a);
}

static void test_args(void) {
    posix_chip_args a;
    const char *good[] = {"--id", "3", "--run-dir=/tmp", "--nv-size", "4K", "--profile", "stm32h7",
                          "--macs-per-cycle", "0.25", "--onchip-bytes-per-cycle=1.5", "--offchip-bytes-per-cycle",
                          "0.001", "--link-bytes-per-cycle", "12", "--link-latency-cycles", "0",
                          "--onchip-bytes", "1M", "--offchip-bytes", "8388608", "--cycle-offset", "99",
                          "--link-timeout-ms", "50", "--no-pty", "--quiet", "--fault-exit-after-sends", "7"};
    int rc = parse(&a, good, (int)(sizeof(good) / sizeof(good[0])));
    CHECK(rc == 0, "good command line rejected: %s", a.error);
    CHECK(a.chip_id == 3 && strcmp(a.run_dir, "/tmp") == 0 && a.nv_size == 4096 && strcmp(a.profile.name, "stm32h7") == 0,
          "id/run-dir/nv-size/profile parsed");
    CHECK(a.profile.macs_per_kcycle == 250 && a.profile.onchip_bytes_per_kcycle == 1500 &&
              a.profile.offchip_bytes_per_kcycle == 1 && a.profile.link_bytes_per_kcycle == 12000,
          "rates in thousandths: %u %u %u %u", a.profile.macs_per_kcycle, a.profile.onchip_bytes_per_kcycle,
          a.profile.offchip_bytes_per_kcycle, a.profile.link_bytes_per_kcycle);
    CHECK(a.profile.link_latency_cycles == 0 && a.profile.onchip_bytes == 1048576u && a.profile.offchip_bytes == 8388608u &&
              a.profile.cycle_offset == 99 && a.link_timeout_ms == 50 && a.no_pty == 1 && a.quiet == 1 &&
              a.fault_exit_after_sends == 7,
          "remaining options parsed");

    const char *help[] = {"--help"};
    CHECK(parse(&a, help, 1) == 1, "--help returns 1");
    CHECK(strstr(posix_usage(), "--run-dir") != NULL, "usage names the options");

    struct {
        const char *args[3];
        int n;
        const char *in_error;
    } bad[] = {
        {{"--macs-per-cycle", "0"}, 2, "--macs-per-cycle"},
        {{"--macs-per-cycle", "1.2345"}, 2, "bad value"},
        {{"--macs-per-cycle", "-1"}, 2, "bad value"},
        {{"--macs-per-cycle", "1e3"}, 2, "bad value"},
        {{"--macs-per-cycle", "."}, 2, "bad value"},
        {{"--macs-per-cycle", "5000000"}, 2, "bad value"},
        {{"--link-bytes-per-cycle", "2."}, 2, "bad value"},
        {{"--id", "12x"}, 2, "--id"},
        {{"--id", "4294967296"}, 2, "--id"},
        {{"--id", " 1"}, 2, "--id"},
        {{"--nv-size", "5G"}, 2, "--nv-size"},
        {{"--nv-size", "4KB"}, 2, "--nv-size"},
        {{"--link-timeout-ms", "0"}, 2, "--link-timeout-ms"},
        {{"--id"}, 1, "needs a value"},
        {{"--frobnicate", "1"}, 2, "unknown option"},
        {{"--no-pty=1"}, 1, "takes no value"},
        {{"--profile", "a-name-that-is-far-too-long-for-the-field"}, 2, "--profile"},
        {{"--run-dir", ""}, 2, "--run-dir"},
    };
    for (unsigned k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        rc = parse(&a, bad[k].args, bad[k].n);
        CHECK(rc == -1 && strstr(a.error, bad[k].in_error) != NULL, "'%s %s' gave rc %d, error '%s'", bad[k].args[0],
              bad[k].n > 1 ? bad[k].args[1] : "", rc, a.error);
    }
    posix_default_args(&a);
    strcpy(a.run_dir, "/nonexistent/orch/dir");
    CHECK(posix_chip_init(&a) < 0 && strstr(posix_chip_error(), "not an existing directory") != NULL,
          "missing run dir: %s", posix_chip_error());
}

/* ---- non-volatile storage ---------------------------------------------------------------------- */

static void test_nv(void) {
    posix_chip_args a;
    char path[128];
    uint8_t pat[300], back[300];
    struct stat st;
    base_args(&a);
    snprintf(path, sizeof(path), "%s/flash.bin", g_dir);
    snprintf(a.nv_path, sizeof(a.nv_path), "%s", path);
    a.nv_size = 8192;
    CHECK(posix_chip_init(&a) == 0, "init with new nv: %s", posix_chip_error());
    CHECK(stat(path, &st) == 0 && st.st_size == 8192, "nv file created with the given size");
    CHECK(hal_nv_size() == 8192, "hal_nv_size");
    int zeros = 1;
    for (uint32_t off = 0; off < 8192; off += sizeof(back)) {
        uint32_t n = 8192 - off < sizeof(back) ? 8192 - off : (uint32_t)sizeof(back);
        CHECK(hal_nv_read(off, back, n) == 0, "read at %u", off);
        for (uint32_t i = 0; i < n; i++) zeros &= back[i] == 0;
    }
    CHECK(zeros, "a new nv file reads as zeros");
    for (unsigned i = 0; i < sizeof(pat); i++) pat[i] = (uint8_t)(i * 7u + 3u);
    CHECK(hal_nv_write(7900, pat, 292) == 0, "write up to the end");
    CHECK(hal_nv_write(7901, pat, 292) == HAL_ERR_ARG, "write past the end");
    CHECK(hal_nv_write(0xFFFFFFF0u, pat, 0x20) == HAL_ERR_ARG, "offset + length overflow");
    CHECK(hal_nv_read(8192, back, 1) == HAL_ERR_ARG, "read past the end");
    CHECK(hal_nv_read(8192, back, 0) == 0, "empty read at the end");
    CHECK(hal_nv_map(8000, 193) == NULL, "map past the end");
    const uint8_t *m = hal_nv_map(7900, 292);
    CHECK(m != NULL && memcmp(m, pat, 292) == 0, "map shows the write");
    CHECK(hal_nv_write(100, pat, 50) == 0 && m != NULL && memcmp(hal_nv_map(100, 50), pat, 50) == 0,
          "map reflects later writes");
    CHECK(hal_nv_sync() == 0, "sync");

    /* A second chip process may not open the same flash file. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(posix_chip_init(&a) == 0 ? 0 : 1);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "a second chip on the same nv file is refused");

    posix_chip_close();
    CHECK(posix_chip_init(&a) == 0, "reopen: %s", posix_chip_error());
    CHECK(hal_nv_read(7900, back, 292) == 0 && memcmp(back, pat, 292) == 0, "data persists across restarts");
    CHECK(hal_nv_read(100, back, 50) == 0 && memcmp(back, pat, 50) == 0, "second write persists");
    CHECK(hal_nv_read(0, back, 100) == 0 && back[0] == 0 && back[99] == 0, "untouched bytes stay zero");
    posix_chip_close();

    /* A file bigger than --nv-size is refused rather than silently truncated or misread. */
    a.nv_size = 4096;
    CHECK(posix_chip_init(&a) < 0 && strstr(posix_chip_error(), "--nv-size") != NULL, "larger file refused: %s",
          posix_chip_error());
    CHECK(stat(path, &st) == 0 && st.st_size == 8192, "refused file left alone");
    /* Growing keeps the data and zero-fills the new part. */
    a.nv_size = 16384;
    CHECK(posix_chip_init(&a) == 0, "grow: %s", posix_chip_error());
    CHECK(hal_nv_read(7900, back, 292) == 0 && memcmp(back, pat, 292) == 0, "data kept when growing");
    CHECK(hal_nv_read(16000, back, 100) == 0 && back[0] == 0 && back[99] == 0, "grown part is zero");
    posix_chip_close();
    CHECK(hal_nv_size() == 0 && hal_nv_map(0, 1) == NULL, "no nv after close");
    unlink(path);

    /* Default path is <run_dir>/chip<ID>.nv */
    base_args(&a);
    a.chip_id = 5;
    a.nv_size = 1024;
    CHECK(posix_chip_init(&a) == 0, "default nv path: %s", posix_chip_error());
    snprintf(path, sizeof(path), "%s/chip5.nv", g_dir);
    CHECK(stat(path, &st) == 0 && st.st_size == 1024, "default nv file %s", path);
    posix_chip_close();
    unlink(path);
}

/* ---- host link (pty) --------------------------------------------------------------------------- */

static int read_exact_fd(int fd, uint8_t *buf, size_t n, int timeout_ms) {
    size_t got = 0;
    while (got < n) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0) return -1;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static int host_read_exact(uint8_t *buf, uint32_t n) {
    uint32_t got = 0;
    while (got < n) {
        int r = hal_host_read(buf + got, n - got, 2000);
        if (r <= 0) return -1;
        got += (uint32_t)r;
    }
    return 0;
}

static int open_host(const char *path) {
    int fd = open(path, O_RDWR | O_NOCTTY);
    if (fd >= 0) {
        /* what pyserial does: raw mode on its side too */
        struct termios t;
        tcgetattr(fd, &t);
        cfmakeraw(&t);
        tcsetattr(fd, TCSANOW, &t);
    }
    return fd;
}

static void test_pty(void) {
    posix_chip_args a;
    char file[128], line[160];
    base_args(&a);
    a.no_pty = 0;
    a.chip_id = 2;
    CHECK(posix_chip_init(&a) == 0, "init with pty: %s", posix_chip_error());
    const char *path = posix_host_pty_path();
    CHECK(strncmp(path, "/dev/pts/", 9) == 0, "pty path '%s'", path);
    snprintf(file, sizeof(file), "%s/chip2.pty", g_dir);
    FILE *f = fopen(file, "r");
    CHECK(f != NULL && fgets(line, sizeof(line), f) != NULL, "pty file %s written", file);
    if (f) fclose(f);
    line[strcspn(line, "\n")] = '\0';
    CHECK(strcmp(line, path) == 0, "pty file holds '%s', chip says '%s'", line, path);

    /* the bytes a binary protocol needs, including the ones a cooked tty would eat or translate */
    const uint8_t to_chip[] = {0x00, 'h', 'i', '\r', '\n', 0x03, 0x04, 0x11, 0x13, 0x7f, 0xff, 0x00};
    const uint8_t to_host[] = {0x00, '\n', '\r', 0x1a, 0xfe, 'o', 'k'};
    uint8_t buf[64];
    int fd = open_host(path);
    CHECK(fd >= 0, "host opens the pty: %s", strerror(errno));
    CHECK(write(fd, to_chip, sizeof(to_chip)) == (ssize_t)sizeof(to_chip), "host write");
    CHECK(host_read_exact(buf, sizeof(to_chip)) == 0 && memcmp(buf, to_chip, sizeof(to_chip)) == 0,
          "chip reads exactly what the host wrote");
    CHECK(hal_host_write(to_host, sizeof(to_host)) == (int)sizeof(to_host), "chip write");
    CHECK(read_exact_fd(fd, buf, sizeof(to_host), 2000) == 0 && memcmp(buf, to_host, sizeof(to_host)) == 0,
          "host reads exactly what the chip wrote");

    /* Timeout: 0 after about the timeout, without burning CPU. */
    uint64_t t0 = now_ms(), c0 = cpu_us();
    int r = hal_host_read(buf, sizeof(buf), 300);
    uint64_t dt = now_ms() - t0, dc = cpu_us() - c0;
    CHECK(r == 0, "timeout returns 0, got %d", r);
    CHECK(dt >= 290 && dt < 2000, "timeout took %llu ms for 300", (unsigned long long)dt);
    CHECK(dc < 100000, "waiting used %llu us of CPU (spinning?)", (unsigned long long)dc);
    CHECK(hal_host_read(buf, sizeof(buf), 0) == 0, "zero timeout polls once");

    /* Host disconnects and reconnects: the chip's side stays usable. */
    close(fd);
    CHECK(hal_host_read(buf, sizeof(buf), 50) == 0, "no error while the host is away");
    fd = open_host(path);
    CHECK(fd >= 0, "host reopens");
    CHECK(write(fd, "again", 5) == 5, "host writes after reconnect");
    CHECK(host_read_exact(buf, 5) == 0 && memcmp(buf, "again", 5) == 0, "chip reads after reconnect");
    CHECK(hal_host_write((const uint8_t *)"back", 4) == 4, "chip writes after reconnect");
    CHECK(read_exact_fd(fd, buf, 4, 2000) == 0 && memcmp(buf, "back", 4) == 0, "host reads after reconnect");
    close(fd);
    posix_chip_close();
    unlink(file);
}

/* The chip announces its pty on stdout as one "PTY <path>" line. */
static void test_pty_announce(void) {
    int p[2];
    char line[160] = {0};
    CHECK(pipe(p) == 0, "pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        posix_chip_args a;
        base_args(&a);
        a.no_pty = 0;
        a.quiet = 0;
        a.chip_id = 9;
        dup2(p[1], 1);
        close(p[0]);
        int rc = posix_chip_init(&a);
        posix_chip_close();
        _exit(rc == 0 ? 0 : 1);
    }
    close(p[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < sizeof(line) && (r = read(p[0], line + got, sizeof(line) - 1 - got)) > 0) got += (size_t)r;
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "announcing chip exited cleanly");
    CHECK(strncmp(line, "PTY /dev/pts/", 13) == 0 && strchr(line, '\n') == line + strlen(line) - 1,
          "stdout is one 'PTY <path>' line: '%s'", line);
    char file[128];
    snprintf(file, sizeof(file), "%s/chip9.pty", g_dir);
    unlink(file);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    make_dir();
    test_account();
    test_args();
    test_nv();
    test_pty();
    test_pty_announce();
    rmdir(g_dir);
    printf("hal: %u passed, %u failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}

/* posix_nv.c: the mock chip's flash, a file of fixed size mapped into memory.
 *
 * The file is created zero-filled when missing and kept across restarts, like flash across power
 * cycles. Reads, writes and hal_nv_map all go through one shared mapping, so a mapped view always
 * shows the latest writes and weights are used in place. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hal/posix/posix_internal.h"

static int g_fd = -1;
static uint8_t *g_map;
static uint32_t g_size;

int posix_nv_open(void) {
    const posix_chip_args *a = posix_args();
    char path[POSIX_PATH_MAX + 32];
    struct stat st;
    struct flock lk;

    posix_nv_close();
    if (a->nv_size == 0) return 0;
    if (a->nv_path[0] != '\0') {
        snprintf(path, sizeof(path), "%s", a->nv_path);
    } else {
        snprintf(path, sizeof(path), "%s/chip%u.nv", a->run_dir, (unsigned)a->chip_id);
    }
    g_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (g_fd < 0) return posix_fail(HAL_ERR_IO, "cannot open nv file '%s': %s", path, strerror(errno));

    /* Two chips sharing one flash file would corrupt each other's shards. */
    memset(&lk, 0, sizeof(lk));
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    if (fcntl(g_fd, F_SETLK, &lk) != 0) {
        posix_nv_close();
        return posix_fail(HAL_ERR_IO, "nv file '%s' is in use by another chip process", path);
    }
    if (fstat(g_fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        posix_nv_close();
        return posix_fail(HAL_ERR_IO, "nv file '%s' is not a regular file", path);
    }
    if ((uint64_t)st.st_size > a->nv_size) {
        posix_nv_close();
        return posix_fail(HAL_ERR_ARG,
                          "nv file '%s' holds %lld bytes, more than --nv-size %u; pass the size it "
                          "was created with or delete it",
                          path, (long long)st.st_size, (unsigned)a->nv_size);
    }
    if ((uint64_t)st.st_size < a->nv_size && ftruncate(g_fd, (off_t)a->nv_size) != 0) {
        posix_nv_close();
        return posix_fail(HAL_ERR_IO, "cannot size nv file '%s' to %u bytes: %s", path,
                          (unsigned)a->nv_size, strerror(errno));
    }
    void *m = mmap(NULL, a->nv_size, PROT_READ | PROT_WRITE, MAP_SHARED, g_fd, 0);
    if (m == MAP_FAILED) {
        posix_nv_close();
        return posix_fail(HAL_ERR_IO, "cannot map nv file '%s': %s", path, strerror(errno));
    }
    g_map = m;
    g_size = a->nv_size;
    return 0;
}

void posix_nv_close(void) {
    if (g_map != NULL) {
        msync(g_map, g_size, MS_SYNC);
        munmap(g_map, g_size);
    }
    if (g_fd >= 0) close(g_fd); /* also drops the lock */
    g_map = NULL;
    g_size = 0;
    g_fd = -1;
}

static int in_range(uint32_t off, uint32_t n) { return off <= g_size && n <= g_size - off; }

uint32_t hal_nv_size(void) { return g_size; }

int hal_nv_read(uint32_t off, void *buf, uint32_t n) {
    if (!in_range(off, n)) return HAL_ERR_ARG;
    if (n) memcpy(buf, g_map + off, n);
    return 0;
}

int hal_nv_write(uint32_t off, const void *buf, uint32_t n) {
    if (!in_range(off, n)) return HAL_ERR_ARG;
    /* pwrite, not a copy into the mapping: the shared mapping sees the same page cache, and a
     * store into a page this process has not touched yet costs a page fault per 4 KiB, which
     * limited flashing a fresh mock chip. */
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = pwrite(g_fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return HAL_ERR_IO;
        p += w;
        off += (uint32_t)w;
        n -= (uint32_t)w;
    }
    return 0;
}

int hal_nv_sync(void) {
    if (g_map != NULL && msync(g_map, g_size, MS_SYNC) != 0) return HAL_ERR_IO;
    return 0;
}

const uint8_t *hal_nv_map(uint32_t off, uint32_t n) {
    if (g_map == NULL || !in_range(off, n)) return NULL;
    return g_map + off;
}

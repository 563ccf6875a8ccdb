/* posix_chip.c: start-up and shut-down of one mock chip process, and its description. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "hal/posix/posix_internal.h"

static posix_chip_args g_args;
static int g_args_set;
static int g_up;
static char g_error[POSIX_ERROR_MAX];

const posix_chip_args *posix_args(void) {
    if (!g_args_set) {
        posix_default_args(&g_args);
        g_args_set = 1;
    }
    return &g_args;
}

int posix_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error, sizeof(g_error), fmt, ap);
    va_end(ap);
    return code;
}

const char *posix_chip_error(void) { return g_error; }

int posix_chip_init(const posix_chip_args *a) {
    struct stat st;
    int rc;
    if (g_up) posix_chip_close();
    g_error[0] = '\0';
    if (a == NULL) return posix_fail(HAL_ERR_ARG, "no chip arguments");
    if (memchr(a->run_dir, '\0', sizeof(a->run_dir)) == NULL || a->run_dir[0] == '\0' ||
        memchr(a->nv_path, '\0', sizeof(a->nv_path)) == NULL ||
        memchr(a->profile.name, '\0', sizeof(a->profile.name)) == NULL)
        return posix_fail(HAL_ERR_ARG, "run dir, nv path or profile name is not a terminated string");
    if (stat(a->run_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return posix_fail(HAL_ERR_ARG, "run dir '%s' is not an existing directory; create it first",
                          a->run_dir);
    g_args = *a;
    g_args_set = 1;

    /* A peer that dies must surface as HAL_ERR_LINK_LOST from a write, not kill this chip. */
    signal(SIGPIPE, SIG_IGN);

    posix_clock_reset(&g_args.profile);
    posix_links_reset();
    rc = posix_nv_open();
    if (rc < 0) return rc;
    if (!g_args.no_pty) {
        rc = posix_host_open();
        if (rc < 0) {
            posix_nv_close();
            return rc;
        }
    }
    g_up = 1;
    return 0;
}

void posix_chip_close(void) {
    posix_links_reset();
    posix_host_close();
    posix_nv_close();
    g_up = 0;
}

void hal_chip_info(hal_chip_info_t *out) {
    const posix_chip_args *a = posix_args();
    memset(out, 0, sizeof(*out));
    out->chip_id = a->chip_id;
    memcpy(out->profile_name, a->profile.name, sizeof(out->profile_name));
    out->profile_name[sizeof(out->profile_name) - 1u] = '\0';
    out->onchip_bytes = a->profile.onchip_bytes;
    out->offchip_bytes = a->profile.offchip_bytes;
    out->nv_bytes = hal_nv_size();
}

int hal_profile_get(hal_profile *out) {
    *out = posix_args()->profile;
    return HAL_OK;
}

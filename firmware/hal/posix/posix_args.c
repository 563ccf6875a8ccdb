/* posix_args.c: the mock chip's command line. Every value is checked here, once, so the rest of the
 * port can trust its arguments. Options and defaults are documented in docs/mock-chip.md. */
#include <stdio.h>
#include <string.h>

#include "hal/posix/posix_chip.h"

static const char k_usage[] =
    "usage: orch-chip [options]\n"
    "  --id N                      chip id (default 0)\n"
    "  --run-dir DIR               existing directory for link<rank>.sock and chip<ID>.pty (default .)\n"
    "  --nv PATH                   non-volatile storage file (default DIR/chip<ID>.nv)\n"
    "  --nv-size BYTES             nv size, suffix K/M/G allowed, 0 = none (default 64M)\n"
    "  --profile NAME              profile name reported by IDENTIFY (default 'default')\n"
    "  --macs-per-cycle R          int8 MACs per cycle (default 1; up to 3 decimals)\n"
    "  --onchip-bytes-per-cycle R  on-chip SRAM bandwidth (default 4)\n"
    "  --offchip-bytes-per-cycle R off-chip memory / flash bandwidth (default 1)\n"
    "  --link-bytes-per-cycle R    chip-to-chip link bandwidth (default 1)\n"
    "  --link-latency-cycles N     cycles charged per link message (default 1000)\n"
    "  --onchip-bytes BYTES        on-chip memory size (default 256K)\n"
    "  --offchip-bytes BYTES       off-chip memory size (default 8M)\n"
    "  --cycle-offset N            cycle counter value at boot (default 0)\n"
    "  --link-timeout-ms N         link send / configure timeout (default 10000)\n"
    "  --host-write-timeout-ms N   give up writing to a host that does not read (default 2000)\n"
    "  --no-pty                    no host link\n"
    "  --quiet                     do not print the PTY line\n"
    "  --fault-exit-after-sends N  test hook: exit with status 86 on the N-th link send\n"
    "  --help                      this text\n";

const char *posix_usage(void) { return k_usage; }

void posix_default_args(posix_chip_args *out) {
    memset(out, 0, sizeof(*out));
    strcpy(out->run_dir, ".");
    out->nv_size = 64u << 20;
    strcpy(out->profile.name, "default");
    out->profile.macs_per_kcycle = 1000u;
    out->profile.onchip_bytes_per_kcycle = 4000u;
    out->profile.offchip_bytes_per_kcycle = 1000u;
    out->profile.link_bytes_per_kcycle = 1000u;
    out->profile.link_latency_cycles = 1000u;
    out->profile.onchip_bytes = 256u << 10;
    out->profile.offchip_bytes = 8u << 20;
    out->profile.cycle_offset = 0;
    out->link_timeout_ms = 10000u;
    out->host_write_timeout_ms = 2000u;
}

/* Plain decimal digits only (no sign, no spaces, no hex) with an optional binary K/M/G suffix when
 * allow_suffix; rejects overflow of max. */
static int parse_u64(const char *s, int allow_suffix, uint64_t max, uint64_t *out) {
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9') return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10u) return -1;
        v = v * 10u + d;
    }
    if (*p != '\0') {
        unsigned shift;
        if (!allow_suffix || p[1] != '\0') return -1;
        if (*p == 'K' || *p == 'k') shift = 10;
        else if (*p == 'M' || *p == 'm') shift = 20;
        else if (*p == 'G' || *p == 'g') shift = 30;
        else return -1;
        if (v > (UINT64_MAX >> shift)) return -1;
        v <<= shift;
    }
    if (v > max) return -1;
    *out = v;
    return 0;
}

/* "2", "0.25", "1.5" -> thousandths (2000, 250, 1500). More than 3 decimals is refused rather than
 * rounded so the host's model and the chip always hold the same rate. Must be > 0. */
static int parse_rate_milli(const char *s, uint32_t *out) {
    uint64_t whole = 0, frac = 0;
    const char *p = s;
    int n_int = 0, n_frac = 0;
    for (; *p >= '0' && *p <= '9'; p++, n_int++) {
        whole = whole * 10u + (uint64_t)(*p - '0');
        if (whole > 4294967u) return -1;
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, n_frac++) {
            if (n_frac == 3) return -1;
            frac = frac * 10u + (uint64_t)(*p - '0');
        }
        if (n_frac == 0) return -1;
    }
    if (*p != '\0' || n_int == 0) return -1;
    for (int k = n_frac; k < 3; k++) frac *= 10u;
    uint64_t milli = whole * 1000u + frac;
    if (milli == 0 || milli > UINT32_MAX) return -1;
    *out = (uint32_t)milli;
    return 0;
}

static int set_path(char *dst, const char *src, const char *opt, posix_chip_args *out) {
    size_t n = strlen(src);
    if (n == 0 || n >= POSIX_PATH_MAX) {
        snprintf(out->error, sizeof(out->error), "%s: path must be 1..%u characters", opt,
                 POSIX_PATH_MAX - 1u);
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

int posix_parse_args(int argc, char **argv, posix_chip_args *out) {
    posix_default_args(out);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        char name[48];
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (name_len >= sizeof(name)) name_len = sizeof(name) - 1u;
        memcpy(name, arg, name_len);
        name[name_len] = '\0';

        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) return 1;
        if (strcmp(name, "--no-pty") == 0 || strcmp(name, "--quiet") == 0) {
            if (eq) {
                snprintf(out->error, sizeof(out->error), "%s takes no value", name);
                return -1;
            }
            if (name[2] == 'n') out->no_pty = 1;
            else out->quiet = 1;
            continue;
        }
        if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            snprintf(out->error, sizeof(out->error), "%s needs a value (see --help)", name);
            return -1;
        }

        uint64_t u = 0;
        uint32_t milli = 0;
        int bad = 0;
        if (strcmp(name, "--id") == 0) {
            bad = parse_u64(val, 0, UINT32_MAX, &u);
            out->chip_id = (uint32_t)u;
        } else if (strcmp(name, "--run-dir") == 0) {
            if (set_path(out->run_dir, val, name, out)) return -1;
        } else if (strcmp(name, "--nv") == 0) {
            if (set_path(out->nv_path, val, name, out)) return -1;
        } else if (strcmp(name, "--nv-size") == 0) {
            bad = parse_u64(val, 1, UINT32_MAX, &u);
            out->nv_size = (uint32_t)u;
        } else if (strcmp(name, "--profile") == 0) {
            size_t n = strlen(val);
            if (n == 0 || n >= HAL_PROFILE_NAME_MAX) {
                snprintf(out->error, sizeof(out->error), "--profile: name must be 1..%u characters",
                         HAL_PROFILE_NAME_MAX - 1u);
                return -1;
            }
            memcpy(out->profile.name, val, n + 1);
        } else if (strcmp(name, "--macs-per-cycle") == 0) {
            bad = parse_rate_milli(val, &milli);
            out->profile.macs_per_kcycle = milli;
        } else if (strcmp(name, "--onchip-bytes-per-cycle") == 0) {
            bad = parse_rate_milli(val, &milli);
            out->profile.onchip_bytes_per_kcycle = milli;
        } else if (strcmp(name, "--offchip-bytes-per-cycle") == 0) {
            bad = parse_rate_milli(val, &milli);
            out->profile.offchip_bytes_per_kcycle = milli;
        } else if (strcmp(name, "--link-bytes-per-cycle") == 0) {
            bad = parse_rate_milli(val, &milli);
            out->profile.link_bytes_per_kcycle = milli;
        } else if (strcmp(name, "--link-latency-cycles") == 0) {
            bad = parse_u64(val, 0, UINT32_MAX, &u);
            out->profile.link_latency_cycles = (uint32_t)u;
        } else if (strcmp(name, "--onchip-bytes") == 0) {
            bad = parse_u64(val, 1, UINT64_MAX, &u);
            out->profile.onchip_bytes = u;
        } else if (strcmp(name, "--offchip-bytes") == 0) {
            bad = parse_u64(val, 1, UINT64_MAX, &u);
            out->profile.offchip_bytes = u;
        } else if (strcmp(name, "--cycle-offset") == 0) {
            /* Keep 2^62 of headroom so offset + virtual time cannot wrap in any run. */
            bad = parse_u64(val, 0, UINT64_MAX >> 2, &u);
            out->profile.cycle_offset = u;
        } else if (strcmp(name, "--link-timeout-ms") == 0) {
            bad = parse_u64(val, 0, UINT32_MAX, &u) || u == 0;
            out->link_timeout_ms = (uint32_t)u;
        } else if (strcmp(name, "--host-write-timeout-ms") == 0) {
            bad = parse_u64(val, 0, UINT32_MAX, &u) || u == 0;
            out->host_write_timeout_ms = (uint32_t)u;
        } else if (strcmp(name, "--fault-exit-after-sends") == 0) {
            bad = parse_u64(val, 0, UINT32_MAX, &u);
            out->fault_exit_after_sends = (uint32_t)u;
        } else {
            snprintf(out->error, sizeof(out->error), "unknown option '%.60s' (see --help)", arg);
            return -1;
        }
        if (bad) {
            snprintf(out->error, sizeof(out->error), "%s: bad value '%.60s' (see --help)", name, val);
            return -1;
        }
    }
    return 0;
}

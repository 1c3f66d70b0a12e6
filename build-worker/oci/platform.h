/* platform.h - target platforms ("linux/arm64", "linux/arm/v7") as
 * containerd spells them after normalization, and whether this machine can
 * run a platform's binaries: natively, or under an emulator registered with
 * binfmt_misc (Debian's qemu-user-static).
 *
 *   linux/x86_64, amd64     -> linux/amd64
 *   linux/aarch64/v8, arm64 -> linux/arm64
 *   linux/arm, armhf        -> linux/arm/v7       (armel -> linux/arm/v6)
 *
 * A RUN step for another platform runs its own binaries: the kernel hands
 * them to the binfmt_misc handler whose magic matches their ELF header. The
 * handler must be registered with the F flag (the interpreter opened at
 * registration), since the build's container has no qemu in its root.
 */
#ifndef LC_OCI_PLATFORM_H
#define LC_OCI_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"

typedef struct lc_platform {
    char os[16];      /* "linux" */
    char arch[16];    /* GOARCH: "amd64", "arm64", "arm", "386", "ppc64le", ... */
    char variant[16]; /* "v7", "v6", ... or "" */
} lc_platform;

/* Parses and normalizes s ("os/arch[/variant]", or "arch" alone for
 * linux). INVALID_ARGUMENT for an unknown architecture or a non-linux os. */
int lc_platform_parse(const char *s, lc_platform *out, lc_err *err);
/* "os/arch" or "os/arch/variant" into buf. */
void lc_platform_format(const lc_platform *p, char *buf, size_t cap);
/* The machine's own platform. */
void lc_platform_host(lc_platform *out);
bool lc_platform_equal(const lc_platform *a, const lc_platform *b);

/* 0 when this machine can run p's binaries (natively, or through a
 * binfmt_misc handler registered with the F flag); otherwise
 * FAILED_PRECONDITION saying what to install and register. binfmt_dir is
 * where binfmt_misc is mounted (NULL: /proc/sys/fs/binfmt_misc). */
int lc_platform_check_runnable(const lc_platform *p, const char *binfmt_dir, lc_err *err);

#endif

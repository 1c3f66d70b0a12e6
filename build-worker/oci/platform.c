/* platform.c - see platform.h. */
#include "build-worker/oci/platform.h"

#include <ctype.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

/* What the kernel sees of a platform's executables: the ELF header. */
typedef struct arch_info {
    const char *arch;    /* GOARCH */
    const char *qemu;    /* qemu-user-static's name: /usr/lib/binfmt.d/qemu-<qemu>.conf */
    unsigned char class; /* 1: 32-bit, 2: 64-bit */
    unsigned char data;  /* 1: little endian, 2: big endian */
    uint16_t machine;    /* e_machine */
} arch_info;

static const arch_info arches[] = {
    {"amd64", "x86_64", 2, 1, 62},
    {"arm64", "aarch64", 2, 1, 183},
    {"arm", "arm", 1, 1, 40},
    {"386", "i386", 1, 1, 3},
    {"ppc64le", "ppc64le", 2, 1, 21},
    {"s390x", "s390x", 2, 2, 22},
    {"riscv64", "riscv64", 2, 1, 243},
    {"mips64le", "mips64el", 2, 1, 8},
    {"loong64", "loongarch64", 2, 1, 258},
};

static const arch_info *arch_find(const char *arch)
{
    for (size_t i = 0; i < sizeof(arches) / sizeof(arches[0]); i++)
        if (strcmp(arches[i].arch, arch) == 0)
            return &arches[i];
    return NULL;
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

int lc_platform_parse(const char *s, lc_platform *out, lc_err *err)
{
    memset(out, 0, sizeof(*out));
    char parts[3][32] = {"", "", ""};
    int n = 0;
    const char *p = s;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 3 || len == 0 || len >= sizeof(parts[0]))
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "platform '%s': expected OS/ARCH[/VARIANT], e.g. linux/arm64", s);
        memcpy(parts[n], p, len);
        lower(parts[n++]);
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    const char *os = "linux", *arch = parts[0], *variant = "";
    char vbuf[8];
    if (n >= 2) {
        os = parts[0];
        arch = parts[1];
        variant = n == 3 ? parts[2] : "";
    }
    if (strcmp(os, "linux") != 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "platform '%s': only linux images can be built (RUN runs Linux "
                          "binaries with runc)",
                          s);
    /* containerd's normalization. */
    if (strcmp(arch, "x86_64") == 0 || strcmp(arch, "x86-64") == 0)
        arch = "amd64";
    else if (strcmp(arch, "aarch64") == 0)
        arch = "arm64";
    else if (strcmp(arch, "i386") == 0 || strcmp(arch, "i686") == 0)
        arch = "386";
    else if (strcmp(arch, "armhf") == 0) {
        arch = "arm";
        variant = "v7";
    } else if (strcmp(arch, "armel") == 0) {
        arch = "arm";
        variant = "v6";
    }
    if (strcmp(arch, "arm64") == 0 && (strcmp(variant, "v8") == 0 || strcmp(variant, "8") == 0))
        variant = "";
    if (strcmp(arch, "amd64") == 0 && strcmp(variant, "v1") == 0)
        variant = "";
    if (strcmp(arch, "arm") == 0) {
        if (variant[0] == '\0')
            variant = "v7";
        else if (strcmp(variant, "5") == 0 || strcmp(variant, "6") == 0 ||
                 strcmp(variant, "7") == 0 || strcmp(variant, "8") == 0) {
            snprintf(vbuf, sizeof(vbuf), "v%s", variant);
            variant = vbuf;
        }
    }
    if (arch_find(arch) == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "platform '%s': unknown architecture '%s' (amd64, arm64, arm, 386, "
                          "ppc64le, s390x, riscv64, mips64le, loong64)",
                          s, arch);
    snprintf(out->os, sizeof(out->os), "%s", os);
    snprintf(out->arch, sizeof(out->arch), "%s", arch);
    snprintf(out->variant, sizeof(out->variant), "%s", variant);
    return 0;
}

void lc_platform_format(const lc_platform *p, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "", p->variant);
}

void lc_platform_host(lc_platform *out)
{
    struct utsname u;
    const char *m = uname(&u) == 0 ? u.machine : "x86_64";
    if (strcmp(m, "armv6l") == 0)
        m = "linux/arm/v6";
    else if (strncmp(m, "armv7", 5) == 0 || strncmp(m, "armv8l", 6) == 0)
        m = "linux/arm/v7";
    if (lc_platform_parse(m, out, NULL) < 0)
        lc_platform_parse("linux/amd64", out, NULL);
}

bool lc_platform_equal(const lc_platform *a, const lc_platform *b)
{
    return strcmp(a->os, b->os) == 0 && strcmp(a->arch, b->arch) == 0 &&
           strcmp(a->variant, b->variant) == 0;
}

/* ---- binfmt_misc ------------------------------------------------------------ */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* "7f454c46..." into bytes; the count, or -1. */
static int unhex(const char *s, unsigned char *out, size_t cap)
{
    size_t n = 0;
    while (s[0] && s[0] != '\n' && s[1] && s[1] != '\n') {
        int hi = hexval((unsigned char)s[0]), lo = hexval((unsigned char)s[1]);
        if (hi < 0 || lo < 0 || n == cap)
            return -1;
        out[n++] = (unsigned char)(hi << 4 | lo);
        s += 2;
    }
    return (int)n;
}

/* The first 20 bytes of an executable of this architecture (ET_EXEC). */
static void elf_header(const arch_info *a, unsigned char h[20])
{
    memset(h, 0, 20);
    h[0] = 0x7f;
    h[1] = 'E';
    h[2] = 'L';
    h[3] = 'F';
    h[4] = a->class;
    h[5] = a->data;
    h[6] = 1; /* EV_CURRENT */
    if (a->data == 1) {
        h[16] = 2; /* ET_EXEC */
        h[18] = (unsigned char)(a->machine & 0xff);
        h[19] = (unsigned char)(a->machine >> 8);
    } else {
        h[17] = 2;
        h[18] = (unsigned char)(a->machine >> 8);
        h[19] = (unsigned char)(a->machine & 0xff);
    }
}

typedef struct handler {
    bool enabled, fix_binary;
    long offset;
    unsigned char magic[128], mask[128];
    int nmagic, nmask;
    char interpreter[256];
} handler;

static bool read_handler(const char *path, handler *h)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    memset(h, 0, sizeof(*h));
    h->nmagic = h->nmask = -1;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "enabled", 7) == 0)
            h->enabled = true;
        else if (strncmp(line, "flags: ", 7) == 0)
            h->fix_binary = strchr(line + 7, 'F') != NULL;
        else if (strncmp(line, "offset ", 7) == 0)
            h->offset = strtol(line + 7, NULL, 10);
        else if (strncmp(line, "magic ", 6) == 0)
            h->nmagic = unhex(line + 6, h->magic, sizeof(h->magic));
        else if (strncmp(line, "mask ", 5) == 0)
            h->nmask = unhex(line + 5, h->mask, sizeof(h->mask));
        else if (strncmp(line, "interpreter ", 12) == 0)
            snprintf(h->interpreter, sizeof(h->interpreter), "%.*s", (int)strcspn(line + 12, "\n"),
                     line + 12);
    }
    fclose(f);
    return h->nmagic > 0; /* extension handlers ("E") have no magic */
}

static bool handler_matches(const handler *h, const unsigned char hdr[20])
{
    if (h->offset != 0 || h->nmagic > 20)
        return false;
    for (int i = 0; i < h->nmagic; i++) {
        unsigned char m = i < h->nmask ? h->mask[i] : 0xff;
        if ((hdr[i] & m) != (h->magic[i] & m))
            return false;
    }
    return true;
}

int lc_platform_check_runnable(const lc_platform *p, const char *binfmt_dir, lc_err *err)
{
    lc_platform host;
    lc_platform_host(&host);
    if (strcmp(p->arch, host.arch) == 0 ||
        (strcmp(host.arch, "amd64") == 0 && strcmp(p->arch, "386") == 0))
        return 0;
    const arch_info *a = arch_find(p->arch);
    char name[64];
    lc_platform_format(p, name, sizeof(name));
    if (a == NULL)
        return lc_err_set(err, LC_FAILED_PRECONDITION, "no emulator is known for %s", name);
    const char *dir = binfmt_dir ? binfmt_dir : "/proc/sys/fs/binfmt_misc";
    char path[512], how[600];
    snprintf(how, sizeof(how),
             "install Debian's qemu-user-static (apt-get install qemu-user-static) and register "
             "its handler: cat /usr/lib/binfmt.d/qemu-%s.conf > %s/register",
             a->qemu, dir);
    snprintf(path, sizeof(path), "%s/status", dir);
    FILE *st = fopen(path, "r");
    if (st == NULL)
        return lc_err_set(err, LC_FAILED_PRECONDITION,
                          "RUN steps for %s need an emulator, and binfmt_misc is not mounted at "
                          "%s: mount -t binfmt_misc binfmt_misc %s, then %s",
                          name, dir, dir, how);
    char status[32] = "";
    if (fgets(status, sizeof(status), st) == NULL)
        status[0] = '\0';
    fclose(st);
    if (strncmp(status, "enabled", 7) != 0)
        return lc_err_set(err, LC_FAILED_PRECONDITION,
                          "RUN steps for %s need an emulator, and binfmt_misc is disabled "
                          "(echo 1 > %s/status)",
                          name, dir);
    unsigned char hdr[20];
    elf_header(a, hdr);
    DIR *d = opendir(dir);
    if (d == NULL)
        return lc_err_set(err, LC_FAILED_PRECONDITION, "cannot read %s", dir);
    struct dirent *e;
    char without_f[256] = "";
    bool found = false;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "status") == 0 ||
            strcmp(e->d_name, "register") == 0)
            continue;
        handler h;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (!read_handler(path, &h) || !h.enabled || !handler_matches(&h, hdr))
            continue;
        if (h.fix_binary)
            found = true;
        else
            snprintf(without_f, sizeof(without_f), "%s", e->d_name);
    }
    closedir(d);
    if (found)
        return 0;
    if (without_f[0])
        return lc_err_set(err, LC_FAILED_PRECONDITION,
                          "RUN steps for %s: the binfmt_misc handler %s is registered without "
                          "the F flag, so its interpreter cannot be found inside the build's "
                          "container: echo -1 > %s/%s, then %s",
                          name, without_f, dir, without_f, how);
    return lc_err_set(err, LC_FAILED_PRECONDITION,
                      "RUN steps for %s need an emulator, and none is registered with "
                      "binfmt_misc: %s",
                      name, how);
}

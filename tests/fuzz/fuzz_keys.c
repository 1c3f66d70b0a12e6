/* fuzz_keys.c - key computation over arbitrary Dockerfiles against a small
 * fixed context: no crash, every failure has a message, and keys are
 * deterministic (computed twice, equal) unless a remote source is named. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-worker/dockerfile/dockerfile.h"
#include "build-worker/keys/keys.h"
#include "build-worker/layer/fsutil.h"

static char ctxdir[64];

static void cleanup(void)
{
    if (lc_fs_rm_rf(ctxdir) != 0)
        fprintf(stderr, "fuzz_keys: could not remove %s\n", ctxdir);
}

static void put(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", ctxdir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    fputs(text, f);
    fclose(f);
}

static void make_context(void)
{
    strcpy(ctxdir, "/tmp/lc-fuzz-keys.XXXXXX");
    if (mkdtemp(ctxdir) == NULL)
        abort();
    atexit(cleanup);
    char p[256];
    snprintf(p, sizeof(p), "%s/src", ctxdir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/src/lib", ctxdir);
    mkdir(p, 0755);
    put("a.txt", "a\n");
    put("b.txt", "bb\n");
    put("debug.log", "ignored\n");
    put("src/main.c", "int main;\n");
    put("src/lib/x.c", "int x;\n");
    put(".dockerignore", "*.log\n!keep.log\n");
    snprintf(p, sizeof(p), "%s/link", ctxdir);
    if (symlink("a.txt", p) != 0)
        abort();
    snprintf(p, sizeof(p), "%s/escape", ctxdir);
    if (symlink("/etc", p) != 0)
        abort();
}

static int resolve(void *ctx, const char *image, const char *platform, lc_digest *out, lc_err *err)
{
    (void)ctx;
    (void)err;
    lc_digest_of(image, strlen(image), out);
    (void)platform;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ctxdir[0] == '\0')
        make_context();
    lc_df_file *f = NULL;
    lc_err err = {0};
    if (lc_df_parse((const char *)data, size, "Dockerfile", &f, &err) != 0)
        return 0;
    lc_df_var ba[] = {{"A", "x y"}, {"VERSION", "1"}};
    lc_keys_opts o = {.context_dir = ctxdir,
                      .build_args = ba,
                      .nbuild_args = 2,
                      .platform = "linux/amd64",
                      .resolve = resolve};
    lc_keys *k1 = NULL, *k2 = NULL;
    int rc1 = lc_keys_compute(f, &o, &k1, &err);
    if (rc1 != 0 && (err.msg[0] == '\0' || k1 != NULL))
        abort();
    int rc2 = lc_keys_compute(f, &o, &k2, &err);
    if (rc1 != rc2)
        abort();
    if (rc1 == 0 && memmem(data, size, "://", 3) == NULL && memmem(data, size, "git@", 4) == NULL) {
        if (k1->nsteps != k2->nsteps)
            abort();
        for (size_t i = 0; i < k1->nsteps; i++)
            if (!lc_digest_equal(&k1->steps[i].key, &k2->steps[i].key))
                abort();
    }
    lc_keys_free(&k1);
    lc_keys_free(&k2);
    lc_df_file_free(&f);
    return 0;
}

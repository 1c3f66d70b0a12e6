/* cmd_images.c - the local image store: `layercache images` lists it,
 * `layercache image import` brings an OCI image layout (directory or tar)
 * in as a base image. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "build-worker/cli_flags.h"
#include "build-worker/orchestrate/statedir.h"
#include "build-worker/layer/fsutil.h"
#include "build-worker/layer/untar.h"
#include "build-worker/oci/image.h"
#include "build-worker/oci/layout.h"
#include "err.h"
#include "flags.h"
#include "strlist.h"

int lc_cmd_images(int argc, char **argv);
int lc_cmd_image(int argc, char **argv);

static char *opt_format;

static const lc_flag flags[] = {
    LC_FLAG_INCLUDE_GROUP(lc_cli_state_dir_group),
    {"format", 0, LC_FLAG_STRING, &opt_format, "table", "table|json", "output format", true},
};
#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

typedef struct list_ctx {
    lc_statedir *sd;
    bool json;
    bool first;
} list_ctx;

static int print_image(void *arg, const char *ref, const lc_digest *state)
{
    list_ctx *c = arg;
    char hex[LC_DIGEST_OCI_LEN + 1], mhex[LC_DIGEST_OCI_LEN + 1] = "?";
    char *json = NULL;
    size_t len = 0, layers = 0;
    int64_t size = 0;
    lc_image *img = NULL;
    lc_digest_oci(state, hex);
    if (lc_statedir_read_blob(c->sd, state, &json, &len, NULL) == 0 &&
        lc_image_parse(json, len, &img, NULL) == 0) {
        layers = lc_image_layer_count(img);
        for (size_t i = 0; i < layers; i++) {
            lc_image_layer l;
            lc_image_layer_at(img, i, &l);
            size += l.blob.size;
        }
        char *config = NULL, *manifest = NULL;
        size_t cl, ml;
        lc_digest md;
        if (lc_layout_manifest(img, &config, &cl, NULL, &manifest, &ml, &md, NULL) == 0)
            lc_digest_oci(&md, mhex);
        free(config);
        free(manifest);
    }
    if (c->json)
        printf("%s{\"name\": \"%s\", \"manifest_digest\": \"%s\", \"state_digest\": \"%s\", "
               "\"layers\": %zu, \"size\": %lld}",
               c->first ? "" : ",\n  ", ref, mhex, hex, layers, (long long)size);
    else
        printf("%-40s %-19.19s %6zu %12lld\n", ref, mhex, layers, (long long)size);
    c->first = false;
    lc_image_free(&img);
    free(json);
    return 0;
}

int lc_cmd_images(int argc, char **argv)
{
    lc_err err = {0};
    lc_statedir *sd = NULL;
    int status = 1;
    int rc = lc_cli_parse(flags, N_FLAGS,
                          "usage: layercache images [options]\n\nLists the local image store.",
                          argc, argv, NULL, &err);
    if (rc == LC_FLAGS_HELP) {
        status = 0;
        goto out;
    }
    if (rc < 0 || lc_cli_statedir_open(&sd, &err) < 0)
        goto fail;
    list_ctx c = {.sd = sd, .json = strcmp(opt_format, "json") == 0, .first = true};
    if (c.json)
        printf("{\"images\": [\n  ");
    else
        printf("%-40s %-19s %6s %12s\n", "NAME", "MANIFEST", "LAYERS", "SIZE");
    if (lc_statedir_image_list(sd, print_image, &c, &err) < 0)
        goto fail;
    if (c.json)
        printf("\n]}\n");
    status = 0;
    goto out;
fail:
    fprintf(stderr, "layercache images: %s\n", err.msg);
out:
    lc_statedir_close(&sd);
    lc_flags_free(flags, N_FLAGS);
    return status;
}

/* layercache image import SOURCE NAME[:TAG] */
static int image_import(const char *source, const char *ref, lc_err *err)
{
    lc_statedir *sd = NULL;
    lc_image *img = NULL;
    lc_strlist blobs = {0};
    char tmp[PATH_MAX] = "";
    const char *dir = source;
    struct stat st;
    int rc = lc_cli_statedir_open(&sd, err);
    if (rc < 0)
        return rc;
    if (stat(source, &st) != 0) {
        rc = lc_err_set(err, LC_NOT_FOUND, "%s: %s", source, strerror(errno));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        /* A tar of a layout: unpack it first (safely: it is input). */
        if ((rc = lc_statedir_mktemp(sd, "import", tmp, sizeof(tmp), err)) < 0 ||
            (rc = lc_untar_file(source, tmp, NULL, NULL, err)) < 0)
            goto out;
        dir = tmp;
    }
    if ((rc = lc_layout_read_dir(dir, NULL, &img, &blobs, err)) < 0)
        goto out;
    for (size_t i = 0; i < blobs.len; i++) {
        lc_image_layer layer;
        char *data = NULL;
        size_t len = 0;
        lc_image_layer_at(img, i, &layer);
        if ((rc = lc_fs_read_file(blobs.items[i], (size_t)1 << 34, &data, &len, err)) < 0)
            goto out;
        lc_digest got;
        rc = lc_statedir_put_blob(sd, data, len, &got, err);
        free(data);
        if (rc < 0)
            goto out;
        if (!lc_digest_equal(&got, &layer.blob)) {
            rc = lc_err_set(err, LC_DATA_LOSS, "layer %zu of %s does not match its descriptor", i,
                            source);
            goto out;
        }
    }
    char *json = NULL;
    size_t len = 0;
    lc_digest state;
    if ((rc = lc_image_serialize(img, &json, &len, err)) < 0)
        goto out;
    rc = lc_statedir_put_blob(sd, json, len, &state, err);
    free(json);
    if (rc == 0)
        rc = lc_statedir_image_put(sd, ref, &state, err);
    if (rc == 0) {
        char hex[LC_DIGEST_OCI_LEN + 1];
        lc_digest_oci(&state, hex);
        printf("imported %s (%zu layers) as %s\n", source, lc_image_layer_count(img), ref);
    }
out:
    if (tmp[0])
        lc_fs_rm_rf(tmp);
    lc_strlist_clear(&blobs);
    lc_image_free(&img);
    lc_statedir_close(&sd);
    return rc;
}

int lc_cmd_image(int argc, char **argv)
{
    lc_err err = {0};
    lc_strlist pos = {0};
    int status = 1;
    static const char usage[] =
        "usage: layercache image import [options] OCI-LAYOUT-DIR|OCI-LAYOUT.tar NAME[:TAG]\n\n"
        "Imports an OCI image layout into the local image store, for use in FROM.";
    int rc = lc_cli_parse(flags, N_FLAGS, usage, argc, argv, &pos, &err);
    if (rc == LC_FLAGS_HELP) {
        status = 0;
        goto out;
    }
    if (rc < 0)
        goto fail;
    if (pos.len != 3 || strcmp(pos.items[0], "import") != 0) {
        lc_err_set(&err, LC_INVALID_ARGUMENT,
                   "expected: image import SOURCE NAME[:TAG] (see --help)");
        goto fail;
    }
    if (image_import(pos.items[1], pos.items[2], &err) < 0)
        goto fail;
    status = 0;
    goto out;
fail:
    fprintf(stderr, "layercache image: %s\n", err.msg);
out:
    lc_strlist_clear(&pos);
    lc_flags_free(flags, N_FLAGS);
    return status;
}

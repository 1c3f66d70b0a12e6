/* push.c - images to registries (see push.h). */
#include "build-worker/registry/push.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build-worker/oci/layout.h"

/* The blob's path in the state directory, fetched from the cache server
 * first when it is not local. */
static int local_blob(lc_registry *r, const lc_digest *d, char *path, size_t cap, lc_err *err)
{
    lc_statedir *sd = lc_registry_statedir(r);
    lc_statedir_blob_path(sd, d, path, cap);
    if (lc_statedir_has_blob(sd, d))
        return 0;
    char tmp[PATH_MAX], hex[LC_DIGEST_OCI_LEN + 1];
    snprintf(tmp, sizeof(tmp), "%s/tmp/push.%d", lc_statedir_path(sd), getpid());
    lc_remote *remote = lc_registry_remote(r);
    int rc = remote ? lc_remote_fetch(remote, d, tmp, -1, err)
                    : lc_err_set(err, LC_UNAVAILABLE, "no cache server");
    if (rc < 0) {
        lc_digest_oci(d, hex);
        lc_err_prefix(err, "blob %s is neither local nor obtainable from the cache", hex);
        return rc;
    }
    return lc_statedir_adopt_blob(sd, tmp, d, err);
}

/* "os/arch[/variant]" of a config blob. */
static void config_platform(const char *config, size_t len, char *buf, size_t cap)
{
    json_t *j = json_loadb(config, len, 0, NULL);
    const char *os = json_string_value(json_object_get(j, "os"));
    const char *arch = json_string_value(json_object_get(j, "architecture"));
    const char *var = json_string_value(json_object_get(j, "variant"));
    snprintf(buf, cap, "%s/%s%s%s", os ? os : "linux", arch ? arch : "amd64", var ? "/" : "",
             var ? var : "");
    json_decref(j);
}

int lc_push_image(lc_registry *r, const lc_image *img, const char *dest, lc_digest *manifest_digest,
                  lc_err *err)
{
    lc_ref ref;
    lc_regclient *c;
    char *config = NULL, *manifest = NULL, *state = NULL;
    size_t clen = 0, mlen = 0, slen = 0;
    lc_digest cd, md, sdig;
    lc_statedir *sd = lc_registry_statedir(r);
    int rc = lc_ref_parse(dest, &ref, err);
    if (rc < 0)
        return rc;
    if (ref.digest[0])
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "cannot push to '%s': a push needs a tag, not a digest", dest);
    char name[2 * LC_REF_NAME_MAX + 100], path[PATH_MAX], from[LC_REF_NAME_MAX];
    lc_ref_string(&ref, name, sizeof(name));
    if ((rc = lc_registry_client(r, &c, err)) < 0 ||
        (rc = lc_layout_manifest(img, &config, &clen, &cd, &manifest, &mlen, &md, err)) < 0)
        goto out;
    size_t nl = lc_image_layer_count(img), mounted = 0, uploaded = 0, present = 0;
    for (size_t i = 0; i <= nl; i++) {
        lc_digest d;
        if (i < nl) {
            lc_image_layer l;
            lc_image_layer_at(img, i, &l);
            d = l.blob;
            if ((rc = local_blob(r, &d, path, sizeof(path), err)) < 0)
                goto out;
        } else { /* the config last: a registry may check layers it names */
            d = cd;
            if ((rc = lc_statedir_put_blob(sd, config, clen, NULL, err)) < 0)
                goto out;
            lc_statedir_blob_path(sd, &d, path, sizeof(path));
        }
        const char *how = NULL;
        bool have_from = lc_pull_mount_source(sd, ref.domain, &d, ref.path, from, sizeof(from));
        if ((rc = lc_regclient_put_blob(c, &ref, &d, path, have_from ? from : NULL, &how, err)) <
            0) {
            lc_err_prefix(err, "pushing %s", name);
            goto out;
        }
        if (strcmp(how, "mounted") == 0)
            mounted++;
        else if (strcmp(how, "uploaded") == 0)
            uploaded++;
        else
            present++;
    }
    lc_digest got;
    if ((rc = lc_regclient_put_manifest(c, &ref, ref.tag, LC_MEDIA_OCI_MANIFEST, manifest, mlen,
                                        &got, err)) < 0)
        goto out;
    char platform[96], hex[LC_DIGEST_OCI_LEN + 1];
    config_platform(config, clen, platform, sizeof(platform));
    /* Remember it as pulled: a later FROM of this name needs no download. */
    if ((rc = lc_image_serialize(img, &state, &slen, err)) < 0 ||
        (rc = lc_statedir_put_blob(sd, state, slen, &sdig, err)) < 0 ||
        (rc = lc_statedir_image_put(sd, name, &sdig, err)) < 0 ||
        (rc = lc_pull_record(sd, &ref, platform, &got, &sdig, img, &cd, err)) < 0)
        goto out;
    lc_digest_oci(&got, hex);
    lc_registry_note(r, "pushed %s@%s: %zu blobs uploaded, %zu mounted, %zu already there", name,
                     hex, uploaded, mounted, present);
    if (manifest_digest)
        *manifest_digest = got;
out:
    free(config);
    free(manifest);
    free(state);
    return rc;
}

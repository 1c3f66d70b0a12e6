/* pull.c - base images from registries (see pull.h). */
#include "build-worker/registry/pull.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-worker/keys/keys.h"
#include "build-worker/layer/tarwrite.h"

#define MAX_CONFIG (8u << 20)

/* One image this session resolved: FROM's text and platform -> digests. */
typedef struct memo {
    char *image, *platform;
    lc_digest key;   /* what keys use (manifest digest, or a local state digest) */
    lc_digest state; /* the state document */
} memo;

struct lc_registry {
    lc_registry_opts o;
    lc_statedir *sd;
    lc_remote *remote;
    lc_progress *progress;
    lc_regclient *client;
    memo *memos;
    size_t nmemos;
    unsigned tmp_seq;
};

int lc_pull_policy_parse(const char *s, int *out, lc_err *err)
{
    /* Docker's --pull is a boolean: true (or bare) always asks the registry. */
    if (strcmp(s, "missing") == 0 || strcmp(s, "false") == 0)
        *out = LC_PULL_MISSING;
    else if (strcmp(s, "always") == 0 || strcmp(s, "true") == 0)
        *out = LC_PULL_ALWAYS;
    else if (strcmp(s, "never") == 0)
        *out = LC_PULL_NEVER;
    else
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "--pull must be missing, always, never, true or false, not '%s'", s);
    return 0;
}

int lc_registry_open(const lc_registry_opts *opts, lc_statedir *sd, lc_remote *remote,
                     lc_progress *progress, lc_registry **out, lc_err *err)
{
    lc_registry *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (opts != NULL)
        r->o = *opts;
    r->o.client.progress = progress; /* blob bytes of pulls and pushes */
    r->sd = sd;
    r->remote = remote;
    r->progress = progress;
    *out = r;
    return 0;
}

void lc_registry_close(lc_registry **rp)
{
    if (rp == NULL || *rp == NULL)
        return;
    lc_registry *r = *rp;
    for (size_t i = 0; i < r->nmemos; i++) {
        free(r->memos[i].image);
        free(r->memos[i].platform);
    }
    free(r->memos);
    lc_regclient_free(&r->client);
    free(r);
    *rp = NULL;
}

int lc_registry_client(lc_registry *r, lc_regclient **out, lc_err *err)
{
    if (r->client == NULL) {
        int rc = lc_regclient_new(&r->o.client, &r->client, err);
        if (rc < 0)
            return rc;
    }
    *out = r->client;
    return 0;
}

lc_statedir *lc_registry_statedir(lc_registry *r)
{
    return r->sd;
}
lc_remote *lc_registry_remote(lc_registry *r)
{
    return r->remote;
}

void lc_registry_note(lc_registry *r, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r->progress != NULL)
        lc_progress_note(r->progress, "%s", msg);
    else
        fprintf(stderr, "%s\n", msg);
}

static const char *host_or(const char *platform)
{
    return platform && *platform ? platform : lc_keys_host_platform();
}

static const memo *memo_find(const lc_registry *r, const char *image, const char *platform)
{
    for (size_t i = 0; i < r->nmemos; i++)
        if (strcmp(r->memos[i].image, image) == 0 && strcmp(r->memos[i].platform, platform) == 0)
            return &r->memos[i];
    return NULL;
}

static int memo_add(lc_registry *r, const char *image, const char *platform, const lc_digest *key,
                    const lc_digest *state, lc_err *err)
{
    memo *grown = realloc(r->memos, (r->nmemos + 1) * sizeof(*grown));
    if (grown == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    r->memos = grown;
    memo *m = &r->memos[r->nmemos];
    m->image = strdup(image);
    m->platform = strdup(platform);
    if (m->image == NULL || m->platform == NULL) {
        free(m->image);
        free(m->platform);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    m->key = *key;
    m->state = *state;
    r->nmemos++;
    return 0;
}

/* ---- pull records: <state dir>/registry/<ref>#<platform> ---- */

static void escape_into(char *buf, size_t *n, size_t cap, const char *s)
{
    for (const char *p = s; *p && *n + 4 < cap; p++) {
        if (*p == '/') {
            memcpy(buf + *n, "%2F", 3);
            *n += 3;
        } else {
            buf[(*n)++] = *p;
        }
    }
    buf[*n] = '\0';
}

static void record_path(lc_statedir *sd, const char *name, const char *platform, char *buf,
                        size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "%s/registry/", lc_statedir_path(sd));
    escape_into(buf, &n, cap, name);
    if (n + 2 < cap) {
        buf[n++] = '#';
        buf[n] = '\0';
    }
    escape_into(buf, &n, cap, platform);
}

static int parse_oci(json_t *o, const char *key, lc_digest *d)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && lc_digest_parse_oci(s, d, NULL) == 0 ? 0 : -LC_DATA_LOSS;
}

int lc_pull_recorded(lc_statedir *sd, const char *image, const char *platform, lc_digest *manifest,
                     lc_digest *state)
{
    lc_ref ref;
    char name[2 * LC_REF_NAME_MAX + 100], path[PATH_MAX];
    if (lc_ref_parse(image, &ref, NULL) < 0)
        return -LC_NOT_FOUND;
    lc_ref_string(&ref, name, sizeof(name));
    record_path(sd, name, host_or(platform), path, sizeof(path));
    json_t *j = json_load_file(path, 0, NULL);
    if (j == NULL)
        return -LC_NOT_FOUND;
    lc_digest m, s;
    int rc = parse_oci(j, "manifest", &m) == 0 && parse_oci(j, "state", &s) == 0 &&
                     lc_statedir_has_blob(sd, &s)
                 ? 0
                 : -LC_NOT_FOUND;
    json_decref(j);
    if (rc == 0) {
        if (manifest)
            *manifest = m;
        if (state)
            *state = s;
    }
    return rc;
}

int lc_pull_record(lc_statedir *sd, const lc_ref *ref, const char *platform,
                   const lc_digest *manifest, const lc_digest *state, const lc_image *img,
                   const lc_digest *config, lc_err *err)
{
    char name[2 * LC_REF_NAME_MAX + 100], path[PATH_MAX], tmp[PATH_MAX], hex[LC_DIGEST_OCI_LEN + 1];
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/registry", lc_statedir_path(sd));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot create %s: %s", dir,
                          strerror(errno));
    lc_ref_string(ref, name, sizeof(name));
    record_path(sd, name, host_or(platform), path, sizeof(path));
    json_t *blobs = json_array();
    for (size_t i = 0; i < lc_image_layer_count(img); i++) {
        lc_image_layer l;
        lc_image_layer_at(img, i, &l);
        lc_digest_oci(&l.blob, hex);
        json_array_append_new(blobs, json_string(hex));
    }
    lc_digest_oci(config, hex);
    json_array_append_new(blobs, json_string(hex));
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:o}", "ref", name, "domain", ref->domain, "path",
                          ref->path, "platform", host_or(platform), "blobs", blobs);
    if (j == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    lc_digest_oci(manifest, hex);
    json_object_set_new(j, "manifest", json_string(hex));
    lc_digest_oci(state, hex);
    json_object_set_new(j, "state", json_string(hex));
    snprintf(tmp, sizeof(tmp), "%s/tmp/record.%d", lc_statedir_path(sd), getpid());
    int rc = 0;
    if (json_dump_file(j, tmp, JSON_SORT_KEYS | JSON_INDENT(1)) != 0)
        rc = lc_err_set(err, LC_INTERNAL, "cannot write %s", tmp);
    else if (rename(tmp, path) != 0)
        rc = lc_err_set(err, lc_code_from_errno(errno), "cannot write %s: %s", path,
                        strerror(errno));
    json_decref(j);
    return rc;
}

bool lc_pull_mount_source(lc_statedir *sd, const char *domain, const lc_digest *blob,
                          const char *not_path, char *path, size_t cap)
{
    char dir[PATH_MAX], hex[LC_DIGEST_OCI_LEN + 1];
    snprintf(dir, sizeof(dir), "%s/registry", lc_statedir_path(sd));
    lc_digest_oci(blob, hex);
    DIR *d = opendir(dir);
    if (d == NULL)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char file[PATH_MAX + 256];
        snprintf(file, sizeof(file), "%s/%s", dir, e->d_name);
        json_t *j = json_load_file(file, 0, NULL);
        const char *dom = json_string_value(json_object_get(j, "domain"));
        const char *p = json_string_value(json_object_get(j, "path"));
        if (dom && p && strcmp(dom, domain) == 0 &&
            (not_path == NULL || strcmp(p, not_path) != 0)) {
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(j, "blobs"), i, v)
            {
                const char *s = json_string_value(v);
                if (s && strcmp(s, hex) == 0 && (size_t)snprintf(path, cap, "%s", p) < cap) {
                    found = true;
                    break;
                }
            }
        }
        json_decref(j);
    }
    closedir(d);
    return found;
}

/* ---- pulling ---- */

typedef struct pull_stats {
    size_t from_local, from_cache, from_registry;
    uint64_t bytes_cache, bytes_registry;
} pull_stats;

/* Makes sure blob d is in the state directory: local, else the cache
 * server, else the registry (then queued for upload to the cache). */
static int fetch_blob(lc_registry *r, const lc_ref *ref, const lc_digest *d, pull_stats *st,
                      lc_err *err)
{
    if (lc_statedir_has_blob(r->sd, d)) {
        st->from_local++;
        return 0;
    }
    char tmp[PATH_MAX], final[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/tmp/pull.%d.%u", lc_statedir_path(r->sd), getpid(),
             r->tmp_seq++);
    lc_statedir_blob_path(r->sd, d, final, sizeof(final));
    /* The cache first; a miss or a cache problem (reported by the remote
     * itself) falls through to the registry. */
    lc_err cache_err = {0};
    if (r->remote != NULL && lc_remote_readable(r->remote) &&
        lc_remote_fetch(r->remote, d, tmp, -1, &cache_err) == 0) {
        st->from_cache++;
        st->bytes_cache += (uint64_t)d->size;
        return lc_statedir_adopt_blob(r->sd, tmp, d, err);
    }
    lc_regclient *c;
    int rc = lc_registry_client(r, &c, err);
    if (rc < 0 || (rc = lc_regclient_get_blob(c, ref, d, tmp, err)) < 0 ||
        (rc = lc_statedir_adopt_blob(r->sd, tmp, d, err)) < 0)
        return rc;
    st->from_registry++;
    st->bytes_registry += (uint64_t)d->size;
    if (r->remote != NULL)
        lc_remote_put_blob(r->remote, d, final);
    return 0;
}

/* "os/arch[/variant]" into parts. */
static void split_platform(const char *p, char *os, char *arch, char *variant, size_t cap)
{
    os[0] = arch[0] = variant[0] = '\0';
    const char *a = strchr(p, '/');
    const char *v = a ? strchr(a + 1, '/') : NULL;
    snprintf(os, cap, "%.*s", (int)(a ? a - p : (long)strlen(p)), p);
    if (a)
        snprintf(arch, cap, "%.*s", (int)(v ? v - a - 1 : (long)strlen(a + 1)), a + 1);
    if (v)
        snprintf(variant, cap, "%s", v + 1);
}

/* Picks the platform's manifest out of an index / manifest list. */
static int select_platform(const lc_reg_manifest *idx, const char *what, const char *platform,
                           lc_digest *out, lc_err *err)
{
    char os[32], arch[32], variant[32];
    split_platform(platform, os, arch, variant, sizeof(os));
    json_t *j = json_loadb(idx->body, idx->len, 0, NULL);
    json_t *ms = json_object_get(j, "manifests");
    size_t i;
    json_t *m;
    int rc = -LC_NOT_FOUND;
    char have[512] = "";
    size_t hn = 0;
    json_array_foreach(ms, i, m)
    {
        json_t *p = json_object_get(m, "platform");
        const char *mos = json_string_value(json_object_get(p, "os"));
        const char *march = json_string_value(json_object_get(p, "architecture"));
        const char *mvar = json_string_value(json_object_get(p, "variant"));
        if (mos && march && hn + 40 < sizeof(have))
            hn += (size_t)snprintf(have + hn, sizeof(have) - hn, "%s%s/%s%s%s", hn ? ", " : "", mos,
                                   march, mvar ? "/" : "", mvar ? mvar : "");
        if (!mos || !march || strcmp(mos, os) != 0 || strcmp(march, arch) != 0)
            continue;
        /* arm64 without a variant is v8; otherwise a requested variant must match. */
        const char *mv = mvar ? mvar : (strcmp(march, "arm64") == 0 ? "v8" : "");
        const char *want = variant[0] ? variant : (strcmp(arch, "arm64") == 0 ? "v8" : "");
        if (want[0] && strcmp(mv, want) != 0)
            continue;
        if (parse_oci(m, "digest", out) == 0) {
            rc = 0;
            break;
        }
    }
    json_decref(j);
    if (rc < 0)
        return lc_err_set(err, LC_NOT_FOUND, "%s has no manifest for platform %s (it has: %s)",
                          what, platform, have[0] ? have : "none");
    return 0;
}

static const char *layer_media(const char *mt)
{
    if (strcmp(mt, LC_MEDIA_DOCKER_LAYER) == 0 || strcmp(mt, LC_MEDIA_LAYER_GZIP) == 0)
        return LC_MEDIA_LAYER_GZIP; /* the same gzip'd tar under the OCI name */
    if (strcmp(mt, LC_MEDIA_LAYER_ZSTD) == 0 || strcmp(mt, LC_MEDIA_LAYER_TAR) == 0)
        return mt;
    return NULL;
}

int lc_pull_image(lc_registry *r, const char *image, const char *platform, lc_digest *manifest,
                  lc_digest *state, lc_err *err)
{
    platform = host_or(platform);
    lc_ref ref;
    char name[2 * LC_REF_NAME_MAX + 100];
    lc_reg_manifest m = {0};
    lc_regclient *c;
    lc_image *img = NULL;
    lc_image_layer *layers = NULL;
    char *config = NULL, *sjson = NULL;
    json_t *j = NULL;
    pull_stats st = {0};
    int rc = lc_ref_parse(image, &ref, err);
    if (rc < 0 || (rc = lc_registry_client(r, &c, err)) < 0)
        return rc;
    lc_ref_string(&ref, name, sizeof(name));
    if ((rc = lc_regclient_get_manifest(c, &ref, lc_ref_reference(&ref), &m, err)) < 0)
        goto out;
    if (strcmp(m.media_type, LC_MEDIA_OCI_INDEX) == 0 ||
        strcmp(m.media_type, LC_MEDIA_DOCKER_LIST) == 0) {
        lc_digest pick;
        char hex[LC_DIGEST_OCI_LEN + 1];
        if ((rc = select_platform(&m, name, platform, &pick, err)) < 0)
            goto out;
        lc_digest_oci(&pick, hex);
        lc_reg_manifest_clear(&m);
        if ((rc = lc_regclient_get_manifest(c, &ref, hex, &m, err)) < 0)
            goto out;
        if (strcmp(m.media_type, LC_MEDIA_OCI_MANIFEST) != 0 &&
            strcmp(m.media_type, LC_MEDIA_DOCKER_MANIFEST) != 0) {
            rc = lc_err_set(err, LC_UNIMPLEMENTED, "%s: nested index %s is not supported", name,
                            hex);
            goto out;
        }
    }
    j = json_loadb(m.body, m.len, 0, NULL);
    json_t *cfg = json_object_get(j, "config"), *jl = json_object_get(j, "layers");
    const char *cmt = json_string_value(json_object_get(cfg, "mediaType"));
    lc_digest cd;
    if (!json_is_array(jl) || parse_oci(cfg, "digest", &cd) < 0 ||
        !json_is_integer(json_object_get(cfg, "size"))) {
        rc = lc_err_set(err, LC_DATA_LOSS, "%s: malformed manifest (config or layers)", name);
        goto out;
    }
    if (cmt == NULL ||
        (strcmp(cmt, LC_MEDIA_OCI_CONFIG) != 0 && strcmp(cmt, LC_MEDIA_DOCKER_CONFIG) != 0)) {
        rc = lc_err_set(err, LC_UNIMPLEMENTED,
                        "%s: unsupported config media type '%s' (not a container image?)", name,
                        cmt ? cmt : "(none)");
        goto out;
    }
    cd.size = json_integer_value(json_object_get(cfg, "size"));
    if (cd.size < 0 || cd.size > (int64_t)MAX_CONFIG) {
        rc = lc_err_set(err, LC_DATA_LOSS, "%s: config size %lld out of range", name,
                        (long long)cd.size);
        goto out;
    }
    size_t nl = json_array_size(jl);
    layers = calloc(nl ? nl : 1, sizeof(*layers));
    if (layers == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nl; i++) {
        json_t *l = json_array_get(jl, i);
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        const char *media = mt ? layer_media(mt) : NULL;
        if (media == NULL) {
            rc = lc_err_set(err, LC_UNIMPLEMENTED, "%s: layer %zu has unsupported media type '%s'",
                            name, i, mt ? mt : "(none)");
            goto out;
        }
        if (parse_oci(l, "digest", &layers[i].blob) < 0 ||
            !json_is_integer(json_object_get(l, "size")) ||
            (layers[i].blob.size = json_integer_value(json_object_get(l, "size"))) < 0) {
            rc = lc_err_set(err, LC_DATA_LOSS, "%s: malformed layer descriptor %zu", name, i);
            goto out;
        }
        snprintf(layers[i].media_type, sizeof(layers[i].media_type), "%s", media);
    }
    size_t clen = 0;
    if ((rc = fetch_blob(r, &ref, &cd, &st, err)) < 0 ||
        (rc = lc_statedir_read_blob(r->sd, &cd, &config, &clen, err)) < 0)
        goto out;
    for (size_t i = 0; i < nl; i++)
        if ((rc = fetch_blob(r, &ref, &layers[i].blob, &st, err)) < 0)
            goto out;
    if ((rc = lc_image_from_config(config, clen, layers, nl, &img, err)) < 0) {
        lc_err_prefix(err, "%s", name);
        goto out;
    }
    size_t slen = 0;
    lc_digest sdig;
    if ((rc = lc_image_serialize(img, &sjson, &slen, err)) < 0 ||
        (rc = lc_statedir_put_blob(r->sd, sjson, slen, &sdig, err)) < 0 ||
        (rc = lc_statedir_image_put(r->sd, name, &sdig, err)) < 0 ||
        (rc = lc_pull_record(r->sd, &ref, platform, &m.digest, &sdig, img, &cd, err)) < 0)
        goto out;
    char mhex[LC_DIGEST_OCI_LEN + 1];
    lc_digest_oci(&m.digest, mhex);
    lc_registry_note(r,
                     "pulled %s (%s) %s: %zu layers; blobs: %zu local, %zu from the cache "
                     "(%llu bytes), %zu from the registry (%llu bytes)",
                     name, platform, mhex, nl, st.from_local, st.from_cache,
                     (unsigned long long)st.bytes_cache, st.from_registry,
                     (unsigned long long)st.bytes_registry);
    if (manifest)
        *manifest = m.digest;
    if (state)
        *state = sdig;
out:
    json_decref(j);
    free(sjson);
    free(config);
    free(layers);
    lc_image_free(&img);
    lc_reg_manifest_clear(&m);
    return rc;
}

int lc_pull_resolve(void *ctx, const char *image, const char *platform, lc_digest *out, lc_err *err)
{
    lc_registry *r = ctx;
    platform = host_or(platform);
    const memo *m = memo_find(r, image, platform);
    if (m != NULL) {
        *out = m->key;
        return 0;
    }
    lc_digest key, state;
    bool recorded = lc_pull_recorded(r->sd, image, platform, &key, &state) == 0;
    bool local = !recorded && lc_statedir_image_get(r->sd, image, &state, NULL) == 0;
    int rc;
    if (local)
        key = state; /* built or imported here: no registry digest exists */
    bool use_local = recorded || local;
    if (r->o.pull == LC_PULL_ALWAYS)
        use_local = local && !lc_ref_has_domain(image);
    if (!use_local) {
        if (r->o.pull == LC_PULL_NEVER)
            return lc_err_set(err, LC_FAILED_PRECONDITION,
                              "image '%s' (%s) is not in the local store and --pull is never",
                              image, platform);
        if ((rc = lc_pull_image(r, image, platform, &key, &state, err)) < 0) {
            /* NOT_FOUND means "unknown here" to the key engine, which would
             * replace the registry's message with advice to import. */
            if (rc == -LC_NOT_FOUND && err != NULL)
                err->code = LC_FAILED_PRECONDITION;
            return rc == -LC_NOT_FOUND ? -LC_FAILED_PRECONDITION : rc;
        }
    }
    if ((rc = memo_add(r, image, platform, &key, &state, err)) < 0)
        return rc;
    *out = key;
    return 0;
}

int lc_pull_state(lc_registry *r, const char *image, const char *platform, lc_digest *state,
                  lc_err *err)
{
    platform = host_or(platform);
    lc_digest key;
    int rc = 0;
    if (memo_find(r, image, platform) == NULL &&
        (rc = lc_pull_resolve(r, image, platform, &key, err)) < 0)
        return rc;
    *state = memo_find(r, image, platform)->state;
    return 0;
}

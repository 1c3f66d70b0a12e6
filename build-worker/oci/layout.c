/* layout.c - OCI image layout writer and reader (see layout.h). */
#include "build-worker/oci/layout.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"

#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS)
#define OCI_LAYOUT_FILE "{\"imageLayoutVersion\":\"1.0.0\"}"
#define MAX_JSON (64u << 20)

static json_t *descriptor(const char *media, const lc_digest *d)
{
    char s[LC_DIGEST_OCI_LEN + 1];
    lc_digest_oci(d, s);
    return json_pack("{s:s, s:s, s:I}", "mediaType", media, "digest", s, "size",
                     (json_int_t)d->size);
}

int lc_layout_manifest(const lc_image *img, char **config, size_t *config_len,
                       lc_digest *config_digest, char **manifest, size_t *manifest_len,
                       lc_digest *manifest_digest, lc_err *err)
{
    char *cfg = NULL;
    size_t clen = 0;
    int rc = lc_image_config_blob(img, &cfg, &clen, err);
    if (rc < 0)
        return rc;
    lc_digest cd;
    lc_digest_of(cfg, clen, &cd);
    json_t *layers = json_array();
    for (size_t i = 0; i < lc_image_layer_count(img); i++) {
        lc_image_layer l;
        if (lc_image_layer_at(img, i, &l) < 0) {
            json_decref(layers);
            free(cfg);
            return lc_err_set(err, LC_INTERNAL, "image state: layer %zu unreadable", i);
        }
        json_array_append_new(layers, descriptor(l.media_type, &l.blob));
    }
    json_t *m =
        json_pack("{s:i, s:s, s:o, s:o}", "schemaVersion", 2, "mediaType", LC_MEDIA_OCI_MANIFEST,
                  "config", descriptor(LC_MEDIA_OCI_CONFIG, &cd), "layers", layers);
    char *ms = m ? json_dumps(m, DUMP_FLAGS) : NULL;
    json_decref(m);
    if (ms == NULL) {
        free(cfg);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory building the manifest");
    }
    if (config_digest)
        *config_digest = cd;
    if (manifest_digest)
        lc_digest_of(ms, strlen(ms), manifest_digest);
    *config = cfg;
    *config_len = clen;
    *manifest = ms;
    *manifest_len = strlen(ms);
    return 0;
}

/* ---- sinks: a directory or a tar ---- */
struct sink {
    const char *dir;
    struct archive *tar;
};

static int tar_header(struct sink *s, const char *rel, int is_dir, int64_t size, lc_err *err)
{
    struct archive_entry *e = archive_entry_new();
    if (e == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    archive_entry_set_pathname(e, rel);
    archive_entry_set_filetype(e, is_dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e, is_dir ? 0755 : 0644);
    archive_entry_set_size(e, is_dir ? 0 : size);
    archive_entry_set_mtime(e, 0, 0);
    int r = archive_write_header(s->tar, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK)
        return lc_err_set(err, LC_INTERNAL, "layout tar %s: %s", rel, archive_error_string(s->tar));
    return 0;
}

static int sink_dir(struct sink *s, const char *rel, lc_err *err)
{
    if (s->tar)
        return tar_header(s, rel, 1, 0, err);
    char *p = lc_fs_join(s->dir, rel);
    int r = p ? lc_fs_mkdir_p(p) : -ENOMEM;
    free(p);
    if (r < 0)
        return lc_err_set(err, lc_code_from_errno(-r), "mkdir %s/%s: %s", s->dir, rel,
                          strerror(-r));
    return 0;
}

static int sink_bytes(struct sink *s, const char *rel, const void *buf, size_t len, lc_err *err)
{
    if (s->tar) {
        int rc = tar_header(s, rel, 0, (int64_t)len, err);
        if (rc == 0 && archive_write_data(s->tar, buf, len) != (la_ssize_t)len)
            rc = lc_err_set(err, LC_INTERNAL, "layout tar %s: %s", rel,
                            archive_error_string(s->tar));
        return rc;
    }
    char *p = lc_fs_join(s->dir, rel);
    if (p == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = lc_fs_write_file(p, buf, len, err);
    free(p);
    return rc;
}

/* Copies a layer blob, verifying it against its descriptor on the way. */
static int sink_blob_file(struct sink *s, const char *rel, const char *src, const lc_digest *want,
                          lc_err *err)
{
    char *dst = NULL, *tmp = NULL;
    int in = -1, out = -1, rc = 0;
    lc_hasher *h = NULL;
    if (!s->tar) {
        dst = lc_fs_join(s->dir, rel);
        struct stat st;
        if (dst && stat(dst, &st) == 0 && st.st_size == want->size) {
            free(dst); /* content-addressed and verified when it was written */
            return 0;
        }
        tmp = dst ? malloc(strlen(dst) + 8) : NULL;
        if (tmp == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        sprintf(tmp, "%s.tmp", dst);
        out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0) {
            rc = lc_err_set(err, lc_code_from_errno(errno), "create %s: %s", tmp, strerror(errno));
            goto out;
        }
    } else {
        rc = tar_header(s, rel, 0, want->size, err);
        if (rc < 0)
            goto out;
    }
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        rc = lc_err_set(err, lc_code_from_errno(errno), "layer blob %s: %s", src, strerror(errno));
        goto out;
    }
    h = lc_hasher_new();
    if (h == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    static __thread char buf[65536];
    int64_t total = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = lc_err_set(err, lc_code_from_errno(errno), "read %s: %s", src, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        total += n;
        if (total > want->size) {
            rc = lc_err_set(err, LC_DATA_LOSS,
                            "layer blob %s is larger than its descriptor "
                            "(%lld bytes)",
                            src, (long long)want->size);
            goto out;
        }
        lc_hasher_update(h, buf, (size_t)n);
        if (s->tar) {
            if (archive_write_data(s->tar, buf, (size_t)n) != n) {
                rc = lc_err_set(err, LC_INTERNAL, "layout tar: %s", archive_error_string(s->tar));
                goto out;
            }
        } else {
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(out, buf + off, (size_t)(n - off));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w < 0) {
                    rc = lc_err_set(err, lc_code_from_errno(errno), "write %s: %s", tmp,
                                    strerror(errno));
                    goto out;
                }
                off += w;
            }
        }
    }
    lc_digest got;
    lc_hasher_final(h, &got);
    if (!lc_digest_equal(&got, want)) {
        char g[LC_DIGEST_OCI_LEN + 1], w[LC_DIGEST_OCI_LEN + 1];
        lc_digest_oci(&got, g);
        lc_digest_oci(want, w);
        rc = lc_err_set(err, LC_DATA_LOSS, "layer blob %s is %s (%lld bytes), expected %s (%lld)",
                        src, g, (long long)got.size, w, (long long)want->size);
        goto out;
    }
    if (out >= 0) {
        int c = close(out);
        out = -1;
        if (c < 0 || rename(tmp, dst) < 0)
            rc = lc_err_set(err, lc_code_from_errno(errno), "write %s: %s", dst, strerror(errno));
    }
out:
    lc_hasher_free(&h);
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (tmp != NULL && rc < 0)
        unlink(tmp);
    free(tmp);
    free(dst);
    return rc;
}

struct blob {
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest d;
    const char *path; /* layer file, or NULL for in-memory */
    const char *data;
    size_t len;
};

static int cmp_blob(const void *a, const void *b)
{
    return strcmp(((const struct blob *)a)->hex, ((const struct blob *)b)->hex);
}

static json_t *index_entry(const char *media, const lc_digest *md, const char *ref)
{
    json_t *e = descriptor(media, md);
    if (e != NULL && ref != NULL)
        json_object_set_new(e, "annotations", json_pack("{s:s}", LC_OCI_REF_ANNOTATION, ref));
    return e;
}

/* The index: existing manifests (dir mode) minus the same ref, plus ours. */
static char *build_index(const char *dir, const char *media, const lc_digest *md, const char *ref,
                         lc_err *err)
{
    json_t *manifests = json_array();
    if (dir != NULL) {
        char *ip = lc_fs_join(dir, "index.json");
        json_t *old = ip ? json_load_file(ip, 0, NULL) : NULL;
        free(ip);
        json_t *arr = json_object_get(old, "manifests");
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *m = json_array_get(arr, i);
            const char *r = json_string_value(
                json_object_get(json_object_get(m, "annotations"), LC_OCI_REF_ANNOTATION));
            if (ref != NULL && r != NULL && strcmp(r, ref) == 0)
                continue;
            if (ref == NULL && r == NULL)
                continue;
            json_array_append(manifests, m);
        }
        json_decref(old);
    }
    json_array_append_new(manifests, index_entry(media, md, ref));
    json_t *idx = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType", LC_MEDIA_OCI_INDEX,
                            "manifests", manifests);
    char *s = idx ? json_dumps(idx, DUMP_FLAGS) : NULL;
    json_decref(idx);
    if (s == NULL)
        lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory building index.json");
    return s;
}

/* "os/arch[/variant]" as an OCI platform object. */
static json_t *platform_json(const char *platform)
{
    char os[32] = "", arch[32] = "", variant[32] = "";
    sscanf(platform, "%31[^/]/%31[^/]/%31s", os, arch, variant);
    json_t *p = json_pack("{s:s, s:s}", "architecture", arch, "os", os);
    if (p != NULL && variant[0])
        json_object_set_new(p, "variant", json_string(variant));
    return p;
}

int lc_layout_index(const lc_layout_image *imgs, size_t n, char **out, size_t *len,
                    lc_digest *digest, lc_err *err)
{
    json_t *manifests = json_array();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *cfg = NULL, *man = NULL;
        size_t clen, mlen;
        lc_digest md;
        rc = lc_layout_manifest(imgs[i].img, &cfg, &clen, NULL, &man, &mlen, &md, err);
        free(cfg);
        free(man);
        if (rc < 0)
            break;
        json_t *e = descriptor(LC_MEDIA_OCI_MANIFEST, &md);
        if (e != NULL && imgs[i].platform != NULL)
            json_object_set_new(e, "platform", platform_json(imgs[i].platform));
        json_array_append_new(manifests, e);
    }
    json_t *idx = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType", LC_MEDIA_OCI_INDEX,
                            "manifests", manifests);
    char *s = idx && rc == 0 ? json_dumps(idx, DUMP_FLAGS) : NULL;
    json_decref(idx);
    if (rc < 0)
        return rc;
    if (s == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory building an image index");
    *out = s;
    *len = strlen(s);
    if (digest != NULL)
        lc_digest_of(s, *len, digest);
    return 0;
}

static int blobs_of_image(const lc_layout_image *li, struct blob **blobs, size_t *nb, size_t *cap,
                          char **owned, size_t *nowned, lc_digest *md, lc_err *err)
{
    char *cfg = NULL, *man = NULL;
    size_t clen, mlen;
    lc_digest cd;
    size_t n = lc_image_layer_count(li->img);
    int rc = lc_layout_manifest(li->img, &cfg, &clen, &cd, &man, &mlen, md, err);
    if (rc < 0)
        return rc;
    owned[(*nowned)++] = cfg;
    owned[(*nowned)++] = man;
    if (*nb + n + 2 > *cap) {
        size_t c = (*nb + n + 2) * 2;
        struct blob *g = realloc(*blobs, c * sizeof(*g));
        if (g == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        *blobs = g;
        *cap = c;
    }
    for (size_t i = 0; i < n; i++) {
        lc_image_layer l;
        lc_image_layer_at(li->img, i, &l);
        if (li->layer_paths == NULL || li->layer_paths[i] == NULL)
            return lc_err_set(err, LC_INVALID_ARGUMENT, "no blob file for layer %zu", i);
        (*blobs)[*nb] = (struct blob){.d = l.blob, .path = li->layer_paths[i]};
        lc_digest_hex(&l.blob, (*blobs)[(*nb)++].hex);
    }
    (*blobs)[*nb] = (struct blob){.d = cd, .data = cfg, .len = clen};
    lc_digest_hex(&cd, (*blobs)[(*nb)++].hex);
    (*blobs)[*nb] = (struct blob){.d = *md, .data = man, .len = mlen};
    lc_digest_hex(md, (*blobs)[(*nb)++].hex);
    return 0;
}

static int write_layout(struct sink *s, const lc_layout_image *imgs, size_t nimgs, const char *ref,
                        lc_digest *top_digest, lc_err *err)
{
    struct blob *blobs = NULL;
    size_t nb = 0, cap = 0, nowned = 0;
    char **owned = calloc(2 * nimgs + 1, sizeof(*owned));
    char *index = NULL, *list = NULL;
    size_t list_len = 0;
    lc_digest md = {0}, top;
    int rc = owned ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < nimgs && rc == 0; i++)
        rc = blobs_of_image(&imgs[i], &blobs, &nb, &cap, owned, &nowned, &md, err);
    if (rc < 0)
        goto out;
    const char *top_media = LC_MEDIA_OCI_MANIFEST;
    top = md;
    if (nimgs > 1) {
        /* Several platforms: one image index naming each manifest with its
         * platform, and index.json naming that index (BuildKit's layout). */
        if ((rc = lc_layout_index(imgs, nimgs, &list, &list_len, &top, err)) < 0)
            goto out;
        struct blob *g = realloc(blobs, (nb + 1) * sizeof(*g));
        if (g == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        blobs = g;
        blobs[nb] = (struct blob){.d = top, .data = list, .len = list_len};
        lc_digest_hex(&top, blobs[nb++].hex);
        top_media = LC_MEDIA_OCI_INDEX;
    }
    qsort(blobs, nb, sizeof(*blobs), cmp_blob);

    index = build_index(s->dir, top_media, &top, ref, err);
    if (index == NULL) {
        rc = -LC_RESOURCE_EXHAUSTED;
        goto out;
    }
    /* Sorted order, for the tar: blobs/..., index.json, oci-layout. */
    if ((rc = sink_dir(s, "blobs", err)) < 0 || (rc = sink_dir(s, "blobs/sha256", err)) < 0)
        goto out;
    for (size_t i = 0; i < nb; i++) {
        if (i > 0 && strcmp(blobs[i].hex, blobs[i - 1].hex) == 0)
            continue; /* the same layer twice */
        char rel[16 + LC_HASH_HEX_LEN];
        snprintf(rel, sizeof(rel), "blobs/sha256/%s", blobs[i].hex);
        rc = blobs[i].path ? sink_blob_file(s, rel, blobs[i].path, &blobs[i].d, err)
                           : sink_bytes(s, rel, blobs[i].data, blobs[i].len, err);
        if (rc < 0)
            goto out;
    }
    if ((rc = sink_bytes(s, "index.json", index, strlen(index), err)) < 0 ||
        (rc = sink_bytes(s, "oci-layout", OCI_LAYOUT_FILE, strlen(OCI_LAYOUT_FILE), err)) < 0)
        goto out;
    if (top_digest != NULL)
        *top_digest = top;
out:
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(owned);
    free(list);
    free(index);
    free(blobs);
    return rc;
}

int lc_layout_write(const char *dest, bool tar, const lc_layout_image *imgs, size_t n,
                    const char *ref, lc_digest *top_digest, lc_err *err)
{
    if (!tar) {
        int r = lc_fs_mkdir_p(dest);
        if (r < 0)
            return lc_err_set(err, lc_code_from_errno(-r), "create %s: %s", dest, strerror(-r));
        struct sink s = {.dir = dest};
        return write_layout(&s, imgs, n, ref, top_digest, err);
    }
    bool to_stdout = strcmp(dest, "-") == 0;
    struct sink s = {.tar = archive_write_new()};
    if (s.tar == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int rc = 0;
    /* No padding of the last block: a file and stdout get the same bytes. */
    if (archive_write_set_format_pax_restricted(s.tar) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(s.tar, 1) != ARCHIVE_OK ||
        (to_stdout ? archive_write_open_fd(s.tar, STDOUT_FILENO)
                   : archive_write_open_filename(s.tar, dest)) != ARCHIVE_OK) {
        rc = lc_err_set(err, LC_INTERNAL, "create %s: %s", to_stdout ? "(stdout)" : dest,
                        archive_error_string(s.tar));
        goto out;
    }
    rc = write_layout(&s, imgs, n, ref, top_digest, err);
    if (rc == 0 && archive_write_close(s.tar) != ARCHIVE_OK)
        rc = lc_err_set(err, LC_INTERNAL, "finish %s: %s", to_stdout ? "(stdout)" : dest,
                        archive_error_string(s.tar));
out:
    archive_write_free(s.tar);
    if (rc < 0 && !to_stdout)
        unlink(dest);
    return rc;
}

int lc_layout_write_dir(const char *dest, const lc_image *img, const char *const *layer_paths,
                        const char *ref, lc_digest *manifest_digest, lc_err *err)
{
    lc_layout_image li = {.img = img, .layer_paths = layer_paths};
    return lc_layout_write(dest, false, &li, 1, ref, manifest_digest, err);
}

int lc_layout_write_tar(const char *tar_path, const lc_image *img, const char *const *layer_paths,
                        const char *ref, lc_digest *manifest_digest, lc_err *err)
{
    lc_layout_image li = {.img = img, .layer_paths = layer_paths};
    return lc_layout_write(tar_path, true, &li, 1, ref, manifest_digest, err);
}

/* ---- reading ---- */
static char *blob_path(const char *dir, const char *digest)
{
    if (digest == NULL || strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 71 ||
        strchr(digest + 7, '/') != NULL || strchr(digest, '.') != NULL)
        return NULL;
    size_t len = strlen(dir) + 100;
    char *p = malloc(len);
    if (p != NULL)
        snprintf(p, len, "%s/blobs/sha256/%s", dir, digest + 7);
    return p;
}

static json_t *load_json(const char *path, lc_err *err)
{
    char *buf;
    size_t len;
    if (lc_fs_read_file(path, MAX_JSON, &buf, &len, err) < 0)
        return NULL;
    json_error_t je;
    json_t *j = json_loadb(buf, len, 0, &je);
    free(buf);
    if (j == NULL)
        lc_err_set(err, LC_INVALID_ARGUMENT, "%s: %s", path, je.text);
    return j;
}

int lc_layout_read_dir(const char *dir, const char *ref, lc_image **img, lc_strlist *blob_paths,
                       lc_err *err)
{
    json_t *index = NULL, *man = NULL;
    char *ip = lc_fs_join(dir, "index.json"), *mp = NULL, *cp = NULL, *cfg = NULL;
    lc_image_layer *layers = NULL;
    lc_strlist paths = {0};
    int rc = 0;
    index = ip ? load_json(ip, err) : NULL;
    if (index == NULL) {
        rc = ip ? -(err ? err->code : LC_INVALID_ARGUMENT) : -LC_RESOURCE_EXHAUSTED;
        goto out;
    }
    json_t *arr = json_object_get(index, "manifests"), *pick = NULL;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *m = json_array_get(arr, i);
        const char *r = json_string_value(
            json_object_get(json_object_get(m, "annotations"), LC_OCI_REF_ANNOTATION));
        if (ref == NULL || (r != NULL && strcmp(r, ref) == 0)) {
            if (pick != NULL && ref == NULL) {
                rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                                "%s holds several images; name one (DIR:TAG)", dir);
                goto out;
            }
            pick = m;
        }
    }
    if (pick == NULL) {
        rc = lc_err_set(err, LC_NOT_FOUND, "no image \"%s\" in %s/index.json", ref ? ref : "", dir);
        goto out;
    }
    mp = blob_path(dir, json_string_value(json_object_get(pick, "digest")));
    man = mp ? load_json(mp, err) : NULL;
    if (man == NULL) {
        rc = mp ? -(err ? err->code : LC_INVALID_ARGUMENT)
                : lc_err_set(err, LC_INVALID_ARGUMENT, "%s: bad manifest digest", dir);
        goto out;
    }
    json_t *ml = json_object_get(man, "layers");
    size_t n = json_array_size(ml);
    layers = calloc(n ? n : 1, sizeof(*layers));
    if (layers == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_array_get(ml, i);
        const char *d = json_string_value(json_object_get(l, "digest"));
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        json_t *sz = json_object_get(l, "size");
        char *bp = blob_path(dir, d);
        if (bp == NULL || mt == NULL || strlen(mt) >= sizeof(layers[i].media_type) ||
            !json_is_integer(sz) || lc_digest_parse_oci(d, &layers[i].blob, NULL) < 0) {
            free(bp);
            rc =
                lc_err_set(err, LC_INVALID_ARGUMENT, "%s: manifest layer %zu is malformed", dir, i);
            goto out;
        }
        layers[i].blob.size = json_integer_value(sz);
        strcpy(layers[i].media_type, mt);
        if (lc_strlist_push_owned(&paths, bp) < 0) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
    }
    cp = blob_path(dir,
                   json_string_value(json_object_get(json_object_get(man, "config"), "digest")));
    size_t clen = 0;
    if (cp == NULL) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "%s: manifest has no config digest", dir);
        goto out;
    }
    rc = lc_fs_read_file(cp, MAX_JSON, &cfg, &clen, err);
    if (rc == 0)
        rc = lc_image_from_config(cfg, clen, layers, n, img, err);
    for (size_t i = 0; rc == 0 && i < paths.len; i++)
        if (lc_strlist_push(blob_paths, paths.items[i]) < 0)
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
out:
    lc_strlist_clear(&paths);
    free(layers);
    free(cfg);
    free(cp);
    free(mp);
    free(ip);
    json_decref(man);
    json_decref(index);
    return rc;
}

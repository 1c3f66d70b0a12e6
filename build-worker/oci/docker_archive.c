/* docker_archive.c - see docker_archive.h. */
#include "build-worker/oci/docker_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build-worker/oci/layout.h"
#include "build-worker/registry/ref.h"

#define BUF_SIZE (256 << 10)

static int header(struct archive *a, const char *name, int is_dir, int64_t size, lc_err *err)
{
    struct archive_entry *e = archive_entry_new();
    if (e == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, is_dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e, is_dir ? 0755 : 0644);
    archive_entry_set_size(e, is_dir ? 0 : size);
    archive_entry_set_mtime(e, 0, 0);
    int r = archive_write_header(a, e);
    archive_entry_free(e);
    if (r != ARCHIVE_OK)
        return lc_err_set(err, LC_INTERNAL, "docker archive %s: %s", name, archive_error_string(a));
    return 0;
}

static int put_bytes(struct archive *a, const char *name, const char *data, size_t len, lc_err *err)
{
    int rc = header(a, name, 0, (int64_t)len, err);
    if (rc == 0 && archive_write_data(a, data, len) != (la_ssize_t)len)
        rc = lc_err_set(err, LC_INTERNAL, "docker archive %s: %s", name, archive_error_string(a));
    return rc;
}

/* Decompresses blob into the file tmp, checking its digest against diff_id. */
static int decompress(const char *blob, const char *tmp, const lc_digest *diff_id, char *buf,
                      lc_err *err)
{
    struct archive *r = archive_read_new();
    int fd = -1, rc = 0;
    lc_hasher *h = lc_hasher_new();
    if (r == NULL || h == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    archive_read_support_filter_all(r);
    archive_read_support_format_raw(r);
    struct archive_entry *e;
    if (archive_read_open_filename(r, blob, BUF_SIZE) != ARCHIVE_OK ||
        archive_read_next_header(r, &e) != ARCHIVE_OK) {
        rc = lc_err_set(err, LC_DATA_LOSS, "layer %s: %s", blob, archive_error_string(r));
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = lc_err_set(err, lc_code_from_errno(errno), "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    for (;;) {
        la_ssize_t n = archive_read_data(r, buf, BUF_SIZE);
        if (n < 0) {
            rc = lc_err_set(err, LC_DATA_LOSS, "layer %s: %s", blob, archive_error_string(r));
            goto out;
        }
        if (n == 0)
            break;
        lc_hasher_update(h, buf, (size_t)n);
        for (la_ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
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
    lc_digest got;
    lc_hasher_final(h, &got);
    if (memcmp(got.hash, diff_id->hash, LC_HASH_LEN) != 0) {
        char g[LC_DIGEST_OCI_LEN + 1], w[LC_DIGEST_OCI_LEN + 1];
        lc_digest_oci(&got, g);
        lc_digest_oci(diff_id, w);
        rc = lc_err_set(err, LC_DATA_LOSS, "layer %s uncompresses to %s, not its diff_id %s", blob,
                        g, w);
    }
out:
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = lc_err_set(err, lc_code_from_errno(errno), "write %s: %s", tmp, strerror(errno));
    lc_hasher_free(&h);
    archive_read_free(r);
    return rc;
}

static int put_file(struct archive *a, const char *name, const char *path, char *buf, lc_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "open %s: %s", path, strerror(errno));
    off_t size = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    int rc = header(a, name, 0, (int64_t)size, err);
    while (rc == 0) {
        ssize_t n = read(fd, buf, BUF_SIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = lc_err_set(err, lc_code_from_errno(errno), "read %s: %s", path, strerror(errno));
        if (n <= 0)
            break;
        if (archive_write_data(a, buf, (size_t)n) != n)
            rc = lc_err_set(err, LC_INTERNAL, "docker archive %s: %s", name,
                            archive_error_string(a));
    }
    close(fd);
    return rc;
}

/* "app:1" for docker.io/library/app:1, "user/app:1", "host:5000/app:1". */
static int familiar(const char *tag, char *buf, size_t cap, lc_err *err)
{
    lc_ref r;
    int rc = lc_ref_parse(tag, &r, err);
    if (rc < 0)
        return rc;
    if (r.tag[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "'%s': a docker archive needs a tag, not a "
                          "digest",
                          tag);
    const char *path = r.path;
    bool hub = strcmp(r.domain, LC_REF_DOCKER_HUB) == 0;
    if (hub && strncmp(path, "library/", 8) == 0)
        path += 8;
    snprintf(buf, cap, "%s%s%s:%s", hub ? "" : r.domain, hub ? "" : "/", path, r.tag);
    return 0;
}

int lc_docker_archive_write(const char *dest, const lc_image *img, const char *const *layer_paths,
                            const lc_strlist *tags, const char *tmpdir, lc_err *err)
{
    bool to_stdout = strcmp(dest, "-") == 0;
    char *cfg = NULL, *man = NULL, *mjson = NULL, *rjson = NULL;
    size_t clen, mlen;
    lc_digest cd;
    char tmp[PATH_MAX], cfg_hex[LC_HASH_HEX_LEN + 1], top[LC_HASH_HEX_LEN + 1] = "";
    char *buf = malloc(BUF_SIZE);
    json_t *layers = json_array(), *repotags = json_array(), *repos = json_object();
    struct archive *a = archive_write_new();
    size_t n = lc_image_layer_count(img);
    int rc = 0;
    snprintf(tmp, sizeof(tmp), "%s/docker-layer.%d", tmpdir, getpid());
    if (buf == NULL || layers == NULL || repotags == NULL || repos == NULL || a == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if ((rc = lc_layout_manifest(img, &cfg, &clen, &cd, &man, &mlen, NULL, err)) < 0)
        goto out;
    lc_digest_hex(&cd, cfg_hex);
    for (size_t i = 0; i < n; i++) {
        lc_image_layer l;
        lc_image_layer_at(img, i, &l);
        lc_digest_hex(&l.diff_id, top);
        char name[LC_HASH_HEX_LEN + 16];
        snprintf(name, sizeof(name), "%s/layer.tar", top);
        json_array_append_new(layers, json_string(name));
    }
    for (size_t i = 0; tags != NULL && i < tags->len; i++) {
        char fam[1024];
        if ((rc = familiar(tags->items[i], fam, sizeof(fam), err)) < 0)
            goto out;
        json_array_append_new(repotags, json_string(fam));
        char *colon = strrchr(fam, ':');
        *colon = '\0';
        json_t *repo = json_object_get(repos, fam);
        if (repo == NULL) {
            repo = json_object();
            json_object_set_new(repos, fam, repo);
        }
        json_object_set_new(repo, colon + 1, json_string(top));
    }
    char cfg_name[LC_HASH_HEX_LEN + 8];
    snprintf(cfg_name, sizeof(cfg_name), "%s.json", cfg_hex);
    json_t *m =
        json_pack("[{s:s, s:o, s:O}]", "Config", cfg_name, "RepoTags", repotags, "Layers", layers);
    repotags = NULL;
    mjson = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    rjson = json_dumps(repos, JSON_COMPACT | JSON_SORT_KEYS);
    if (mjson == NULL || rjson == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    /* No padding of the last block: a file and stdout get the same bytes. */
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        (to_stdout ? archive_write_open_fd(a, STDOUT_FILENO)
                   : archive_write_open_filename(a, dest)) != ARCHIVE_OK) {
        rc = lc_err_set(err, LC_INTERNAL, "create %s: %s", to_stdout ? "(stdout)" : dest,
                        archive_error_string(a));
        goto out;
    }
    /* Layers first (the big part), then the small documents. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        lc_image_layer l;
        lc_image_layer_at(img, i, &l);
        char hex[LC_HASH_HEX_LEN + 1], name[LC_HASH_HEX_LEN + 16];
        lc_digest_hex(&l.diff_id, hex);
        bool seen = false; /* the same layer twice: one entry */
        for (size_t k = 0; k < i; k++) {
            lc_image_layer o;
            lc_image_layer_at(img, k, &o);
            seen = seen || memcmp(o.diff_id.hash, l.diff_id.hash, LC_HASH_LEN) == 0;
        }
        if (seen)
            continue;
        snprintf(name, sizeof(name), "%s/layer.tar", hex);
        if ((rc = header(a, hex, 1, 0, err)) < 0 ||
            (rc = decompress(layer_paths[i], tmp, &l.diff_id, buf, err)) < 0 ||
            (rc = put_file(a, name, tmp, buf, err)) < 0)
            break;
        unlink(tmp);
    }
    if (rc == 0)
        rc = put_bytes(a, cfg_name, cfg, clen, err);
    if (rc == 0)
        rc = put_bytes(a, "manifest.json", mjson, strlen(mjson), err);
    if (rc == 0)
        rc = put_bytes(a, "repositories", rjson, strlen(rjson), err);
    if (rc == 0 && archive_write_close(a) != ARCHIVE_OK)
        rc = lc_err_set(err, LC_INTERNAL, "finish %s: %s", to_stdout ? "(stdout)" : dest,
                        archive_error_string(a));
out:
    unlink(tmp);
    if (a != NULL)
        archive_write_free(a);
    if (rc < 0 && !to_stdout)
        unlink(dest);
    json_decref(repotags);
    json_decref(layers);
    json_decref(repos);
    free(rjson);
    free(mjson);
    free(man);
    free(cfg);
    free(buf);
    return rc;
}

/* statedir.c - see statedir.h. */
#include "statedir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-worker/context/statcache.h"
#include "build-worker/registry/pull.h"

struct lc_statedir {
    char *path;
};

static const char *const subdirs[] = {"blobs", "blobs/sha256", "layers", "ac", "images", "tmp"};

static int mkdir_p(const char *path, lc_err *err)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return lc_err_set(err, LC_INVALID_ARGUMENT, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return lc_err_set(err, lc_code_from_errno(errno), "cannot create %s: %s", buf,
                              strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot create %s: %s", buf,
                          strerror(errno));
    return 0;
}

int lc_statedir_default(char *buf, size_t cap, lc_err *err)
{
    /* One rule for every command: the stat cache lives in the same place. */
    char *dir = lc_statcache_default_dir();
    if (dir == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int n = snprintf(buf, cap, "%s", dir);
    free(dir);
    if (n < 0 || (size_t)n >= cap)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "state directory path too long");
    return 0;
}

int lc_statedir_open(const char *path, lc_statedir **out, lc_err *err)
{
    char sub[PATH_MAX];
    int rc = mkdir_p(path, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        snprintf(sub, sizeof(sub), "%s/%s", path, subdirs[i]);
        if ((rc = mkdir_p(sub, err)) < 0)
            return rc;
    }
    lc_statedir *sd = calloc(1, sizeof(*sd));
    if (sd == NULL || (sd->path = realpath(path, NULL)) == NULL) {
        free(sd);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "cannot open state directory %s", path);
    }
    *out = sd;
    return 0;
}

void lc_statedir_close(lc_statedir **sd)
{
    if (sd == NULL || *sd == NULL)
        return;
    free((*sd)->path);
    free(*sd);
    *sd = NULL;
}

const char *lc_statedir_path(const lc_statedir *sd) { return sd->path; }

void lc_statedir_blob_path(const lc_statedir *sd, const lc_digest *d, char *buf, size_t cap)
{
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(d, hex);
    snprintf(buf, cap, "%s/blobs/sha256/%s", sd->path, hex);
}

bool lc_statedir_has_blob(const lc_statedir *sd, const lc_digest *d)
{
    char path[PATH_MAX];
    lc_statedir_blob_path(sd, d, path, sizeof(path));
    return access(path, F_OK) == 0;
}

/* Writes data to a fresh file under tmp/ and renames it to final. */
static int write_atomic(lc_statedir *sd, const char *final, const void *data, size_t len,
                        lc_err *err)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/tmp/write.XXXXXX", sd->path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot create %s: %s", tmp,
                          strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return lc_err_set(err, lc_code_from_errno(e), "cannot write %s: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    fchmod(fd, 0644);
    close(fd);
    if (rename(tmp, final) != 0) {
        int e = errno;
        unlink(tmp);
        return lc_err_set(err, lc_code_from_errno(e), "cannot rename to %s: %s", final,
                          strerror(e));
    }
    return 0;
}

int lc_statedir_put_blob(lc_statedir *sd, const void *data, size_t len, lc_digest *out,
                         lc_err *err)
{
    lc_digest d;
    char path[PATH_MAX];
    lc_digest_of(data, len, &d);
    if (out != NULL)
        *out = d;
    lc_statedir_blob_path(sd, &d, path, sizeof(path));
    if (access(path, F_OK) == 0)
        return 0;
    return write_atomic(sd, path, data, len, err);
}

int lc_statedir_adopt_blob(lc_statedir *sd, const char *tmp_path, const lc_digest *d, lc_err *err)
{
    char path[PATH_MAX];
    lc_statedir_blob_path(sd, d, path, sizeof(path));
    if (rename(tmp_path, path) != 0)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot move %s to %s: %s", tmp_path,
                          path, strerror(errno));
    return 0;
}

int lc_statedir_read_blob(lc_statedir *sd, const lc_digest *d, char **data, size_t *len,
                          lc_err *err)
{
    char path[PATH_MAX];
    lc_statedir_blob_path(sd, d, path, sizeof(path));
    int rc = 0;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return lc_err_set(err, errno == ENOENT ? LC_NOT_FOUND : lc_code_from_errno(errno),
                          "blob %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || (buf = malloc((size_t)st.st_size + 1)) == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "cannot read %s", path);
        goto out;
    }
    if (st.st_size > 0 && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        rc = lc_err_set(err, LC_INTERNAL, "short read of %s", path);
        goto out;
    }
    buf[st.st_size] = '\0';
    lc_digest got;
    lc_digest_of(buf, (size_t)st.st_size, &got);
    if (memcmp(got.hash, d->hash, LC_HASH_LEN) != 0) {
        rc = lc_err_set(err, LC_DATA_LOSS, "blob %s is corrupt (digest mismatch)", path);
        goto out;
    }
    *data = buf;
    *len = (size_t)st.st_size;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

bool lc_statedir_layer_dir(const lc_statedir *sd, const lc_digest *diff_id, char *buf, size_t cap)
{
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(diff_id, hex);
    snprintf(buf, cap, "%s/layers/%s", sd->path, hex);
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode);
}

int lc_statedir_mktemp(lc_statedir *sd, const char *prefix, char *buf, size_t cap, lc_err *err)
{
    if (snprintf(buf, cap, "%s/tmp/%s.XXXXXX", sd->path, prefix) >= (int)cap)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "temporary path too long");
    if (mkdtemp(buf) == NULL)
        return lc_err_set(err, lc_code_from_errno(errno), "cannot create %s: %s", buf,
                          strerror(errno));
    return 0;
}

/* Reads a small file holding "sha256:<hex>\n" into d. */
static int read_digest_file(const char *path, lc_digest *d, lc_err *err)
{
    char text[LC_DIGEST_OCI_LEN + 8] = {0};
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return lc_err_set(err, errno == ENOENT ? LC_NOT_FOUND : lc_code_from_errno(errno),
                          "%s: %s", path, strerror(errno));
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = '\0';
    int rc = lc_digest_parse_oci(text, d, err);
    if (rc < 0)
        lc_err_prefix(err, "%s", path);
    return rc;
}

static int write_digest_file(lc_statedir *sd, const char *path, const lc_digest *d, lc_err *err)
{
    char text[LC_DIGEST_OCI_LEN + 2];
    lc_digest_oci(d, text);
    strcat(text, "\n");
    return write_atomic(sd, path, text, strlen(text), err);
}

int lc_statedir_ac_get(lc_statedir *sd, const lc_digest *key, lc_digest *state, lc_err *err)
{
    char hex[LC_HASH_HEX_LEN + 1], path[PATH_MAX];
    lc_digest_hex(key, hex);
    snprintf(path, sizeof(path), "%s/ac/%s", sd->path, hex);
    return read_digest_file(path, state, err);
}

int lc_statedir_ac_put(lc_statedir *sd, const lc_digest *key, const lc_digest *state, lc_err *err)
{
    char hex[LC_HASH_HEX_LEN + 1], path[PATH_MAX];
    lc_digest_hex(key, hex);
    snprintf(path, sizeof(path), "%s/ac/%s", sd->path, hex);
    return write_digest_file(sd, path, state, err);
}

int lc_statedir_normalize_ref(const char *ref, char *buf, size_t cap, lc_err *err)
{
    size_t len = strlen(ref);
    if (len == 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "empty image name");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)ref[i];
        if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && !strchr("._-/:@", c) &&
            !(c >= 'A' && c <= 'Z'))
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "invalid image name '%s': character '%c' not allowed", ref, c);
    }
    if (ref[0] == '/' || ref[0] == '.' || strstr(ref, "..") || strstr(ref, "//"))
        return lc_err_set(err, LC_INVALID_ARGUMENT, "invalid image name '%s'", ref);
    /* A tag is a ':' after the last '/'. */
    const char *slash = strrchr(ref, '/');
    const char *colon = strchr(slash ? slash : ref, ':');
    int n = colon ? snprintf(buf, cap, "%s", ref) : snprintf(buf, cap, "%s:latest", ref);
    if (n < 0 || (size_t)n >= cap)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "image name too long: '%s'", ref);
    return 0;
}

/* images/<ref with '/' as '%2F'> keeps the store one flat directory. */
static void image_path(const lc_statedir *sd, const char *ref, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "%s/images/", sd->path);
    for (const char *p = ref; *p && n + 4 < cap; p++) {
        if (*p == '/') {
            memcpy(buf + n, "%2F", 3);
            n += 3;
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = '\0';
}

int lc_statedir_image_put(lc_statedir *sd, const char *ref, const lc_digest *state, lc_err *err)
{
    char norm[512], path[PATH_MAX];
    int rc = lc_statedir_normalize_ref(ref, norm, sizeof(norm), err);
    if (rc < 0)
        return rc;
    image_path(sd, norm, path, sizeof(path));
    return write_digest_file(sd, path, state, err);
}

int lc_statedir_image_get(lc_statedir *sd, const char *ref, lc_digest *state, lc_err *err)
{
    char norm[512], path[PATH_MAX];
    int rc = lc_statedir_normalize_ref(ref, norm, sizeof(norm), err);
    if (rc < 0)
        return rc;
    image_path(sd, norm, path, sizeof(path));
    rc = read_digest_file(path, state, err);
    if (rc == -LC_NOT_FOUND)
        return lc_err_set(err, LC_NOT_FOUND, "image '%s' is not in the local store %s/images",
                          norm, sd->path);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int lc_statedir_image_list(lc_statedir *sd, lc_statedir_image_fn fn, void *ctx, lc_err *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/images", sd->path);
    DIR *d = opendir(dir);
    if (d == NULL)
        return lc_err_set(err, lc_code_from_errno(errno), "%s: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, cap * sizeof(*names));
            if (grown == NULL) {
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
            names = grown;
        }
        if ((names[n] = strdup(e->d_name)) == NULL) {
            rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        n++;
    }
    qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char ref[512], path[PATH_MAX + 512];
        size_t k = 0;
        for (const char *p = names[i]; *p && k + 1 < sizeof(ref); p++) {
            if (strncmp(p, "%2F", 3) == 0) {
                ref[k++] = '/';
                p += 2;
            } else {
                ref[k++] = *p;
            }
        }
        ref[k] = '\0';
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        lc_digest state;
        if (read_digest_file(path, &state, NULL) == 0)
            rc = fn(ctx, ref, &state);
    }
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc;
}

int lc_statedir_resolve(void *ctx, const char *image, const char *platform, lc_digest *out,
                        lc_err *err)
{
    /* registry: a pulled image stands for its registry manifest digest, as
     * in builds (registry/pull.c keeps the record). */
    if (lc_pull_recorded(ctx, image, platform, out, NULL) == 0)
        return 0;
    return lc_statedir_image_get(ctx, image, out, err);
}

/* output.c - see output.h. */
#include "output.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-worker/layer/fsutil.h"
#include "build-worker/layer/tarwrite.h"
#include "build-worker/layer/untar.h"
#include "build-worker/oci/docker_archive.h"

static const char *const type_names[] = {"oci", "docker", "local", "tar"};

const char *lc_output_type_name(int type)
{
    return type >= 0 && type <= LC_OUTPUT_TAR ? type_names[type] : "?";
}

void lc_output_clear(lc_output *o)
{
    free(o->dest);
    lc_strlist_clear(&o->names);
    memset(o, 0, sizeof(*o));
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int lc_output_parse(const char *spec, lc_output *out, lc_err *err)
{
    memset(out, 0, sizeof(*out));
    int rc = 0;
    if (spec[0] == '\0')
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--output: empty value");
    /* buildx: a value without '=' is a destination: "-" a tar on stdout,
     * anything else a local directory. */
    if (strchr(spec, '=') == NULL) {
        out->type = strcmp(spec, "-") == 0 ? LC_OUTPUT_TAR : LC_OUTPUT_LOCAL;
        if ((out->dest = strdup(spec)) == NULL)
            return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        return 0;
    }
    char *copy = strdup(spec), *save = NULL;
    if (copy == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    int type = -1, tar = -1;
    for (char *kv = strtok_r(copy, ",", &save); kv && rc == 0; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (eq == NULL) {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT, "--output '%s': '%s' is not KEY=VALUE", spec,
                            kv);
            break;
        }
        *eq = '\0';
        const char *k = kv, *v = eq + 1;
        if (strcmp(k, "type") == 0) {
            for (int t = 0; t <= LC_OUTPUT_TAR; t++)
                if (strcmp(v, type_names[t]) == 0)
                    type = t;
            if (type < 0)
                rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                                "--output '%s': type %s is not supported (oci, docker, local, tar; "
                                "push to a registry with --push)",
                                spec, v);
        } else if (strcmp(k, "dest") == 0) {
            free(out->dest);
            if ((out->dest = strdup(v)) == NULL)
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        } else if (strcmp(k, "name") == 0) {
            if (lc_strlist_push(&out->names, v) < 0)
                rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        } else if (strcmp(k, "tar") == 0) {
            tar = strcmp(v, "true") == 0 ? 1 : strcmp(v, "false") == 0 ? 0 : -2;
            if (tar == -2)
                rc = lc_err_set(err, LC_INVALID_ARGUMENT, "--output '%s': tar=%s: true or false",
                                spec, v);
        } else {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                            "--output '%s': unknown key '%s' (type, dest, name, tar)", spec, k);
        }
    }
    free(copy);
    if (rc == 0 && type < 0)
        rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                        "--output '%s': no type= (oci, docker, local, tar)", spec);
    if (rc == 0 && (out->dest == NULL || out->dest[0] == '\0'))
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "--output '%s': dest= is required%s", spec,
                        type == LC_OUTPUT_LOCAL ? "" : " (dest=- writes to stdout)");
    if (rc == 0 && tar >= 0 && type != LC_OUTPUT_OCI)
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "--output '%s': tar= is for type=oci", spec);
    if (rc == 0 && type == LC_OUTPUT_LOCAL && strcmp(out->dest, "-") == 0)
        rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                        "--output '%s': a local output is a directory (type=tar,dest=- for a "
                        "tar on stdout)",
                        spec);
    if (rc < 0) {
        lc_output_clear(out);
        return rc;
    }
    out->type = type;
    out->tar =
        type == LC_OUTPUT_OCI &&
        (tar == 1 || (tar < 0 && (ends_with(out->dest, ".tar") || strcmp(out->dest, "-") == 0)));
    return 0;
}

static int check_parent(const lc_output *o, lc_err *err)
{
    char *copy = strdup(o->dest);
    if (copy == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    const char *parent = dirname(copy);
    struct stat st;
    int rc = 0;
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                        "--output type=%s: dest %s: directory %s does "
                        "not exist",
                        lc_output_type_name(o->type), o->dest, parent);
    else if (access(parent, W_OK) != 0)
        rc = lc_err_set(err, LC_PERMISSION_DENIED, "--output type=%s: dest %s: cannot write in %s",
                        lc_output_type_name(o->type), o->dest, parent);
    free(copy);
    return rc;
}

static bool dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return false;
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

int lc_output_check(const lc_output *o, size_t nplatforms, lc_err *err)
{
    if (o->type == LC_OUTPUT_DOCKER && nplatforms > 1)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "--output type=docker holds one platform (docker load reads no image "
                          "index): use type=oci for %zu platforms",
                          nplatforms);
    if (strcmp(o->dest, "-") == 0) {
        if (isatty(STDOUT_FILENO))
            return lc_err_set(
                err, LC_INVALID_ARGUMENT,
                "--output type=%s,dest=-: stdout is a terminal; redirect it to a file",
                lc_output_type_name(o->type));
        return 0;
    }
    struct stat st;
    bool exists = stat(o->dest, &st) == 0;
    switch (o->type) {
    case LC_OUTPUT_LOCAL:
        if (exists && (!S_ISDIR(st.st_mode) || !dir_is_empty(o->dest)))
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "--output type=local,dest=%s: must be a new or empty directory (the "
                              "image's deletions would apply to what is there)",
                              o->dest);
        break;
    case LC_OUTPUT_OCI:
        if (!o->tar && exists && !S_ISDIR(st.st_mode))
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "--output type=oci,dest=%s: exists and is not a directory", o->dest);
        if (o->tar && exists && S_ISDIR(st.st_mode))
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "--output type=oci,dest=%s: is a directory, not a tar file", o->dest);
        break;
    default:
        if (exists && S_ISDIR(st.st_mode))
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "--output type=%s,dest=%s: is a directory, not a file",
                              lc_output_type_name(o->type), o->dest);
        break;
    }
    return check_parent(o, err);
}

/* The image's filesystem under dir: every layer applied in order. */
static int apply_layers(const lc_layout_image *li, const char *dir, lc_err *err)
{
    int r = lc_fs_mkdir_p(dir);
    if (r < 0)
        return lc_err_set(err, lc_code_from_errno(-r), "create %s: %s", dir, strerror(-r));
    for (size_t i = 0; i < lc_image_layer_count(li->img); i++) {
        lc_image_layer l;
        lc_image_layer_at(li->img, i, &l);
        lc_untar_opts uo = {.mode = LC_UNTAR_APPLY,
                            .allow_devices = 1,
                            .xattrs = 1,
                            .expect_blob = &l.blob,
                            .expect_diff_id = &l.diff_id};
        int rc = lc_untar_file(li->layer_paths[i], dir, &uo, NULL, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* "linux_arm64", "linux_arm_v7": buildx's per-platform directory names. */
static void platform_dir(const char *platform, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", platform ? platform : "unknown");
    for (char *p = buf; *p; p++)
        if (*p == '/')
            *p = '_';
}

static int apply_all(const lc_layout_image *imgs, size_t n, const char *root, lc_err *err)
{
    if (n == 1)
        return apply_layers(&imgs[0], root, err);
    for (size_t i = 0; i < n; i++) {
        char sub[64], path[PATH_MAX];
        platform_dir(imgs[i].platform, sub, sizeof(sub));
        snprintf(path, sizeof(path), "%s/%s", root, sub);
        int rc = apply_layers(&imgs[i], path, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int copy_to_stdout(const char *path, lc_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return lc_err_set(err, lc_code_from_errno(errno), "open %s: %s", path, strerror(errno));
    char buf[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0)
                rc = lc_err_set(err, lc_code_from_errno(errno), "read %s", path);
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = lc_err_set(err, lc_code_from_errno(errno), "write to stdout: %s",
                                strerror(errno));
                goto out;
            }
            off += w;
        }
    }
out:
    close(fd);
    return rc;
}

/* type=tar: the filesystem(s) applied into scratch, then one tar of it. */
static int write_fs_tar(const lc_output *o, const lc_layout_image *imgs, size_t n,
                        const char *tmpdir, lc_err *err)
{
    char root[PATH_MAX], file[PATH_MAX];
    snprintf(root, sizeof(root), "%s/fs-tar.%d", tmpdir, getpid());
    snprintf(file, sizeof(file), "%s/fs-tar.%d.tar", tmpdir, getpid());
    bool to_stdout = strcmp(o->dest, "-") == 0;
    lc_layer_opts lo = {.compression = LC_LAYER_NONE, .epoch = -1};
    lc_layer_info info;
    int rc = apply_all(imgs, n, root, err);
    if (rc == 0)
        rc = lc_layer_write(root, to_stdout ? file : o->dest, &lo, &info, err);
    if (rc == 0 && to_stdout)
        rc = copy_to_stdout(file, err);
    lc_fs_rm_rf(root);
    unlink(file);
    return rc;
}

/* The OCI ref name is the tag part only, as skopeo and umoci expect. */
static void ref_name(const char *name, char *buf, size_t cap)
{
    const char *colon = name ? strrchr(name, ':') : NULL;
    snprintf(buf, cap, "%s", colon && !strchr(colon, '/') ? colon + 1 : "latest");
}

int lc_output_write(const lc_output *o, const lc_layout_image *imgs, size_t n,
                    const lc_strlist *tags, const char *tmpdir, lc_err *err)
{
    const lc_strlist *names = o->names.len > 0 ? &o->names : tags;
    char ref[160];
    switch (o->type) {
    case LC_OUTPUT_OCI:
        ref_name(names && names->len ? names->items[0] : NULL, ref, sizeof(ref));
        return lc_layout_write(o->dest, o->tar, imgs, n, ref, NULL, err);
    case LC_OUTPUT_DOCKER:
        if (n != 1)
            return lc_err_set(err, LC_INVALID_ARGUMENT, "type=docker holds one platform");
        return lc_docker_archive_write(o->dest, imgs[0].img, imgs[0].layer_paths, names, tmpdir,
                                       err);
    case LC_OUTPUT_LOCAL:
        return apply_all(imgs, n, o->dest, err);
    case LC_OUTPUT_TAR:
        return write_fs_tar(o, imgs, n, tmpdir, err);
    default:
        return lc_err_set(err, LC_INTERNAL, "unknown output type %d", o->type);
    }
}

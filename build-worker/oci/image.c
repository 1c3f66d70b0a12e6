/* image.c - the image state document (see image.h). */
#include "build-worker/oci/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

struct lc_image {
    json_t *root; /* {"schemaVersion":1,"layers":[...],"config":{OCI config}} */
};

#define DUMP_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

static const char *host_arch(void)
{
    struct utsname u;
    if (uname(&u) < 0)
        return "amd64";
    if (strcmp(u.machine, "x86_64") == 0)
        return "amd64";
    if (strcmp(u.machine, "aarch64") == 0)
        return "arm64";
    if (strncmp(u.machine, "arm", 3) == 0)
        return "arm";
    if (strcmp(u.machine, "i686") == 0 || strcmp(u.machine, "i386") == 0)
        return "386";
    if (strcmp(u.machine, "ppc64le") == 0 || strcmp(u.machine, "s390x") == 0 ||
        strcmp(u.machine, "riscv64") == 0)
        return strcmp(u.machine, "ppc64le") == 0 ? "ppc64le"
               : strcmp(u.machine, "s390x") == 0 ? "s390x"
                                                 : "riscv64";
    return "amd64";
}

static lc_image *wrap(json_t *root)
{
    if (root == NULL)
        return NULL;
    lc_image *img = malloc(sizeof(*img));
    if (img == NULL) {
        json_decref(root);
        return NULL;
    }
    img->root = root;
    return img;
}

lc_image *lc_image_new(const char *os, const char *arch)
{
    json_t *root =
        json_pack("{s:i, s:[], s:{s:s, s:s, s:{}, s:{s:s, s:[]}, s:[]}}", "schemaVersion", 1,
                  "layers", "config", "architecture", arch ? arch : host_arch(), "os",
                  os ? os : "linux", "config", "rootfs", "type", "layers", "diff_ids", "history");
    return wrap(root);
}

lc_image *lc_image_clone(const lc_image *img)
{
    return img ? wrap(json_deep_copy(img->root)) : NULL;
}

void lc_image_free(lc_image **img)
{
    if (img == NULL || *img == NULL)
        return;
    json_decref((*img)->root);
    free(*img);
    *img = NULL;
}

static json_t *cfg(const lc_image *img)
{
    return json_object_get(img->root, "config");
}

static json_t *inner(const lc_image *img)
{
    json_t *c = json_object_get(cfg(img), "config");
    if (!json_is_object(c)) {
        c = json_object();
        json_object_set_new(cfg(img), "config", c);
    }
    return c;
}

json_t *lc_image_config_obj(lc_image *img)
{
    return inner(img);
}

static int parse_digest_field(json_t *o, const char *key, lc_digest *d, lc_err *err)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (s == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "image state: layer has no \"%s\"", key);
    return lc_digest_parse_oci(s, d, err);
}

static int layer_from_json(json_t *l, lc_image_layer *out, lc_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(l))
        return lc_err_set(err, LC_INVALID_ARGUMENT, "image state: layer is not an object");
    int rc = parse_digest_field(l, "digest", &out->blob, err);
    if (rc == 0)
        rc = parse_digest_field(l, "diffID", &out->diff_id, err);
    if (rc < 0)
        return rc;
    json_t *sz = json_object_get(l, "size");
    const char *mt = json_string_value(json_object_get(l, "mediaType"));
    if (!json_is_integer(sz) || json_integer_value(sz) < 0 || mt == NULL ||
        strlen(mt) >= sizeof(out->media_type))
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "image state: layer needs a size >= 0 and a mediaType");
    out->blob.size = json_integer_value(sz);
    strcpy(out->media_type, mt);
    return 0;
}

static int validate(json_t *root, lc_err *err)
{
    json_t *layers = json_object_get(root, "layers");
    json_t *c = json_object_get(root, "config");
    if (!json_is_array(layers) || !json_is_object(c))
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "image state: needs a \"layers\" array and a \"config\" object");
    json_t *rootfs = json_object_get(c, "rootfs");
    json_t *ids = json_object_get(rootfs, "diff_ids");
    if (!json_is_array(ids) || json_array_size(ids) != json_array_size(layers))
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "image state: rootfs.diff_ids must list one diff_id per layer");
    for (size_t i = 0; i < json_array_size(layers); i++) {
        lc_image_layer l;
        int rc = layer_from_json(json_array_get(layers, i), &l, err);
        if (rc < 0)
            return rc;
        const char *id = json_string_value(json_array_get(ids, i));
        json_t *lid = json_object_get(json_array_get(layers, i), "diffID");
        if (id == NULL || strcmp(id, json_string_value(lid)) != 0)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "image state: layer %zu diffID differs from rootfs.diff_ids", i);
    }
    if (!json_is_array(json_object_get(c, "history")))
        json_object_set_new(c, "history", json_array());
    return 0;
}

int lc_image_parse(const char *json, size_t len, lc_image **out, lc_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "image state: %s at line %d col %d", je.text,
                          je.line, je.column);
    int rc = validate(root, err);
    if (rc < 0) {
        json_decref(root);
        return rc;
    }
    *out = wrap(root);
    return *out ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
}

static json_t *layer_to_json(const lc_image_layer *l)
{
    char d[LC_DIGEST_OCI_LEN + 1], id[LC_DIGEST_OCI_LEN + 1];
    lc_digest_oci(&l->blob, d);
    lc_digest_oci(&l->diff_id, id);
    return json_pack("{s:s, s:s, s:s, s:I}", "digest", d, "diffID", id, "mediaType", l->media_type,
                     "size", (json_int_t)l->blob.size);
}

int lc_image_from_config(const char *config_json, size_t len, const lc_image_layer *layers,
                         size_t nlayers, lc_image **out, lc_err *err)
{
    json_error_t je;
    json_t *c = json_loadb(config_json, len, 0, &je);
    if (!json_is_object(c)) {
        json_decref(c);
        return lc_err_set(err, LC_INVALID_ARGUMENT, "image config: %s", je.text);
    }
    json_t *ids = json_object_get(json_object_get(c, "rootfs"), "diff_ids");
    if (!json_is_array(ids) || json_array_size(ids) != nlayers) {
        size_t have = json_is_array(ids) ? json_array_size(ids) : 0;
        json_decref(c);
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "image config lists %zu diff_ids but the manifest has %zu layers", have,
                          nlayers);
    }
    json_t *arr = json_array();
    int rc = 0;
    for (size_t i = 0; i < nlayers && rc == 0; i++) {
        lc_image_layer l = layers[i];
        const char *id = json_string_value(json_array_get(ids, i));
        if (id == NULL || lc_digest_parse_oci(id, &l.diff_id, err) < 0) {
            rc = lc_err_set(err, LC_INVALID_ARGUMENT, "image config: bad diff_id %zu", i);
            break;
        }
        json_array_append_new(arr, layer_to_json(&l));
    }
    if (rc < 0) {
        json_decref(arr);
        json_decref(c);
        return rc;
    }
    json_t *root = json_pack("{s:i, s:o, s:o}", "schemaVersion", 1, "layers", arr, "config", c);
    rc = validate(root, err);
    if (rc < 0) {
        json_decref(root);
        return rc;
    }
    *out = wrap(root);
    return *out ? 0 : lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
}

static int dump(json_t *j, char **out, size_t *len, lc_err *err)
{
    char *s = json_dumps(j, DUMP_FLAGS);
    if (s == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory serializing JSON");
    *out = s;
    *len = strlen(s);
    return 0;
}

int lc_image_serialize(const lc_image *img, char **out, size_t *len, lc_err *err)
{
    return dump(img->root, out, len, err);
}

int lc_image_config_blob(const lc_image *img, char **out, size_t *len, lc_err *err)
{
    return dump(cfg(img), out, len, err);
}

size_t lc_image_layer_count(const lc_image *img)
{
    return json_array_size(json_object_get(img->root, "layers"));
}

int lc_image_layer_at(const lc_image *img, size_t i, lc_image_layer *out)
{
    json_t *l = json_array_get(json_object_get(img->root, "layers"), i);
    if (l == NULL)
        return -LC_OUT_OF_RANGE;
    return layer_from_json(l, out, NULL);
}

static json_t *history(const lc_image *img)
{
    json_t *h = json_object_get(cfg(img), "history");
    if (!json_is_array(h)) {
        h = json_array();
        json_object_set_new(cfg(img), "history", h);
    }
    return h;
}

/* Length of the valid UTF-8 sequence at s (1-4), 0 when invalid. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t n = (s[0] & 0xe0) == 0xc0   ? 2
               : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
    if (n == 0 || (n == 2 && s[0] < 0xc2) || (n == 4 && s[0] > 0xf4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate, above U+10FFFF */
    return n;
}

/* A JSON string of s with bytes that are not UTF-8 replaced by U+FFFD, as
 * Go's encoding/json writes them (a history text may quote file names). */
static json_t *json_string_lossy(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    size_t n = strlen(s);
    char *buf = malloc(n * 3 + 1), *o = buf;
    if (buf == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t l = utf8_len(p);
        if (l == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        } else {
            memcpy(o, p, l);
            o += l;
            p += l;
        }
    }
    *o = '\0';
    j = json_string(buf);
    free(buf);
    return j;
}

int lc_image_add_history(lc_image *img, const char *created_by, int empty_layer, lc_err *err)
{
    json_t *e = json_pack("{s:o}", "created_by", json_string_lossy(created_by ? created_by : ""));
    if (e == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    if (empty_layer)
        json_object_set_new(e, "empty_layer", json_true());
    const char *created = json_string_value(json_object_get(cfg(img), "created"));
    if (created != NULL)
        json_object_set_new(e, "created", json_string(created));
    if (json_array_append_new(history(img), e) < 0)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    return 0;
}

size_t lc_image_history_count(const lc_image *img)
{
    return json_array_size(history(img));
}

int lc_image_add_layer(lc_image *img, const lc_image_layer *layer, const char *created_by,
                       lc_err *err)
{
    json_t *l = layer_to_json(layer);
    char id[LC_DIGEST_OCI_LEN + 1];
    lc_digest_oci(&layer->diff_id, id);
    json_t *rootfs = json_object_get(cfg(img), "rootfs");
    if (!json_is_object(rootfs)) {
        rootfs = json_pack("{s:s, s:[]}", "type", "layers", "diff_ids");
        json_object_set_new(cfg(img), "rootfs", rootfs);
    }
    json_t *ids = json_object_get(rootfs, "diff_ids");
    if (l == NULL || ids == NULL ||
        json_array_append_new(json_object_get(img->root, "layers"), l) < 0 ||
        json_array_append_new(ids, json_string(id)) < 0)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    return lc_image_add_history(img, created_by, 0, err);
}

int lc_image_set_created(lc_image *img, const char *rfc3339)
{
    if (rfc3339 == NULL) {
        json_object_del(cfg(img), "created");
        return 0;
    }
    return json_object_set_new(cfg(img), "created", json_string(rfc3339)) ? -LC_INVALID_ARGUMENT
                                                                          : 0;
}

/* ---- config fields ---- */
static json_t *env_arr(lc_image *img)
{
    json_t *env = json_object_get(inner(img), "Env");
    if (!json_is_array(env)) {
        env = json_array();
        json_object_set_new(inner(img), "Env", env);
    }
    return env;
}

static int env_match(const char *kv, const char *key)
{
    size_t n = strlen(key);
    return kv != NULL && strncmp(kv, key, n) == 0 && kv[n] == '=';
}

int lc_image_set_env(lc_image *img, const char *key, const char *value)
{
    if (key == NULL || key[0] == '\0' || strchr(key, '=') != NULL)
        return -LC_INVALID_ARGUMENT;
    size_t len = strlen(key) + strlen(value ? value : "") + 2;
    char *kv = malloc(len);
    if (kv == NULL)
        return -LC_RESOURCE_EXHAUSTED;
    snprintf(kv, len, "%s=%s", key, value ? value : "");
    json_t *env = env_arr(img);
    json_t *s = json_string(kv);
    free(kv);
    if (s == NULL)
        return -LC_INVALID_ARGUMENT; /* not UTF-8 */
    for (size_t i = 0; i < json_array_size(env); i++) {
        if (env_match(json_string_value(json_array_get(env, i)), key))
            return json_array_set_new(env, i, s) < 0 ? -LC_RESOURCE_EXHAUSTED : 0;
    }
    return json_array_append_new(env, s) < 0 ? -LC_RESOURCE_EXHAUSTED : 0;
}

const char *lc_image_get_env(const lc_image *img, const char *key)
{
    json_t *env = json_object_get(json_object_get(cfg(img), "config"), "Env");
    for (size_t i = 0; i < json_array_size(env); i++) {
        const char *kv = json_string_value(json_array_get(env, i));
        if (env_match(kv, key))
            return kv + strlen(key) + 1;
    }
    return NULL;
}

int lc_image_env_list(const lc_image *img, lc_strlist *out)
{
    json_t *env = json_object_get(json_object_get(cfg(img), "config"), "Env");
    for (size_t i = 0; i < json_array_size(env); i++) {
        const char *kv = json_string_value(json_array_get(env, i));
        if (kv != NULL && lc_strlist_push(out, kv) < 0)
            return -LC_RESOURCE_EXHAUSTED;
    }
    return 0;
}

static int known(const char *field, const char *const *names)
{
    for (; *names; names++)
        if (strcmp(field, *names) == 0)
            return 1;
    return 0;
}

static const char *const strv_fields[] = {"Cmd", "Entrypoint", "Shell", NULL};
static const char *const str_fields[] = {"WorkingDir", "User", "StopSignal", NULL};

int lc_image_set_strv(lc_image *img, const char *field, const char *const *v, size_t n)
{
    if (!known(field, strv_fields))
        return -LC_INVALID_ARGUMENT;
    if (v == NULL) {
        json_object_del(inner(img), field);
        return 0;
    }
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, json_string(v[i])) < 0) {
            json_decref(a);
            return -LC_INVALID_ARGUMENT;
        }
    }
    return json_object_set_new(inner(img), field, a) < 0 ? -LC_RESOURCE_EXHAUSTED : 0;
}

int lc_image_get_strv(const lc_image *img, const char *field, lc_strlist *out)
{
    json_t *a = json_object_get(json_object_get(cfg(img), "config"), field);
    if (!json_is_array(a))
        return -LC_NOT_FOUND;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s != NULL && lc_strlist_push(out, s) < 0)
            return -LC_RESOURCE_EXHAUSTED;
    }
    return 0;
}

int lc_image_set_string(lc_image *img, const char *field, const char *value)
{
    if (strcmp(field, "Author") == 0) { /* MAINTAINER: the OCI top-level "author" */
        if (value == NULL)
            return json_object_del(cfg(img), "author"), 0;
        return json_object_set_new(cfg(img), "author", json_string(value)) < 0
                   ? -LC_INVALID_ARGUMENT
                   : 0;
    }
    if (!known(field, str_fields))
        return -LC_INVALID_ARGUMENT;
    if (value == NULL) {
        json_object_del(inner(img), field);
        return 0;
    }
    return json_object_set_new(inner(img), field, json_string(value)) < 0 ? -LC_INVALID_ARGUMENT
                                                                          : 0;
}

const char *lc_image_get_string(const lc_image *img, const char *field)
{
    if (strcmp(field, "Author") == 0)
        return json_string_value(json_object_get(cfg(img), "author"));
    return json_string_value(json_object_get(json_object_get(cfg(img), "config"), field));
}

static json_t *obj_field(lc_image *img, const char *field)
{
    json_t *o = json_object_get(inner(img), field);
    if (!json_is_object(o)) {
        o = json_object();
        json_object_set_new(inner(img), field, o);
    }
    return o;
}

int lc_image_set_label(lc_image *img, const char *key, const char *value)
{
    json_t *s = json_string(value ? value : "");
    if (s == NULL || key == NULL)
        return json_decref(s), -LC_INVALID_ARGUMENT;
    return json_object_set_new(obj_field(img, "Labels"), key, s) < 0 ? -LC_INVALID_ARGUMENT : 0;
}

int lc_image_add_exposed_port(lc_image *img, const char *port)
{
    if (port == NULL || port[0] == '\0')
        return -LC_INVALID_ARGUMENT;
    char buf[64];
    if (strchr(port, '/') == NULL)
        snprintf(buf, sizeof(buf), "%s/tcp", port);
    else
        snprintf(buf, sizeof(buf), "%s", port);
    return json_object_set_new(obj_field(img, "ExposedPorts"), buf, json_object()) < 0
               ? -LC_INVALID_ARGUMENT
               : 0;
}

int lc_image_add_volume(lc_image *img, const char *path)
{
    if (path == NULL || path[0] == '\0')
        return -LC_INVALID_ARGUMENT;
    return json_object_set_new(obj_field(img, "Volumes"), path, json_object()) < 0
               ? -LC_INVALID_ARGUMENT
               : 0;
}

int lc_image_add_onbuild(lc_image *img, const char *instruction)
{
    json_t *a = json_object_get(inner(img), "OnBuild");
    if (!json_is_array(a)) {
        a = json_array();
        json_object_set_new(inner(img), "OnBuild", a);
    }
    return json_array_append_new(a, json_string(instruction)) < 0 ? -LC_INVALID_ARGUMENT : 0;
}

size_t lc_image_onbuild_count(const lc_image *img, const char **first)
{
    json_t *a = json_object_get(inner(img), "OnBuild");
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    if (first != NULL)
        *first = n > 0 ? json_string_value(json_array_get(a, 0)) : NULL;
    return n;
}

int lc_image_set_healthcheck(lc_image *img, const lc_image_healthcheck *hc)
{
    if (hc == NULL) {
        json_object_del(inner(img), "Healthcheck");
        return 0;
    }
    json_t *t = json_array();
    for (size_t i = 0; i < hc->ntest; i++)
        json_array_append_new(t, json_string(hc->test[i]));
    json_t *h = json_pack("{s:o}", "Test", t);
    if (h == NULL)
        return -LC_RESOURCE_EXHAUSTED;
    if (hc->interval_ns > 0)
        json_object_set_new(h, "Interval", json_integer(hc->interval_ns));
    if (hc->timeout_ns > 0)
        json_object_set_new(h, "Timeout", json_integer(hc->timeout_ns));
    if (hc->start_period_ns > 0)
        json_object_set_new(h, "StartPeriod", json_integer(hc->start_period_ns));
    if (hc->start_interval_ns > 0)
        json_object_set_new(h, "StartInterval", json_integer(hc->start_interval_ns));
    if (hc->retries > 0)
        json_object_set_new(h, "Retries", json_integer(hc->retries));
    return json_object_set_new(inner(img), "Healthcheck", h) < 0 ? -LC_RESOURCE_EXHAUSTED : 0;
}

/* ---- platform (the config's os, architecture, variant) ---- */

int lc_image_set_platform(lc_image *img, const char *os, const char *arch, const char *variant)
{
    json_t *c = cfg(img);
    if (json_object_set_new(c, "os", json_string(os)) < 0 ||
        json_object_set_new(c, "architecture", json_string(arch)) < 0)
        return -LC_RESOURCE_EXHAUSTED;
    if (variant != NULL && variant[0] != '\0')
        return json_object_set_new(c, "variant", json_string(variant)) < 0 ? -LC_RESOURCE_EXHAUSTED
                                                                           : 0;
    json_object_del(c, "variant");
    return 0;
}

void lc_image_get_platform(const lc_image *img, char *buf, size_t cap)
{
    json_t *c = cfg(img);
    const char *os = json_string_value(json_object_get(c, "os"));
    const char *arch = json_string_value(json_object_get(c, "architecture"));
    const char *variant = json_string_value(json_object_get(c, "variant"));
    snprintf(buf, cap, "%s/%s%s%s", os ? os : "", arch ? arch : "", variant ? "/" : "",
             variant ? variant : "");
}

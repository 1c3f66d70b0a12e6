/* resource.c - see resource.h. */
#include "resource.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const reserved[] = {
    "blobs",         "uploads",    "compressed-blobs", "actions",
    "actionResults", "operations", "capabilities",
};

#define FORM_READ "[{instance}/]blobs/{hash}/{size}"
#define FORM_UPLOAD "[{instance}/]uploads/{uuid}/blobs/{hash}/{size}"

/* A printable excerpt of untrusted bytes for error messages (outlen >= 8). */
static void quote(const char *s, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '\\';
        if (o + (plain ? 1 : 4) + 4 > outlen) { /* keep room for "..." and the NUL */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (plain)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
    }
    out[o] = '\0';
}

static bool seg_eq(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && memcmp(s, word, len) == 0;
}

static const char *reserved_word(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (seg_eq(s, len, reserved[i]))
            return reserved[i];
    return NULL;
}

int lc_resource_check_instance(const char *instance, size_t len, lc_err *err)
{
    char q[160];
    if (len == 0)
        return 0;
    if (len > LC_INSTANCE_MAX)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "instance name is %zu bytes long; the limit is %d", len, LC_INSTANCE_MAX);
    if (memchr(instance, '\0', len) != NULL) {
        return lc_err_set(err, LC_INVALID_ARGUMENT, "instance name contains a NUL byte");
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && instance[i] != '/')
            continue;
        const char *seg = instance + start;
        size_t seglen = i - start;
        if (seglen == 0) {
            quote(instance, len, q, sizeof(q));
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "instance name '%s' has an empty path segment (leading, trailing "
                              "or double '/')",
                              q);
        }
        const char *word = reserved_word(seg, seglen);
        if (word != NULL) {
            quote(instance, len, q, sizeof(q));
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "instance name '%s' contains the reserved segment '%s'", q, word);
        }
        start = i + 1;
    }
    return 0;
}

/* Parses a canonical non-negative decimal. */
static int parse_size(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int lc_resource_parse(const char *name, size_t len, lc_resource_kind kind, lc_resource *out,
                      lc_err *err)
{
    const char *form = kind == LC_RESOURCE_READ ? FORM_READ : FORM_UPLOAD;
    char q[200];
    quote(name, len, q, sizeof(q));
    memset(out, 0, sizeof(*out));
    out->kind = kind;
    if (len == 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "resource name is empty: expected %s", form);
    if (len > LC_RESOURCE_MAX)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "resource name is %zu bytes long; the limit is %d", len, LC_RESOURCE_MAX);
    if (memchr(name, '\0', len) != NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "resource name '%s' contains a NUL byte", q);

    /* The instance ends before the first segment that names the resource kind. */
    size_t pos = 0;
    const char *marker = NULL;
    size_t marker_len = 0;
    for (;;) {
        const char *slash = memchr(name + pos, '/', len - pos);
        size_t seglen = slash ? (size_t)(slash - (name + pos)) : len - pos;
        if (seg_eq(name + pos, seglen, "blobs") || seg_eq(name + pos, seglen, "uploads") ||
            seg_eq(name + pos, seglen, "compressed-blobs")) {
            marker = name + pos;
            marker_len = seglen;
            break;
        }
        if (slash == NULL)
            break;
        pos += seglen + 1;
    }
    if (marker == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "resource name '%s' has no '%s' segment: expected %s", q,
                          kind == LC_RESOURCE_READ ? "blobs" : "uploads", form);
    if (seg_eq(marker, marker_len, "compressed-blobs"))
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "resource name '%s': compressed-blobs are not supported (the server "
                          "advertises only the IDENTITY compressor): use %s",
                          q, form);
    bool is_upload = seg_eq(marker, marker_len, "uploads");
    if (is_upload != (kind == LC_RESOURCE_UPLOAD))
        return lc_err_set(err, LC_INVALID_ARGUMENT, "resource name '%s': expected %s (%s)", q, form,
                          kind == LC_RESOURCE_READ ? "uploads/ names are for Write"
                                                   : "Write needs an uploads/{uuid}/ name");
    if (marker > name) {
        size_t ilen = (size_t)(marker - name) - 1; /* without the '/' before the marker */
        lc_err ierr = {0};
        if (ilen == 0)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "resource name '%s' starts with '/': expected %s", q, form);
        if (lc_resource_check_instance(name, ilen, &ierr) != 0)
            return lc_err_set(err, LC_INVALID_ARGUMENT, "resource name '%s': %s", q, ierr.msg);
        memcpy(out->instance, name, ilen);
        out->instance[ilen] = '\0';
    }

    /* Split what follows the marker into segments. */
    const char *segs[6];
    size_t seglens[6], nseg = 0;
    size_t p = (size_t)(marker - name) + marker_len;
    size_t want = is_upload ? 4 : 2; /* uuid, blobs, hash, size | hash, size */
    while (p < len && nseg < want) {
        p++; /* the '/' */
        const char *slash = memchr(name + p, '/', len - p);
        size_t seglen = slash ? (size_t)(slash - (name + p)) : len - p;
        segs[nseg] = name + p;
        seglens[nseg++] = seglen;
        p += seglen;
    }
    if (nseg < want)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "resource name '%s' is incomplete: expected %s",
                          q, form);
    if (p < len && !is_upload)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "resource name '%s' has extra segments after the size: expected %s", q,
                          form);
    /* Uploads may carry optional metadata segments after the size; ignored. */
    size_t h = 0;
    if (is_upload) {
        if (seglens[0] == 0 || seglens[0] > LC_UUID_MAX)
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "resource name '%s': the upload id must be 1..%d characters: "
                              "expected %s",
                              q, LC_UUID_MAX, form);
        memcpy(out->uuid, segs[0], seglens[0]);
        out->uuid[seglens[0]] = '\0';
        if (!seg_eq(segs[1], seglens[1], "blobs"))
            return lc_err_set(err, LC_INVALID_ARGUMENT,
                              "resource name '%s': expected 'blobs' after the upload id: "
                              "expected %s",
                              q, form);
        h = 2;
    }
    int64_t size = 0;
    if (parse_size(segs[h + 1], seglens[h + 1], &size) != 0) {
        char qs[64];
        quote(segs[h + 1], seglens[h + 1], qs, sizeof(qs));
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "resource name '%s': size '%s' is not a non-negative decimal integer "
                          "without leading zeros: expected %s",
                          q, qs, form);
    }
    lc_err derr = {0};
    if (lc_digest_parse(segs[h], seglens[h], size, &out->digest, &derr) != 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "resource name '%s': %s: expected %s", q,
                          derr.msg, form);
    return 0;
}

int lc_resource_format(const lc_resource *r, char *out, size_t outlen)
{
    char hex[LC_HASH_HEX_LEN + 1];
    lc_digest_hex(&r->digest, hex);
    const char *sep = r->instance[0] ? "/" : "";
    int n;
    if (r->kind == LC_RESOURCE_UPLOAD)
        n = snprintf(out, outlen, "%s%suploads/%s/blobs/%s/%lld", r->instance, sep, r->uuid, hex,
                     (long long)r->digest.size);
    else
        n = snprintf(out, outlen, "%s%sblobs/%s/%lld", r->instance, sep, hex,
                     (long long)r->digest.size);
    if (n < 0 || (size_t)n >= outlen)
        return -LC_INVALID_ARGUMENT;
    return n;
}

/* url.c - ADD <url> downloads (see url.h). */
#include "url.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool lc_url_is_http(const char *src)
{
    return strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0;
}

char *lc_url_name(const char *url)
{
    /* The path: after "scheme://host", up to a query or fragment. */
    const char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    if (p == NULL)
        return strdup("__unnamed__");
    size_t n = strcspn(p, "?#");
    while (n > 0 && p[n - 1] == '/') /* path.Base ignores trailing slashes */
        n--;
    const char *base = p;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '/')
            base = p + i + 1;
    size_t bl = (size_t)(p + n - base);
    if (bl == 0 || (bl == 1 && base[0] == '.') || (bl == 2 && strncmp(base, "..", 2) == 0))
        return strdup("__unnamed__");
    return strndup(base, bl);
}

int lc_url_parse_checksum(const char *s, lc_digest *out, lc_err *err)
{
    if (s == NULL || strncmp(s, "sha256:", 7) != 0 || lc_digest_parse_oci(s, out, NULL) != 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "--checksum=%s: need sha256:<64 hex digits>",
                          s ? s : "");
    out->size = 0;
    return 0;
}

typedef struct sink {
    int fd;
    lc_hasher *h;
    int64_t bytes;
    int io_errno;
} sink;

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb;
    lc_hasher_update(s->h, data, n);
    for (size_t off = 0; off < n;) {
        ssize_t w = write(s->fd, data + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            s->io_errno = errno;
            return 0; /* curl stops with CURLE_WRITE_ERROR */
        }
        off += (size_t)w;
    }
    s->bytes += (int64_t)n;
    return n;
}

int lc_url_fetch(const char *url, const char *dir, const lc_digest *expect, lc_url_file *out,
                 lc_err *err)
{
    memset(out, 0, sizeof(*out));
    out->mtime = -1;
    int rc = 0;
    sink s = {.fd = -1};
    CURL *h = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    if (!lc_url_is_http(url))
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s: only http:// and https:// are fetched",
                          url);
    out->url = strdup(url);
    out->name = lc_url_name(url);
    if (out->url == NULL || out->name == NULL || asprintf(&out->path, "%s/url.XXXXXX", dir) < 0) {
        out->path = NULL;
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if ((s.fd = mkstemp(out->path)) < 0) {
        rc = lc_err_set(err, lc_code_from_errno(errno), "download %s: %s: %s", url, out->path,
                        strerror(errno));
        free(out->path);
        out->path = NULL;
        goto out;
    }
    if ((s.h = lc_hasher_new()) == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        (h = curl_easy_init()) == NULL) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "download %s: cannot start libcurl", url);
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "layercache/0.1");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* stalled for a minute: give up */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_FILETIME, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (s.io_errno)
            rc = lc_err_set(err, lc_code_from_errno(s.io_errno), "download %s: write: %s", url,
                            strerror(s.io_errno));
        else if (status >= 400)
            rc = lc_err_set(err, status == 404 ? LC_NOT_FOUND : LC_UNAVAILABLE,
                            "download %s: HTTP status %ld", url, status);
        else
            rc = lc_err_set(err, LC_UNAVAILABLE, "download %s: %s", url,
                            errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_off_t ft = -1;
    if (curl_easy_getinfo(h, CURLINFO_FILETIME_T, &ft) == CURLE_OK && ft >= 0)
        out->mtime = (int64_t)ft;
    if (close(s.fd) < 0) {
        s.fd = -1;
        rc = lc_err_set(err, lc_code_from_errno(errno), "download %s: %s", url, strerror(errno));
        goto out;
    }
    s.fd = -1;
    lc_hasher_final(s.h, &out->digest);
    out->digest.size = s.bytes;
    if (expect != NULL && memcmp(expect->hash, out->digest.hash, LC_HASH_LEN) != 0) {
        char want[LC_DIGEST_OCI_LEN + 1], got[LC_DIGEST_OCI_LEN + 1];
        lc_digest_oci(expect, want);
        lc_digest_oci(&out->digest, got);
        rc = lc_err_set(err, LC_DATA_LOSS,
                        "download %s: checksum mismatch: --checksum says %s, "
                        "the content is %s",
                        url, want, got);
    }
out:
    if (h != NULL) {
        curl_easy_cleanup(h);
        curl_global_cleanup();
    }
    if (s.fd >= 0)
        close(s.fd);
    lc_hasher_free(&s.h);
    if (rc < 0)
        lc_url_file_clear(out);
    return rc;
}

void lc_url_file_clear(lc_url_file *f)
{
    if (f == NULL)
        return;
    if (f->path != NULL)
        unlink(f->path);
    free(f->path);
    free(f->url);
    free(f->name);
    memset(f, 0, sizeof(*f));
    f->mtime = -1;
}

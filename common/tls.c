/* tls.c - see tls.h. */
#include "tls.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PEM (1 << 20)

int lc_tls_read_pem(const char *path, const char *flag, char **out, lc_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s '%s': %s", flag, path, strerror(errno));
    char *buf = malloc(MAX_PEM + 1);
    if (buf == NULL) {
        fclose(f);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    size_t n = fread(buf, 1, MAX_PEM + 1, f);
    int bad = ferror(f);
    fclose(f);
    int rc = 0;
    if (n > MAX_PEM)
        n = MAX_PEM;
    buf[n] = '\0';
    if (bad)
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "%s '%s': read error", flag, path);
    else if (n == MAX_PEM)
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "%s '%s': larger than 1 MiB, not a PEM file",
                        flag, path);
    else if (memchr(buf, '\0', n) != NULL || strstr(buf, "-----BEGIN ") == NULL)
        rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                        "%s '%s': not a PEM file (expected '-----BEGIN ...' blocks)", flag, path);
    if (rc < 0) {
        OPENSSL_cleanse(buf, n);
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

void lc_tls_pem_free(char **pem)
{
    if (pem == NULL || *pem == NULL)
        return;
    OPENSSL_cleanse(*pem, strlen(*pem));
    free(*pem);
    *pem = NULL;
}

static X509 *first_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (b == NULL)
        return NULL;
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    return x;
}

int lc_tls_check_certs(const char *pem, const char *flag, lc_err *err)
{
    X509 *x = first_cert(pem);
    ERR_clear_error();
    if (x == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s: no X.509 certificate in the file", flag);
    X509_free(x);
    return 0;
}

int lc_tls_check_pair(const char *cert_pem, const char *cert_flag, const char *key_pem,
                      const char *key_flag, lc_err *err)
{
    int rc = 0;
    X509 *x = first_cert(cert_pem);
    EVP_PKEY *k = NULL;
    if (x == NULL) {
        rc =
            lc_err_set(err, LC_INVALID_ARGUMENT, "%s: no X.509 certificate in the file", cert_flag);
        goto out;
    }
    BIO *b = BIO_new_mem_buf(key_pem, -1);
    if (b != NULL) {
        k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        BIO_free(b);
    }
    if (k == NULL) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                        "%s: no private key in the file (or it is encrypted: give an "
                        "unencrypted PEM key)",
                        key_flag);
        goto out;
    }
    if (X509_check_private_key(x, k) != 1)
        rc = lc_err_set(err, LC_INVALID_ARGUMENT,
                        "%s does not hold the private key of the %s "
                        "certificate",
                        key_flag, cert_flag);
out:
    EVP_PKEY_free(k);
    X509_free(x);
    ERR_clear_error();
    return rc;
}

int lc_tls_load(const char *ca_path, const char *ca_flag, const char *cert_path,
                const char *cert_flag, const char *key_path, const char *key_flag, char **ca_pem,
                char **cert_pem, char **key_pem, lc_err *err)
{
    *ca_pem = *cert_pem = *key_pem = NULL;
    bool has_cert = cert_path != NULL && cert_path[0] != '\0';
    bool has_key = key_path != NULL && key_path[0] != '\0';
    if (has_cert != has_key)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "%s and %s go together: give both or neither",
                          cert_flag, key_flag);
    int rc = 0;
    if (ca_path != NULL && ca_path[0] != '\0') {
        rc = lc_tls_read_pem(ca_path, ca_flag, ca_pem, err);
        if (rc == 0)
            rc = lc_tls_check_certs(*ca_pem, ca_flag, err);
        if (rc < 0)
            goto fail;
    }
    if (has_cert) {
        rc = lc_tls_read_pem(cert_path, cert_flag, cert_pem, err);
        if (rc == 0)
            rc = lc_tls_read_pem(key_path, key_flag, key_pem, err);
        if (rc == 0)
            rc = lc_tls_check_pair(*cert_pem, cert_flag, *key_pem, key_flag, err);
        if (rc < 0)
            goto fail;
    }
    return 0;
fail:
    lc_tls_pem_free(key_pem);
    lc_tls_pem_free(cert_pem);
    lc_tls_pem_free(ca_pem);
    return rc;
}

/* tls.h - PEM files for gRPC's TLS credentials (server and cache client):
 * read them, and check them with OpenSSL before gRPC sees them, so a wrong
 * file is reported by flag and path at start-up rather than as a failed
 * handshake later. */
#ifndef LC_TLS_H
#define LC_TLS_H

#include "err.h"

/* Reads the PEM file at path (at most 1 MiB) into *out, a NUL-terminated
 * string owned by the caller (lc_tls_pem_free). flag ("--cacert") names
 * the option in messages. */
int lc_tls_read_pem(const char *path, const char *flag, char **out, lc_err *err);

/* Wipes and frees a PEM text (keys); NULLs *pem; accepts NULL. */
void lc_tls_pem_free(char **pem);

/* INVALID_ARGUMENT unless pem holds at least one X.509 certificate. */
int lc_tls_check_certs(const char *pem, const char *flag, lc_err *err);

/* INVALID_ARGUMENT unless cert_pem starts with a certificate and key_pem
 * holds the private key that matches it. */
int lc_tls_check_pair(const char *cert_pem, const char *cert_flag, const char *key_pem,
                      const char *key_flag, lc_err *err);

/* Reads and checks what a TLS client or server was given: cert and key
 * both or neither (then *cert_pem and *key_pem stay NULL), ca optional. On failure
 * nothing is left allocated. */
int lc_tls_load(const char *ca_path, const char *ca_flag, const char *cert_path,
                const char *cert_flag, const char *key_path, const char *key_flag, char **ca_pem,
                char **cert_pem, char **key_pem, lc_err *err);

#endif

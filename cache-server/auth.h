/* auth.h - bearer-token access control of layercache-server.
 *
 * The tokens file has one token per line, "<token> <role> [<name>]", with
 * '#' comments and blank lines. Roles nest: read < write (uploads and
 * UpdateActionResult) < admin (the layercache.v1.Admin service). Beside
 * them, untrusted (pull-request builds, laptops): the calls of write, but
 * its action cache writes are kept apart under its name, which it must
 * have (trust.h); everything else it may do is what read may. Callers
 * send "authorization: Bearer <token>".
 *
 * The table is immutable once loaded. A reload (SIGHUP) parses the file
 * into a new table and swaps a pointer; checks in flight keep using the
 * old table until they finish (a small two-counter RCU), so checks never
 * wait for a reload and a reload never drops a connection. A file that
 * does not parse leaves the old table in place.
 *
 * Tokens are kept only as SHA-256 hashes, compared in constant time, and
 * never appear in a message or log line.
 */
#ifndef LC_AUTH_H
#define LC_AUTH_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Ordered so that a plain `role >= LC_ROLE_WRITE` leaves untrusted out:
 * ask lc_auth_allows whether a role may do what another may. */
typedef enum lc_auth_role {
    LC_ROLE_NONE = 0,
    LC_ROLE_READ = 1,
    LC_ROLE_UNTRUSTED = 2,
    LC_ROLE_WRITE = 3,
    LC_ROLE_ADMIN = 4,
} lc_auth_role;

/* Longest token name kept (longer names are refused by the parser). */
#define LC_AUTH_NAME_MAX 128

/* Who a call authenticated as. */
typedef struct lc_auth_id {
    lc_auth_role role;
    char name[LC_AUTH_NAME_MAX]; /* the token's name; "" for anonymous or unnamed */
} lc_auth_id;

typedef struct lc_auth lc_auth;

/* Creates access control reading the tokens file at path (copied) and
 * loads it: fails with the file's first problem (line number, never the
 * token). allow_anonymous_read: callers without a token get the read role.
 * *out is owned by the caller (lc_auth_free). */
int lc_auth_open(const char *path, bool allow_anonymous_read, lc_auth **out, lc_err *err);

/* Same without a file: loads text (for tests and fuzzing; what names it in
 * messages). */
int lc_auth_open_text(const char *text, size_t len, const char *what, bool allow_anonymous_read,
                      lc_auth **out, lc_err *err);

/* Re-reads the file given to lc_auth_open (lc_auth_load_text for text) and
 * swaps the table in. On failure the old table stays. Reloads are
 * serialized; checks keep running meanwhile. */
int lc_auth_reload(lc_auth *a, lc_err *err);
int lc_auth_load_text(lc_auth *a, const char *text, size_t len, const char *what, lc_err *err);

/* Tokens in the current table. */
size_t lc_auth_count(lc_auth *a);

/* Waits for checks in flight on the current table to end, then frees;
 * NULLs *a; accepts NULL. No check may start afterwards. */
void lc_auth_free(lc_auth **a);

/* The role a method path needs: reads for the REAPI lookups and
 * ByteStream.Read/QueryWriteStatus, write for UpdateActionResult,
 * BatchUpdateBlobs and ByteStream.Write, admin for /layercache.v1.Admin/
 * and for any other path (unknown methods fail closed); none for
 * /grpc.health.v1.Health/ (probes carry no token and learn only that the
 * server is up). */
lc_auth_role lc_auth_method_role(const char *path);

/* "read", "untrusted", "write", "admin", "none". */
const char *lc_auth_role_name(lc_auth_role r);

/* Whether role have may call what needs role need: have >= need, and
 * untrusted may also call what needs write (its action cache writes are
 * kept apart by the handler, trust.h). */
bool lc_auth_allows(lc_auth_role have, lc_auth_role need);

/* Authenticates a token given as bytes (the HTTP side's bearer header):
 * 0 with *id filled, UNAUTHENTICATED when unknown. hash (may be NULL) gets
 * the token's SHA-256, which lc_auth_lookup_hash takes later (the HTTP
 * side's login sessions keep only that). a == NULL: admin, as
 * lc_auth_check. */
int lc_auth_lookup(lc_auth *a, const char *token, size_t len, lc_auth_id *id,
                   uint8_t hash[32], lc_err *err);
/* The same from a token's SHA-256: a token removed by a reload is
 * UNAUTHENTICATED from then on. */
int lc_auth_lookup_hash(lc_auth *a, const uint8_t hash[32], lc_auth_id *id, lc_err *err);

/* Whether callers without a token may read (--allow-anonymous-read). */
bool lc_auth_anonymous_read(const lc_auth *a);

/* Authenticates the caller from its request metadata and checks that it
 * has role need for method (a path, for messages). a == NULL (no tokens
 * file): everything is allowed, id->role = admin, id->name = "".
 * UNAUTHENTICATED for a missing (unless anonymous read covers need),
 * malformed or unknown token; PERMISSION_DENIED naming the role needed
 * when the token's role is lower. id is filled on success. */
int lc_auth_check(lc_auth *a, const grpc_metadata_array *md, lc_auth_role need, const char *method,
                  lc_auth_id *id, lc_err *err);

#endif

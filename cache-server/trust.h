/* trust.h - who sees which action cache entry (docs/SECURITY.md).
 *
 * A token of role write or admin (or any caller of a server without
 * --tokens) is a trusted writer: its UpdateActionResult replaces the
 * entry every caller gets, as before. A token of role untrusted (auth.h;
 * pull-request builds, laptops) writes an entry of its own, kept under its
 * name (store_ac.h): tokens of that name get it (their own result first,
 * then the trusted one), everyone else keeps getting the trusted entry or
 * a miss. Its CAS uploads are shared: blobs are content-addressed and
 * verified, so they cannot be poisoned.
 *
 * Promotion: an untrusted result becomes the entry everyone gets
 *   - when a trusted writer stores the identical result for the key (its
 *     entry lists the untrusted names it confirmed; their now redundant
 *     entries go), or
 *   - when --promote-quorum N (>= 2) distinct untrusted names stored the
 *     identical result for a key that has no trusted entry (trust
 *     PROMOTED; a quorum never replaces what a trusted writer stored).
 * "Identical" is the ActionResult without its execution_metadata (the
 * worker and the times differ between machines): outputs, digests, exit
 * code, stdout and stderr.
 *
 * An untrusted write whose result differs from the key's trusted entry is
 * a rejection (counted: a poisoning attempt or a non-reproducible step);
 * it is kept for its writer only. One that equals the trusted entry keeps
 * nothing of its own (the writer gets the trusted entry).
 *
 * Every read-modify-write of a key's entries holds lc_hits_lock of the
 * action (hits.h), so promotion, purge and the hit flush never interleave.
 */
#ifndef LC_TRUST_H
#define LC_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "digest.h"
#include "err.h"
#include "hits.h"
#include "layercache/v1/admin.pb-c.h"
#include "server.h"
#include "store.h"

/* cluster (forward.c): the client a peer replica forwards a call for, as
 * "<role> <name>", sent beside the cluster token. Honoured only on calls
 * that came in with the cluster token (lc_trust_caller_of). */
#define LC_TRUST_CALLER_MD "x-layercache-caller"

typedef struct lc_trust lc_trust;

/* Who an action cache call is for. */
typedef struct lc_trust_caller {
    lc_auth_role role;
    char name[LC_AUTH_NAME_MAX]; /* the token's name; "" anonymous or unnamed */
} lc_trust_caller;

typedef struct lc_trust_counts {
    uint64_t promoted_trusted;  /* keys whose untrusted results a trusted writer confirmed */
    uint64_t promoted_quorum;   /* keys promoted by --promote-quorum */
    uint64_t rejected;          /* untrusted writes that differ from the trusted entry */
    uint64_t untrusted_updates; /* untrusted UpdateActionResult calls stored */
} lc_trust_counts;

/* promote_quorum: 0 = off, else >= 2. NULL when out of memory. */
lc_trust *lc_trust_new(int promote_quorum);
void lc_trust_free(lc_trust **t);
int lc_trust_quorum(const lc_trust *t);
/* Current counters (t may be NULL: zeros). */
void lc_trust_counts_get(const lc_trust *t, lc_trust_counts *out);

/* Who ctx's call is for: the caller's role and token name; on a call a
 * peer replica forwarded with the cluster token, the client it names in
 * LC_TRUST_CALLER_MD (such calls arrive as an unnamed admin; nothing else
 * is, except on a server without tokens where everyone is admin anyway). */
void lc_trust_caller_of(const lc_call_ctx *ctx, lc_trust_caller *out);
/* The LC_TRUST_CALLER_MD value of c into out (always NUL-terminated). */
void lc_trust_caller_format(const lc_trust_caller *c, char *out, size_t cap);

/* Whether c writes trusted entries (write, admin) or its own (untrusted). */
bool lc_trust_is_untrusted(const lc_trust_caller *c);

/* The identity of a result for "identical": SHA-256 of ar packed without
 * execution_metadata. */
int lc_trust_result_id(const Build__Bazel__Remote__Execution__V2__ActionResult *ar, lc_digest *out,
                       lc_err *err);

/* What lc_trust_update did. */
typedef enum lc_trust_outcome {
    LC_TRUST_STORED,           /* trusted writer: the entry everyone gets */
    LC_TRUST_STORED_UNTRUSTED, /* kept for the untrusted writer only */
    LC_TRUST_MATCHED,          /* untrusted, identical to the trusted entry: nothing kept */
    LC_TRUST_PROMOTED,         /* untrusted, and the quorum is reached: everyone gets it */
} lc_trust_outcome;

/* Stores ar for (instance, action) as written by c under the rules above.
 * stored is the entry to write (action_result bytes, writer, created,
 * size_bytes set; trust and promoted_from are filled here). Holds the
 * action's lock in h. outcome and promoted (names promoted, may be NULL)
 * say what happened. */
int lc_trust_update(lc_trust *t, lc_store *s, lc_hits *h, const lc_trust_caller *c,
                    const char *instance, const lc_digest *action,
                    const Build__Bazel__Remote__Execution__V2__ActionResult *ar,
                    Layercache__V1__StoredActionResult *stored, lc_trust_outcome *outcome,
                    size_t *promoted, lc_err *err);

/* "trusted", "untrusted", "promoted". */
const char *lc_trust_name(Layercache__V1__Trust t);

#endif

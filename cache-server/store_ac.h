/* store_ac.h - action cache entries of untrusted writers (trust.h), and a
 * blob read that does not count as an access. Kept apart from store.c; it
 * uses the store's internals (store_internal.h).
 *
 * An untrusted entry lives in the "ac" column family beside the trusted
 * ones, under
 *   0x01 instance '\0' hash(32) size(8 BE) writer
 * where writer is the untrusted token's name (1..127 printable ASCII
 * bytes). Trusted keys have exactly 40 bytes after the first NUL and these
 * more, so lc_store_ac_scan and lc_store_ac_get never see them, and all
 * untrusted entries sort together (a scan of them reads nothing else),
 * those of one (instance, action) next to each other (one short prefix
 * scan finds every writer's result for a key: the quorum check). Values
 * are StoredActionResult (admin.proto), like trusted entries, and count in
 * lc_store_totals.ac_entries.
 *
 * Same conventions as store.h: thread-safe, 0 or a negative lc code.
 */
#ifndef LC_STORE_AC_H
#define LC_STORE_AC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"
#include "store.h"

/* Reads a whole blob like lc_store_blob_get, without recording an access
 * (so checking a blob does not keep it from eviction). NOT_FOUND if absent. */
int lc_store_blob_peek(lc_store *s, const lc_digest *d, uint8_t **data, size_t *len, lc_err *err);

/* The entry of writer for (instance, action), malloc'd; NOT_FOUND if none. */
int lc_store_ac_untrusted_get(lc_store *s, const char *instance, const lc_digest *action,
                              const char *writer, uint8_t **value, size_t *len, lc_err *err);

/* Writes (replaces) writer's entry atomically. */
int lc_store_ac_untrusted_put(lc_store *s, const char *instance, const lc_digest *action,
                              const char *writer, const uint8_t *value, size_t len, lc_err *err);

/* Removes writer's entry; 0 even if absent. */
int lc_store_ac_untrusted_delete(lc_store *s, const char *instance, const lc_digest *action,
                                 const char *writer, lc_err *err);

/* Removes writer's entry only if its value still equals expect (as
 * lc_store_ac_evict); *evicted tells whether it went. */
int lc_store_ac_untrusted_evict(lc_store *s, const char *instance, const lc_digest *action,
                                const char *writer, const uint8_t *expect, size_t expect_len,
                                bool *evicted, lc_err *err);

/* Visits untrusted entries (a consistent snapshot; values valid only during
 * the callback, which returns non-zero to stop): _of those of one
 * (instance, action), in writer order; _scan every one (instance NULL) or
 * those of one instance. */
typedef int (*lc_store_ac_untrusted_fn)(void *ctx, const char *instance, const lc_digest *action,
                                        const char *writer, const uint8_t *value, size_t len);
int lc_store_ac_untrusted_of(lc_store *s, const char *instance, const lc_digest *action,
                             lc_store_ac_untrusted_fn fn, void *ctx, lc_err *err);
int lc_store_ac_untrusted_scan(lc_store *s, const char *instance, lc_store_ac_untrusted_fn fn,
                               void *ctx, lc_err *err);

#endif

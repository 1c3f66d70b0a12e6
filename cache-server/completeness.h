/* completeness.h - the one rule for "can this action result be served?".
 *
 * The blobs an ActionResult needs are:
 *   - every output_files[].digest,
 *   - stdout_digest and stderr_digest when set,
 *   - every output_directories[].tree_digest (the REAPI Tree message) and
 *     root_directory_digest when set,
 *   - and every file inside each Tree: Tree.root.files[].digest and
 *     Tree.children[].files[].digest.
 * The empty blob is left out (every CAS holds it). A result is complete
 * when every blob it needs is in the CAS; an incomplete result is a miss,
 * never a hit that fails later (bazel-remote checks the same, Tree files
 * included). The action cache (GetActionResult), eviction (an entry that
 * lost a blob goes), the cluster (completeness across replicas) and the
 * Admin service (ListActions' `complete`) all list blobs with
 * lc_complete_needs, so they cannot disagree.
 *
 * Trees are read through a callback, so each user reads them where its
 * blobs are: the local store (recording the read, or not: eviction must
 * not keep a Tree alive by checking it), or the cluster's replicas.
 */
#ifndef LC_COMPLETENESS_H
#define LC_COMPLETENESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "digest.h"
#include "err.h"
#include "store.h"

/* Largest Tree blob read to list its files; a bigger Tree makes its
 * result unservable (FAILED_PRECONDITION), as a client could not read it
 * through BatchReadBlobs either. */
#define LC_COMPLETE_MAX_TREE (16u << 20)

/* Reads a whole blob into *data (malloc'd, the caller frees): 0, NOT_FOUND
 * when absent, another negative code on failure. */
typedef int (*lc_complete_fetch_fn)(void *ctx, const lc_digest *d, uint8_t **data, size_t *len,
                                    lc_err *err);

/* The blobs one result needs, sorted and without duplicates. */
typedef struct lc_complete_needs {
    lc_digest *v;
    size_t n, cap;
    uint64_t bytes;      /* sum of their sizes */
    size_t trees_absent; /* Tree blobs fetch did not find: their files are unknown */
    lc_digest bad_tree;  /* the Tree that failed with FAILED_PRECONDITION */
} lc_complete_needs;

/* Lists the blobs ar needs into out (emptied first; release with
 * lc_complete_needs_clear even on failure). Validates every digest it
 * reads: INVALID_ARGUMENT naming the field (an output file without a path
 * or digest, an output directory without a tree digest, a malformed
 * digest). fetch == NULL: Trees are not read (their files are not
 * listed; for callers that only validate). A Tree fetch answers NOT_FOUND:
 * the Tree's digest is listed (the caller will find it missing) and
 * trees_absent counts it. A Tree that cannot be read, is over
 * LC_COMPLETE_MAX_TREE, does not parse or names a malformed file digest:
 * FAILED_PRECONDITION (the result cannot be served), its digest in
 * out->bad_tree. */
int lc_complete_needs_of(const Build__Bazel__Remote__Execution__V2__ActionResult *ar,
                         lc_complete_fetch_fn fetch, void *fetch_ctx, lc_complete_needs *out,
                         lc_err *err);
void lc_complete_needs_clear(lc_complete_needs *n);

/* Fetchers over the local store: lc_complete_fetch_store reads through
 * lc_store_blob_get (the read counts as an access, as a client's would);
 * lc_complete_fetch_quiet does not (eviction). ctx is the lc_store. */
int lc_complete_fetch_store(void *store, const lc_digest *d, uint8_t **data, size_t *len,
                            lc_err *err);
int lc_complete_fetch_quiet(void *store, const lc_digest *d, uint8_t **data, size_t *len,
                            lc_err *err);

/* What lc_complete_check found. */
typedef struct lc_complete_report {
    size_t needed;   /* blobs needed */
    size_t missing;  /* of them not in the store */
    lc_digest first; /* the first missing one, when missing > 0 */
    uint64_t bytes;  /* sum of the needed blobs' sizes */
} lc_complete_report;

/* Is ar complete in the local store? 1 yes, 0 no (report says what is
 * missing; a Tree that cannot be served counts as missing with its own
 * digest), < 0 on a store failure or a malformed result (INVALID_ARGUMENT).
 * Present blobs are recorded as accessed (lc_store_find_missing), so a
 * result that keeps being hit keeps its blobs. rep may be NULL. */
int lc_complete_check(lc_store *s, const Build__Bazel__Remote__Execution__V2__ActionResult *ar,
                      lc_complete_report *rep, lc_err *err);

/* The same without recording any access (listings, eviction: checking a
 * result must not keep its blobs alive): Trees are read with
 * lc_store_blob_peek and presence comes from lc_store_blob_atimes. newest
 * (may be NULL) gets the newest access time of the needed blobs present
 * (INT64_MIN when none; the empty blob does not count). */
int lc_complete_check_quiet(lc_store *s,
                            const Build__Bazel__Remote__Execution__V2__ActionResult *ar,
                            lc_complete_report *rep, int64_t *newest, lc_err *err);

#endif

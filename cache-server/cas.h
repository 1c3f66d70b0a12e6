/* cas.h - request checks of the ContentAddressableStorage (cas.c) that the
 * cluster forwarding (forward.c) applies the same way before splitting a
 * request by owner. */
#ifndef LC_CAS_H
#define LC_CAS_H

#include "services.h"

/* instance_name, digest_function and the data total against
 * env->max_batch_bytes of a BatchUpdateBlobsRequest. INVALID_ARGUMENT. */
int lc_cas_check_update(const lc_svc_env *env, const LC_REAPI(BatchUpdateBlobsRequest) * req,
                        lc_err *err);

/* instance_name and digest_function of a FindMissingBlobsRequest, and each
 * blob_digests[i] converted into out[i] (n entries). INVALID_ARGUMENT
 * naming the first bad field. */
int lc_cas_check_find_missing(const LC_REAPI(FindMissingBlobsRequest) * req, lc_digest *out,
                              lc_err *err);

/* BatchReadBlobs asking for total bytes: INVALID_ARGUMENT above the limit. */
int lc_cas_check_read_total(const lc_svc_env *env, uint64_t total, lc_err *err);

#endif

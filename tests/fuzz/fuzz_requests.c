/* fuzz_requests.c - libFuzzer harness over every message the cache server
 * decodes from the network (and from its own RocksDB records).
 *
 * Input: byte 0 picks the message type (modulo the table below), the rest is
 * the serialized message. For each input the harness
 *   1. unpacks it with protobuf-c, as the server does for every request;
 *   2. walks the decoded message generically (every nested message, via the
 *      descriptors) and runs the server's validation on what it finds:
 *      lc_digest_parse on every Digest, lc_resource_parse (both kinds) on
 *      every resource_name, lc_resource_check_instance on every
 *      instance_name, checking round-trip properties where one exists
 *      (hex -> digest -> hex, name -> resource -> name -> resource);
 *   3. re-packs the message and checks that packing is stable
 *      (pack(unpack(pack(m))) == pack(m));
 *   4. hands the request to the server's own handler for its method (the
 *      method tables of services.h, on a real store in a temporary
 *      directory), exactly as server.c would after decoding: unary handlers,
 *      Read's open/next, Write's message/end with the raw bytes. Failures
 *      must be lc codes with a message; the handler must not crash or leak.
 * Byte 0 = 0xff feeds the rest straight to the resource parser instead.
 */
#include <stdbool.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "build/bazel/remote/execution/v2/remote_execution.pb-c.h"
#include "digest.h"
#include "err.h"
#include "google/bytestream/bytestream.pb-c.h"
#include "layercache/v1/admin.pb-c.h"
#include "log.h"
#include "resource.h"
#include "cache-server/services.h"
#include "cache-server/stats.h"
#include "cache-server/store.h"
#include "cache-server/write_request.h"
#include "cache-server/hits.h"
#include "build-worker/layer/fsutil.h"

static const ProtobufCMessageDescriptor *const messages[] = {
    /* requests of every served method */
    &build__bazel__remote__execution__v2__get_capabilities_request__descriptor,
    &build__bazel__remote__execution__v2__get_action_result_request__descriptor,
    &build__bazel__remote__execution__v2__update_action_result_request__descriptor,
    &build__bazel__remote__execution__v2__find_missing_blobs_request__descriptor,
    &build__bazel__remote__execution__v2__batch_update_blobs_request__descriptor,
    &build__bazel__remote__execution__v2__batch_read_blobs_request__descriptor,
    &build__bazel__remote__execution__v2__get_tree_request__descriptor,
    &google__bytestream__read_request__descriptor,
    &google__bytestream__write_request__descriptor,
    &google__bytestream__query_write_status_request__descriptor,
    &layercache__v1__get_stats_request__descriptor,
    &layercache__v1__purge_request__descriptor,
    &layercache__v1__list_actions_request__descriptor,
    /* request metadata header (requestmetadata-bin) and stored records */
    &build__bazel__remote__execution__v2__request_metadata__descriptor,
    &build__bazel__remote__execution__v2__action_result__descriptor,
    &layercache__v1__stored_action_result__descriptor,
    &build__bazel__remote__execution__v2__action__descriptor,
    &build__bazel__remote__execution__v2__command__descriptor,
};
#define N_MESSAGES (sizeof messages / sizeof messages[0])

/* The served method of each entry of messages[] (NULL: not a request). */
static const char *const method_paths[] = {
    "/build.bazel.remote.execution.v2.Capabilities/GetCapabilities",
    "/build.bazel.remote.execution.v2.ActionCache/GetActionResult",
    "/build.bazel.remote.execution.v2.ActionCache/UpdateActionResult",
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/FindMissingBlobs",
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs",
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchReadBlobs",
    "/build.bazel.remote.execution.v2.ContentAddressableStorage/GetTree",
    "/google.bytestream.ByteStream/Read",
    "/google.bytestream.ByteStream/Write",
    "/google.bytestream.ByteStream/QueryWriteStatus",
    "/layercache.v1.Admin/GetStats",
    "/layercache.v1.Admin/Purge",
    "/layercache.v1.Admin/ListActions",
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
};
_Static_assert(sizeof method_paths / sizeof method_paths[0] == N_MESSAGES, "one path per type");

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void check_err(int rc, const lc_err *err)
{
    if (rc == 0)
        return;
    /* Failures are INVALID_ARGUMENT with a message, never anything else. */
    CHECK(rc == -LC_INVALID_ARGUMENT);
    CHECK(err->code == LC_INVALID_ARGUMENT);
    CHECK(err->msg[0] != '\0');
    CHECK(strlen(err->msg) < LC_ERR_MSG_MAX);
}

static void fuzz_digest(const char *hex, int64_t size)
{
    lc_digest d;
    lc_err err = {0};
    size_t len = strlen(hex);
    int rc = lc_digest_parse(hex, len, size, &d, &err);
    check_err(rc, &err);
    if (rc == 0) {
        char back[LC_HASH_HEX_LEN + 1];
        CHECK(len == LC_HASH_HEX_LEN && size >= 0);
        lc_digest_hex(&d, back);
        CHECK(memcmp(back, hex, LC_HASH_HEX_LEN) == 0);
        CHECK(d.size == size);
    }
}

static void fuzz_resource(const char *name, size_t len)
{
    static const lc_resource_kind kinds[] = {LC_RESOURCE_READ, LC_RESOURCE_UPLOAD};
    for (size_t k = 0; k < 2; k++) {
        lc_resource r, r2;
        lc_err err = {0};
        int rc = lc_resource_parse(name, len, kinds[k], &r, &err);
        check_err(rc, &err);
        if (rc != 0)
            continue;
        CHECK(r.kind == kinds[k]);
        CHECK(r.digest.size >= 0);
        CHECK(lc_resource_check_instance(r.instance, strlen(r.instance), &err) == 0);
        /* Formatting a parsed name and parsing it again gives the same thing. */
        char buf[LC_RESOURCE_MAX + 64];
        int n = lc_resource_format(&r, buf, sizeof buf);
        CHECK(n > 0 && (size_t)n < sizeof buf);
        lc_err err2 = {0};
        CHECK(lc_resource_parse(buf, (size_t)n, kinds[k], &r2, &err2) == 0);
        CHECK(strcmp(r.instance, r2.instance) == 0);
        CHECK(strcmp(r.uuid, r2.uuid) == 0);
        CHECK(lc_digest_equal(&r.digest, &r2.digest));
        CHECK(r.digest.size == r2.digest.size);
    }
}

static void fuzz_instance(const char *s)
{
    lc_err err = {0};
    check_err(lc_resource_check_instance(s, strlen(s), &err), &err);
}

/* Set by walk when any message holds unknown fields. protobuf-c keeps them
 * as raw bytes, including ones it should have refused (an overlong tag of
 * field 0 is accepted on unpack and repacked as a tag 0 that unpack then
 * rejects), so the repack property is only checked without them. */
static int unknown_seen;

/* Visits every field of m (and of every nested message). */
static void walk(const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *desc = m->descriptor;
    CHECK(depth < 100); /* protobuf-c bounds recursion on unpack */
    if (m->n_unknown_fields > 0)
        unknown_seen = 1;
    if (desc == &build__bazel__remote__execution__v2__digest__descriptor) {
        const Build__Bazel__Remote__Execution__V2__Digest *d = (const void *)m;
        fuzz_digest(d->hash ? d->hash : "", d->size_bytes);
        return;
    }
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        const char *base = (const char *)m;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
            if (which != f->id)
                continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            void *const *arr = *(void *const *const *)(base + f->offset);
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                for (size_t j = 0; j < n; j++)
                    walk(arr[j], depth + 1);
            } else if (f->type == PROTOBUF_C_TYPE_STRING) {
                for (size_t j = 0; j < n; j++)
                    CHECK(arr[j] != NULL);
            }
            continue;
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);
            if (sub)
                walk(sub, depth + 1);
        } else if (f->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = *(const char *const *)(base + f->offset);
            if (!s)
                continue;
            if (strcmp(f->name, "resource_name") == 0)
                fuzz_resource(s, strlen(s));
            else if (strcmp(f->name, "instance_name") == 0)
                fuzz_instance(s);
        }
    }
}

static void check_repack(const ProtobufCMessageDescriptor *desc, const ProtobufCMessage *m)
{
    size_t n1 = protobuf_c_message_get_packed_size(m);
    uint8_t *b1 = malloc(n1 ? n1 : 1);
    CHECK(b1 != NULL);
    CHECK(protobuf_c_message_pack(m, b1) == n1);
    ProtobufCMessage *m2 = protobuf_c_message_unpack(desc, NULL, n1, b1);
    CHECK(m2 != NULL); /* what we packed must unpack */
    size_t n2 = protobuf_c_message_get_packed_size(m2);
    uint8_t *b2 = malloc(n2 ? n2 : 1);
    CHECK(b2 != NULL);
    CHECK(protobuf_c_message_pack(m2, b2) == n2);
    CHECK(n1 == n2 && memcmp(b1, b2, n1) == 0);
    free(b2);
    protobuf_c_message_free_unpacked(m2, NULL);
    free(b1);
}

/* ---- the server's handlers on a real store --------------------------------- */

static char store_dir[64];
static lc_svc_env env;
static grpc_metadata_array no_metadata;

static void teardown(void)
{
    lc_hits_free(&env.hits);
    lc_stats_free(&env.stats);
    lc_store_close(&env.store);
    if (store_dir[0])
        lc_fs_rm_rf(store_dir);
    grpc_shutdown();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    lc_err err = {0};
    lc_log_set_level(LC_LOG_OFF); /* handlers log every refusal */
    grpc_init();
    strcpy(store_dir, "/tmp/lc-fuzz-requests.XXXXXX");
    CHECK(mkdtemp(store_dir) != NULL);
    lc_store_options so = {0};
    if (lc_store_open(store_dir, &so, &env.store, &err) < 0) {
        fprintf(stderr, "fuzz_requests: store: %s\n", err.msg);
        abort();
    }
    env.stats = lc_stats_new();
    env.hits = lc_hits_new(env.store);
    CHECK(env.stats != NULL && env.hits != NULL);
    env.max_batch_bytes = 4 << 20;
    grpc_metadata_array_init(&no_metadata);
    atexit(teardown);
    return 0;
}

static void handler_result(int rc, const lc_err *err)
{
    if (rc >= 0)
        return;
    CHECK(rc > -100);
    CHECK(err->code == -rc);
    CHECK(err->msg[0] != '\0');
}

static void drop(grpc_byte_buffer **bb)
{
    if (*bb) {
        grpc_byte_buffer_destroy(*bb);
        *bb = NULL;
    }
}

static void call_handler(const char *path, const ProtobufCMessage *req, const uint8_t *raw,
                         size_t rawlen)
{
    const lc_method *m = lc_svc_find(path);
    CHECK(m != NULL); /* every request type has its method */
    lc_call_ctx ctx = {.env = &env,
                       .metadata = &no_metadata,
                       .deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC),
                       .method = m->path,
                       .role = LC_ROLE_ADMIN};
    lc_err err = {0};
    grpc_byte_buffer *resp = NULL;
    int rc;
    switch (m->kind) {
    case LC_METHOD_UNARY:
        rc = m->unary(&ctx, req, &resp, &err);
        handler_result(rc, &err);
        drop(&resp);
        break;
    case LC_METHOD_SERVER_STREAM: {
        void *state = NULL;
        rc = m->open(&ctx, req, &state, &err);
        handler_result(rc, &err);
        if (rc < 0) {
            if (m->free_state)
                m->free_state(state, false);
            break;
        }
        bool finished = false;                      /* a status was sent (server.c's final_sent) */
        for (int i = 0; i < 64 && !finished; i++) { /* bounded: reads may be long */
            grpc_byte_buffer *msg = NULL;
            lc_err e2 = {0};
            rc = m->next(state, &msg, &e2);
            handler_result(rc, &e2);
            finished = rc < 0 || msg == NULL;
            drop(&msg);
        }
        if (m->free_state)
            m->free_state(state, finished); /* not finished: like a client cancel */
        break;
    }
    case LC_METHOD_CLIENT_STREAM: {
        void *state = NULL;
        grpc_slice sl = grpc_slice_from_copied_buffer((const char *)raw, rawlen);
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
        grpc_slice_unref(sl);
        rc = m->message(&ctx, &state, bb, &resp, &err);
        grpc_byte_buffer_destroy(bb);
        handler_result(rc, &err);
        if (rc == 0) {
            lc_err e2 = {0};
            rc = m->end(state, &resp, &e2);
            handler_result(rc, &e2);
        }
        drop(&resp);
        if (m->free_state)
            m->free_state(state, true);
        break;
    }
    }
}

/* The server decodes WriteRequest in place (write_request.c): it must
 * agree with protobuf-c on every input, however the bytes are sliced. */
static void check_write_request(const uint8_t *p, size_t n, const ProtobufCMessage *m)
{
    size_t cut = n % 7 + 1, count = n == 0 ? 1 : (n + cut - 1) / cut;
    grpc_slice *sl = calloc(count, sizeof(*sl));
    if (sl == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        size_t off = i * cut, k = n - off < cut ? n - off : cut;
        sl[i] = grpc_slice_from_copied_buffer((const char *)p + off, n == 0 ? 0 : k);
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(sl, count);
    for (size_t i = 0; i < count; i++)
        grpc_slice_unref(sl[i]);
    free(sl);
    lc_write_request r;
    lc_err err = {0};
    int rc = lc_write_request_decode(bb, &r, &err);
    const Google__Bytestream__WriteRequest *w = (const void *)m;
    if (m == NULL) {
        CHECK(rc < 0);
    } else {
        const char *name = w->resource_name ? w->resource_name : "";
        size_t name_len = strlen(name);
        bool name_ok = name_len <= LC_RESOURCE_MAX; /* protobuf-c stops a name at NUL too */
        CHECK(rc == 0 || !name_ok || strstr(err.msg, "NUL") != NULL);
        if (rc == 0) {
            CHECK(strcmp(r.resource_name, name) == 0);
            CHECK(r.write_offset == w->write_offset);
            CHECK(r.finish_write == (w->finish_write != 0));
            CHECK(r.data_len == w->data.len);
            size_t off = 0;
            for (size_t i = 0; i < r.n_data; i++) {
                CHECK(memcmp(r.data[i].iov_base, w->data.data + off, r.data[i].iov_len) == 0);
                off += r.data[i].iov_len;
            }
            CHECK(off == w->data.len);
        }
    }
    lc_write_request_clear(&r);
    grpc_byte_buffer_destroy(bb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] == 0xff) {
        /* Resource names and digests straight from the bytes. */
        fuzz_resource((const char *)data + 1, size - 1);
        char *s = malloc(size);
        if (!s)
            return 0;
        memcpy(s, data + 1, size - 1);
        s[size - 1] = '\0';
        fuzz_digest(s, (int64_t)(size - 1));
        fuzz_instance(s);
        free(s);
        return 0;
    }
    const ProtobufCMessageDescriptor *desc = messages[data[0] % N_MESSAGES];
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, size - 1, data + 1);
    if (desc == &google__bytestream__write_request__descriptor)
        check_write_request(data + 1, size - 1, m);
    if (!m)
        return 0; /* refused: the server answers INVALID_ARGUMENT */
    CHECK(m->descriptor == desc);
    unknown_seen = 0;
    walk(m, 0);
    if (!unknown_seen)
        check_repack(desc, m);
    if (method_paths[data[0] % N_MESSAGES])
        call_handler(method_paths[data[0] % N_MESSAGES], m, data + 1, size - 1);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

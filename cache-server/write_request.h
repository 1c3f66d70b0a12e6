/* write_request.h - google.bytestream.WriteRequest decoded in place.
 *
 * ByteStream.Write carries the bulk of the bytes the server receives. The
 * generic path (flatten the message into one buffer, then protobuf-c unpack,
 * which copies `data` again) touched every byte twice and allocated two
 * message-sized buffers per message. This decoder copies out only the small
 * fields and leaves `data` where gRPC received it: a list of spans inside
 * the message's own slices, valid until lc_write_request_clear.
 *
 * Wire compatible with the public bytestream.proto: resource_name = 1
 * (string), write_offset = 2 (int64), finish_write = 3 (bool), data = 10
 * (bytes). Unknown fields are skipped; a repeated scalar field keeps its last
 * value, as protobuf requires.
 */
#ifndef LC_WRITE_REQUEST_H
#define LC_WRITE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/uio.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>

#include "err.h"
#include "resource.h"

typedef struct lc_write_request {
    char resource_name[LC_RESOURCE_MAX + 1]; /* "" if absent */
    int64_t write_offset;
    bool finish_write;
    /* data: n_data pieces pointing into the message's slices */
    struct iovec *data;
    size_t n_data;
    size_t data_len; /* their total */
    /* internal: the message's slices, borrowed from the reader */
    grpc_byte_buffer_reader reader;
    bool reader_live;
    grpc_slice *slices; /* owned array (the reader holds the references) */
    size_t n_slices;
} lc_write_request;

/* Decodes bb (which must outlive req's use). INVALID_ARGUMENT for anything
 * protobuf would reject and for a resource name longer than LC_RESOURCE_MAX or
 * containing NUL. Call lc_write_request_clear afterwards, on success or not. */
int lc_write_request_decode(grpc_byte_buffer *bb, lc_write_request *req, lc_err *err);

void lc_write_request_clear(lc_write_request *req);

#endif

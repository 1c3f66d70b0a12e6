/* grpc_msg.c - see grpc_msg.h. */
#include "grpc_msg.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <string.h>

grpc_byte_buffer *lc_grpc_pack(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice); /* the buffer took its own reference */
    return bb;
}

int lc_grpc_flatten(grpc_byte_buffer *bb, grpc_slice *out)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return -LC_INTERNAL;
    *out = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    return 0;
}

ProtobufCMessage *lc_grpc_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                                 lc_err *err)
{
    grpc_slice slice;
    if (lc_grpc_flatten(bb, &slice) != 0) {
        lc_err_set(err, LC_INTERNAL, "cannot read the %s message", desc->short_name);
        return NULL;
    }
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(slice),
                                                      GRPC_SLICE_START_PTR(slice));
    grpc_slice_unref(slice);
    if (msg == NULL)
        lc_err_set(err, LC_INVALID_ARGUMENT, "request is not a valid %s message", desc->name);
    return msg;
}

grpc_slice lc_grpc_slice_str(const char *s) { return grpc_slice_from_copied_string(s); }

int lc_grpc_slice_eq(grpc_slice s, const char *str)
{
    size_t len = strlen(str);
    return GRPC_SLICE_LENGTH(s) == len && memcmp(GRPC_SLICE_START_PTR(s), str, len) == 0;
}

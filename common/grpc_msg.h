/* grpc_msg.h - moving protobuf-c messages in and out of gRPC byte buffers. */
#ifndef LC_GRPC_MSG_H
#define LC_GRPC_MSG_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "err.h"

/* Serializes msg into a new byte buffer the caller owns
 * (grpc_byte_buffer_destroy). NULL when out of memory. */
grpc_byte_buffer *lc_grpc_pack(const ProtobufCMessage *msg);

/* Parses a received buffer (any number of slices) into a new message of
 * type desc, owned by the caller (protobuf_c_message_free_unpacked).
 * NULL with INVALID_ARGUMENT in err when the bytes are not such a message. */
ProtobufCMessage *lc_grpc_unpack(const ProtobufCMessageDescriptor *desc, grpc_byte_buffer *bb,
                                 lc_err *err);

/* Copies a received buffer into one contiguous slice (unref it when done). */
int lc_grpc_flatten(grpc_byte_buffer *bb, grpc_slice *out);

/* A gRPC slice holding a copy of a NUL-terminated string. */
grpc_slice lc_grpc_slice_str(const char *s);

/* Compares a (not NUL-terminated) slice with a string. */
int lc_grpc_slice_eq(grpc_slice s, const char *str);

#endif

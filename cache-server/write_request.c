/* write_request.c - see write_request.h. */
#include "write_request.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/slice.h>

enum { F_RESOURCE_NAME = 1, F_WRITE_OFFSET = 2, F_FINISH_WRITE = 3, F_DATA = 10 };
enum { WT_VARINT = 0, WT_64BIT = 1, WT_LEN = 2, WT_32BIT = 5 };

/* A read position in a list of slices. */
typedef struct cursor {
    const grpc_slice *s;
    size_t n, i, off;
    size_t left; /* bytes from here to the end */
} cursor;

/* Moves past exhausted slices; only with left > 0, so a byte remains. */
static void cur_settle(cursor *c)
{
    while (c->off == GRPC_SLICE_LENGTH(c->s[c->i])) {
        c->i++;
        c->off = 0;
    }
}

/* Advances n (<= left) bytes, copying them to dst unless it is NULL. */
static void cur_take(cursor *c, void *dst, size_t n)
{
    uint8_t *d = dst;
    c->left -= n;
    while (n > 0) {
        cur_settle(c);
        size_t avail = GRPC_SLICE_LENGTH(c->s[c->i]) - c->off;
        size_t k = avail < n ? avail : n;
        if (d != NULL) {
            memcpy(d, GRPC_SLICE_START_PTR(c->s[c->i]) + c->off, k);
            d += k;
        }
        c->off += k;
        n -= k;
    }
}

/* A varint of at most max bytes; any collects the low bits of its bytes. */
static int cur_varint_max(cursor *c, int max, uint64_t *v, uint8_t *any)
{
    *v = 0;
    for (int i = 0; i < max && c->left > 0; i++) {
        uint8_t b;
        cur_take(c, &b, 1);
        *any |= b & 0x7f;
        *v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0)
            return 0;
    }
    return -1; /* truncated or too long */
}

static int cur_varint(cursor *c, uint64_t *v)
{
    uint8_t any = 0;
    return cur_varint_max(c, 10, v, &any);
}

/* A field key, read exactly as protobuf-c reads it: at most 5 bytes, the
 * number kept to 32 bits, and a first byte with field bits 0 refused. */
static int cur_tag(cursor *c, uint32_t *field, int *wt)
{
    uint8_t b;
    if (c->left == 0)
        return -1;
    cur_take(c, &b, 1);
    if ((b & 0xf8) == 0)
        return -1;
    *wt = b & 7;
    *field = (uint32_t)(b & 0x7f) >> 3;
    for (unsigned shift = 4, i = 1; b & 0x80; shift += 7, i++) {
        if (i == 5 || c->left == 0)
            return -1;
        cur_take(c, &b, 1);
        *field |= (uint32_t)(b & 0x7f) << shift;
    }
    return 0;
}

/* Reads a length prefix (at most 5 bytes and INT_MAX, as protobuf-c
 * reads it) and checks the bytes are there. */
static int cur_prefix(cursor *c, size_t *len, uint8_t *any)
{
    uint64_t v;
    if (cur_varint_max(c, 5, &v, any) != 0 || v > INT_MAX || v > c->left)
        return -1;
    *len = (size_t)v;
    return 0;
}

static int cur_len(cursor *c, size_t *len)
{
    uint8_t any = 0;
    return cur_prefix(c, len, &any);
}

/* Skips a field's value; any collects the low seven bits of every byte
 * after the key (length prefix included): protobuf-c reads a bool that way,
 * whatever its wire type. */
static int skip_field(cursor *c, int wt, uint8_t *any)
{
    uint64_t v;
    size_t n = 0;
    switch (wt) {
    case WT_VARINT:
        return cur_varint_max(c, 10, &v, any);
    case WT_64BIT:
        n = 8;
        break;
    case WT_32BIT:
        n = 4;
        break;
    case WT_LEN:
        if (cur_prefix(c, &n, any) != 0)
            return -1;
        break;
    default: /* groups (3, 4) and undefined types: protobuf-c rejects them too */
        return -1;
    }
    if (n > c->left)
        return -1;
    for (; n > 0; n--) {
        uint8_t b;
        cur_take(c, &b, 1);
        *any |= b & 0x7f;
    }
    return 0;
}

/* Points req->data at len bytes from (i, off): one piece per slice touched. */
static void set_data(lc_write_request *req, size_t i, size_t off, size_t len)
{
    req->n_data = 0;
    req->data_len = len;
    for (; len > 0; i++, off = 0) {
        size_t k = GRPC_SLICE_LENGTH(req->slices[i]) - off;
        if (k > len)
            k = len;
        if (k == 0)
            continue;
        req->data[req->n_data].iov_base = GRPC_SLICE_START_PTR(req->slices[i]) + off;
        req->data[req->n_data++].iov_len = k;
        len -= k;
    }
}

static int collect_slices(grpc_byte_buffer *bb, lc_write_request *req)
{
    if (!grpc_byte_buffer_reader_init(&req->reader, bb))
        return -1;
    req->reader_live = true;
    size_t cap = 0;
    grpc_slice *sp;
    while (grpc_byte_buffer_reader_peek(&req->reader, &sp)) {
        if (req->n_slices == cap) {
            cap = cap ? cap * 2 : 16;
            grpc_slice *a = realloc(req->slices, cap * sizeof(*a));
            if (a == NULL)
                return -1;
            req->slices = a;
        }
        req->slices[req->n_slices++] = *sp; /* borrowed: the reader keeps the ref */
    }
    req->data = malloc((req->n_slices ? req->n_slices : 1) * sizeof(*req->data));
    return req->data != NULL ? 0 : -1;
}

int lc_write_request_decode(grpc_byte_buffer *bb, lc_write_request *req, lc_err *err)
{
    memset(req, 0, sizeof(*req));
    if (collect_slices(bb, req) != 0)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "cannot read the WriteRequest message");
    cursor c = {.s = req->slices, .n = req->n_slices};
    for (size_t i = 0; i < req->n_slices; i++)
        c.left += GRPC_SLICE_LENGTH(req->slices[i]);
    while (c.left > 0) {
        uint64_t v;
        uint32_t field;
        int wt;
        size_t len;
        if (cur_tag(&c, &field, &wt) != 0)
            goto bad;
        switch (field) {
        case F_RESOURCE_NAME:
            if (wt != WT_LEN || cur_len(&c, &len) != 0)
                goto bad;
            if (len > LC_RESOURCE_MAX)
                return lc_err_set(err, LC_INVALID_ARGUMENT,
                                  "resource_name is %zu bytes; at most %d are accepted", len,
                                  LC_RESOURCE_MAX);
            cur_take(&c, req->resource_name, len);
            req->resource_name[len] = '\0';
            if (strlen(req->resource_name) != len)
                return lc_err_set(err, LC_INVALID_ARGUMENT, "resource_name contains a NUL byte");
            break;
        case F_WRITE_OFFSET:
            if (wt != WT_VARINT || cur_varint(&c, &v) != 0)
                goto bad;
            req->write_offset = (int64_t)v;
            break;
        case F_FINISH_WRITE: {
            uint8_t any = 0;
            if (skip_field(&c, wt, &any) != 0)
                goto bad;
            req->finish_write = any != 0;
            break;
        }
        case F_DATA:
            if (wt != WT_LEN || cur_len(&c, &len) != 0)
                goto bad;
            if (len > 0) /* on the first data byte, not the end of a slice */
                cur_settle(&c);
            set_data(req, c.i, c.off, len);
            cur_take(&c, NULL, len);
            break;
        default: {
            uint8_t ignored = 0;
            if (skip_field(&c, wt, &ignored) != 0)
                goto bad;
        }
        }
    }
    return 0;
bad:
    return lc_err_set(err, LC_INVALID_ARGUMENT,
                      "request is not a valid google.bytestream.WriteRequest message");
}

void lc_write_request_clear(lc_write_request *req)
{
    free(req->data);
    free(req->slices);
    req->data = NULL;
    req->slices = NULL;
    req->n_slices = 0;
    if (req->reader_live)
        grpc_byte_buffer_reader_destroy(&req->reader);
    req->reader_live = false;
}

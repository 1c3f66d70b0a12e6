/* err.c - error codes and messages (see err.h). */
#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int lc_err_setv(lc_err *err, int code, const char *fmt, va_list ap)
{
    if (err != NULL) {
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return -code;
}

int lc_err_set(lc_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = lc_err_setv(err, code, fmt, ap);
    va_end(ap);
    return rc;
}

void lc_err_prefix(lc_err *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    char prefix[LC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    char joined[2 * LC_ERR_MSG_MAX + 2];
    int len = snprintf(joined, sizeof(joined), "%s: %s", prefix, err->msg);
    size_t n = len < 0 ? 0 : (size_t)len >= sizeof(err->msg) ? sizeof(err->msg) - 1 : (size_t)len;
    memcpy(err->msg, joined, n);
    err->msg[n] = '\0';
}

void lc_err_clear(lc_err *err)
{
    if (err != NULL) {
        err->code = LC_OK;
        err->msg[0] = '\0';
    }
}

const char *lc_code_name(int code)
{
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    };
    if (code < 0)
        code = -code;
    if ((size_t)code < sizeof(names) / sizeof(names[0]))
        return names[code];
    return "UNKNOWN";
}

int lc_code_from_errno(int errnum)
{
    switch (errnum) {
    case 0: return LC_OK;
    case ENOENT: return LC_NOT_FOUND;
    case EEXIST: return LC_ALREADY_EXISTS;
    case EACCES:
    case EPERM: return LC_PERMISSION_DENIED;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE: return LC_RESOURCE_EXHAUSTED;
    case EINVAL:
    case ENAMETOOLONG:
    case ENOTDIR:
    case EISDIR: return LC_INVALID_ARGUMENT;
    case ETIMEDOUT: return LC_DEADLINE_EXCEEDED;
    case ECONNREFUSED:
    case ECONNRESET:
    case EHOSTUNREACH: return LC_UNAVAILABLE;
    default: return LC_INTERNAL;
    }
}

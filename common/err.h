/* err.h - the one error convention of layercache.
 *
 * Functions return 0 on success or a negative lc code on failure, and when
 * they take an `lc_err *` they also leave a message a person can act on.
 * The codes are the gRPC status codes, so an error travels from RocksDB to
 * a client's terminal without translation tables. A function that fails
 * never calls the callback it was given (libuv's rule).
 */
#ifndef LC_ERR_H
#define LC_ERR_H

#include <stdarg.h>

enum lc_code {
    LC_OK = 0,
    LC_CANCELLED = 1,
    LC_UNKNOWN = 2,
    LC_INVALID_ARGUMENT = 3,
    LC_DEADLINE_EXCEEDED = 4,
    LC_NOT_FOUND = 5,
    LC_ALREADY_EXISTS = 6,
    LC_PERMISSION_DENIED = 7,
    LC_RESOURCE_EXHAUSTED = 8,
    LC_FAILED_PRECONDITION = 9,
    LC_ABORTED = 10,
    LC_OUT_OF_RANGE = 11,
    LC_UNIMPLEMENTED = 12,
    LC_INTERNAL = 13,
    LC_UNAVAILABLE = 14,
    LC_DATA_LOSS = 15,
    LC_UNAUTHENTICATED = 16,
};

#define LC_ERR_MSG_MAX 512

typedef struct lc_err {
    int code;                  /* enum lc_code, LC_OK when nothing failed */
    char msg[LC_ERR_MSG_MAX];  /* NUL-terminated, empty when code == LC_OK */
} lc_err;

/* Records code and a printf-style message in err (which may be NULL) and
 * returns -code, so failures read `return lc_err_set(err, ...);`. */
int lc_err_set(lc_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int lc_err_setv(lc_err *err, int code, const char *fmt, va_list ap);

/* Prepends "what: " to an existing message (adds context on the way up). */
void lc_err_prefix(lc_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void lc_err_clear(lc_err *err);

/* "INVALID_ARGUMENT", "NOT_FOUND", ... for any code (including unknown ones). */
const char *lc_code_name(int code);

/* Maps an errno value to the closest lc code (ENOSPC -> RESOURCE_EXHAUSTED). */
int lc_code_from_errno(int errnum);

#endif

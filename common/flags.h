/* flags.h - one table describes a program's options: the command-line
 * parser, the LAYERCACHE_* environment variables and --help all read it.
 *
 * Precedence: default < environment variable < command line.
 *
 *   static char *listen; static int64_t threads;
 *   static const lc_flag flags[] = {
 *       {"listen", 0, LC_FLAG_STRING, &listen, "0.0.0.0:9092", "ADDR", "gRPC address"},
 *       {"threads", 0, LC_FLAG_INT, &threads, "2", "N", "worker threads"},
 *   };
 *
 * Options several programs share are declared once, as a group, and a table
 * includes the group with one entry where its flags belong:
 *
 *   const lc_flag_group tls_group = LC_FLAG_GROUP(tls_flags);   (in tls.c)
 *   static const lc_flag flags[] = {..., LC_FLAG_INCLUDE_GROUP(tls_group), ...};
 *
 * The parser, the environment and --help then treat the group's flags as
 * the table's own. A name declared twice is a bug the parser reports.
 */
#ifndef LC_FLAGS_H
#define LC_FLAGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "strlist.h"

typedef enum lc_flag_type {
    LC_FLAG_STRING,   /* char **, owned copy (NULL when no default) */
    LC_FLAG_INT,      /* int64_t * */
    LC_FLAG_BOOL,     /* bool *; takes no value ("--x"), or --x=true|false */
    LC_FLAG_SIZE,     /* int64_t *, bytes; accepts 512, 64K, 10M, 2G, 1T (powers of 1024) */
    LC_FLAG_DURATION, /* int64_t *, seconds; accepts 90, 90s, 15m, 12h, 7d */
    LC_FLAG_LIST,     /* lc_strlist *; each occurrence appends (env: comma-separated) */
    LC_FLAG_INCLUDE,  /* const lc_flag_group *: its flags, in place of this entry */
} lc_flag_type;

typedef struct lc_flag {
    const char *name; /* long name without dashes: "max-size" */
    char short_name;  /* 'f' for -f, 0 for none */
    lc_flag_type type;
    void *target;
    const char *def;     /* default as text, NULL for none */
    const char *metavar; /* shown in --help: ADDR, N, DIR */
    const char *help;
    bool no_env; /* true: no LAYERCACHE_* variable for this flag */
    /* LC_FLAG_STRING only, optional: the value of the flag given alone
     * ("--pull" = "always", as Docker's bare --pull). Its value is then
     * "--x=V", or "--x V" when V is one of metavar's '|'-separated words. */
    const char *bare;
} lc_flag;

/* A table declared once and included by several (LC_FLAG_INCLUDE). */
typedef struct lc_flag_group {
    const lc_flag *flags;
    size_t n;
} lc_flag_group;

#define LC_FLAG_GROUP(table)                                                                       \
    {                                                                                              \
        (table), sizeof(table) / sizeof((table)[0])                                                \
    }
/* The entry that includes group (an lc_flag_group object) in a table. */
#define LC_FLAG_INCLUDE_GROUP(group)                                                               \
    {                                                                                              \
        "", 0, LC_FLAG_INCLUDE, (void *)&(group), NULL, NULL, "", true                             \
    }

/* Most flags one command may take, included groups counted. */
#define LC_FLAGS_MAX 128

/* Result of a parse that asked for help rather than failing. */
#define LC_FLAGS_HELP 1

/* Applies defaults, then environment variables named env_prefix + NAME in
 * upper case with '-' as '_' (LAYERCACHE_MAX_SIZE), then argv[first..].
 * Arguments that are not flags (and everything after "--") are appended to
 * positional (if NULL, any positional argument is an error).
 * Returns 0, LC_FLAGS_HELP when -h/--help was given, or a negative code
 * with a message naming the bad flag (INTERNAL: a name declared twice, or
 * more than LC_FLAGS_MAX flags). */
int lc_flags_parse(const lc_flag *flags, size_t n, const char *env_prefix, int argc, char **argv,
                   int first, lc_strlist *positional, lc_err *err);

/* Prints "usage" and then one block per flag with its env var and default
 * (included groups' flags where they are included). */
void lc_flags_usage(FILE *out, const char *usage, const lc_flag *flags, size_t n,
                    const char *env_prefix);

/* Frees the strings and lists the table's targets own, included groups' too. */
void lc_flags_free(const lc_flag *flags, size_t n);

/* The value parsers, for callers with their own syntax. */
int lc_parse_size(const char *s, int64_t *out, lc_err *err);
int lc_parse_duration(const char *s, int64_t *out, lc_err *err);

#endif

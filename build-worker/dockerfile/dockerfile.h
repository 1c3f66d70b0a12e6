/* dockerfile.h - the Dockerfile front end: AST, parser, stage resolution.
 *
 * Parsing follows BuildKit's parser (frontend/dockerfile/parser + instructions):
 * directives, continuations (comment and empty lines inside a continuation are
 * skipped), heredocs, flags, JSON vs shell form, ENV/LABEL/ARG pairs. The AST
 * keeps the text as written (unexpanded); lc_df_plan_build() evaluates a file
 * for a target: ARG scoping, ENV, expansion, WORKDIR, stage dependencies.
 *
 * Ownership: an lc_df_file owns every string and array reachable from it (one
 * arena); they live until lc_df_file_free(). An lc_df_plan likewise owns its
 * own data but points into the file it was built from: free the plan first.
 * Errors: "FILE:LINE:COL: message" in lc_err, code LC_INVALID_ARGUMENT
 * (LC_NOT_FOUND for an unknown --target, LC_RESOURCE_EXHAUSTED for memory).
 */
#ifndef LC_DOCKERFILE_H
#define LC_DOCKERFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "expand.h"

enum lc_df_kind {
    LC_DF_FROM,
    LC_DF_RUN,
    LC_DF_CMD,
    LC_DF_ENTRYPOINT,
    LC_DF_SHELL,
    LC_DF_COPY,
    LC_DF_ADD,
    LC_DF_ENV,
    LC_DF_ARG,
    LC_DF_LABEL,
    LC_DF_EXPOSE,
    LC_DF_USER,
    LC_DF_WORKDIR,
    LC_DF_VOLUME,
    LC_DF_STOPSIGNAL,
    LC_DF_HEALTHCHECK,
    LC_DF_ONBUILD,
    LC_DF_MAINTAINER,
    LC_DF_KIND_COUNT
};

/* "FROM", "RUN", ... ("?" for out-of-range values). */
const char *lc_df_kind_name(enum lc_df_kind kind);

/* Whether Docker expands variables in this instruction's arguments (ADD COPY
 * ENV EXPOSE FROM LABEL STOPSIGNAL USER VOLUME WORKDIR ARG; not RUN CMD
 * ENTRYPOINT SHELL HEALTHCHECK MAINTAINER, and ONBUILD only when triggered). */
bool lc_df_kind_expands(enum lc_df_kind kind);

typedef struct lc_df_pos {
    const char *file; /* the filename given to the parser */
    int line;         /* 1-based */
    int col;          /* 1-based, in bytes */
} lc_df_pos;

/* "--name=value" before the arguments. Repeatable flags (--mount,
 * --exclude) appear once per occurrence, in source order. */
typedef struct lc_df_flag {
    const char *name;  /* without the dashes: "from", "chown", "mount" */
    const char *value; /* quotes/backslashes removed as BuildKit does; NULL for a bare "--link" */
    lc_df_pos pos;
} lc_df_flag;

typedef struct lc_df_heredoc {
    const char *name;    /* delimiter, quotes removed: "EOF" */
    const char *content; /* every line up to the delimiter, each with its '\n';
                          * leading tabs already removed when strip_tabs */
    bool strip_tabs;     /* "<<-EOF" */
    bool expand;         /* false when any part of the delimiter was quoted */
    int fd;              /* "3<<EOF" -> 3; 0 when absent */
} lc_df_heredoc;

/* ENV / LABEL / ARG pair, raw: quotes and escapes still in key and value
 * (lc_df_expand_word() removes them). ARG NAME without "=": value NULL. */
typedef struct lc_df_kv {
    const char *key;
    const char *value;
} lc_df_kv;

typedef struct lc_df_instr lc_df_instr;
struct lc_df_instr {
    enum lc_df_kind kind;
    lc_df_pos pos;        /* of the keyword */
    int end_line;         /* last physical line, heredoc bodies included */
    const char *original; /* keyword + rest, continuations joined into one line */
    const char *rest;     /* text after keyword and flags, trimmed */

    lc_df_flag *flags;
    size_t nflags;

    /* Arguments, by instruction:
     *  RUN CMD ENTRYPOINT SHELL, HEALTHCHECK CMD: json ? the JSON strings
     *      : one element, the command text as written;
     *  COPY ADD VOLUME: json ? the strings : the whitespace-separated words
     *      (raw), the last one is the destination for COPY/ADD;
     *  FROM: image [AS name] words; EXPOSE: words; USER WORKDIR STOPSIGNAL
     *      MAINTAINER: one element, the text; ENV LABEL ARG: see kvs. */
    bool json;
    const char **args;
    size_t nargs;

    lc_df_kv *kvs; /* ENV, LABEL, ARG; one per pair, in order */
    size_t nkvs;

    lc_df_heredoc *heredocs; /* RUN, COPY, ADD only */
    size_t nheredocs;

    lc_df_instr *sub;      /* ONBUILD: the triggered instruction */
    bool healthcheck_none; /* HEALTHCHECK NONE (args empty) */
};

/* Lookup helpers; NULL / false when absent. For repeatable flags the first. */
const lc_df_flag *lc_df_instr_flag(const lc_df_instr *in, const char *name);

typedef struct lc_df_stage {
    int index;               /* 0-based, in file order */
    const char *name;        /* lowercased "AS" name, or NULL */
    const char *base;        /* image reference as written (unexpanded) */
    const char *platform;    /* --platform value as written, or NULL */
    const lc_df_instr *from; /* the FROM instruction */
    lc_df_instr *instrs;     /* the instructions after FROM */
    size_t ninstrs;
} lc_df_stage;

typedef struct lc_df_directive {
    const char *name; /* lowercased: "syntax", "escape", "check" */
    const char *value;
    lc_df_pos pos;
} lc_df_directive;

typedef struct lc_df_file {
    const char *filename;
    char escape;        /* '\\' or '`' */
    const char *syntax; /* "# syntax=" value or NULL */
    lc_df_directive *directives;
    size_t ndirectives;
    lc_df_instr *global_args; /* ARG instructions before the first FROM */
    size_t nglobal_args;
    lc_df_stage *stages;
    size_t nstages;
    void *priv_; /* private: the arena */
} lc_df_file;

/* Parses len bytes of buf (need not be NUL-terminated). filename is used in
 * positions and messages. On success *out is a new file (caller frees). */
int lc_df_parse(const char *buf, size_t len, const char *filename, lc_df_file **out, lc_err *err);
/* Reads path and parses it, naming it path in messages. */
int lc_df_parse_path(const char *path, lc_df_file **out, lc_err *err);
void lc_df_file_free(lc_df_file **f);

/* Stage by name (case-insensitive) or decimal index; -1 when neither. */
int lc_df_stage_find(const lc_df_file *f, const char *name_or_index);

/* A stable, line-oriented text rendering of the AST (golden tests). Returns
 * a malloc'd string (caller frees) or NULL when out of memory. */
char *lc_df_dump(const lc_df_file *f);

/* ---- evaluation: scope, expansion, stages --------------------------------- */

typedef struct lc_df_plan_opts {
    const char *target;          /* stage name or index; NULL = last stage */
    const lc_df_var *build_args; /* --build-arg NAME=VALUE */
    size_t nbuild_args;
    const char *target_platform; /* "linux/amd64" when NULL */
    const char *build_platform;  /* target_platform when NULL */
    /* Optional: the config Env of an external base image (as FROM names it
     * after expansion, for the stage's platform), so `ENV PATH=/x:$PATH`
     * sees it. NULL or returning n=0 means none; the array needs to stay
     * valid only until the next call. */
    const lc_df_var *(*image_env)(void *ctx, const char *image, const char *platform, size_t *n);
    void *image_env_ctx;
} lc_df_plan_opts;

/* The PATH BuildKit gives a Linux stage whose base image sets none. */
#define LC_DF_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* One instruction of a stage, evaluated with the scope Docker gives it. */
typedef struct lc_df_step {
    const lc_df_instr *instr;
    /* Scope in effect when the instruction runs (before its own effect). */
    lc_df_var *env; /* ENV of the stage: the base image's config Env (and
                     * PATH, as BuildKit sets it when the base has none),
                     * inherited from a base stage, then ENV instructions;
                     * in order of first definition, values expanded */
    size_t nenv;
    lc_df_var *args; /* ARGs declared in the stage so far that have a value
                      * (--build-arg, default, or global default), in
                      * declaration order; the ones RUN sees besides env */
    size_t nargs;
    /* The instruction after Docker's expansion (only for kinds where
     * lc_df_kind_expands(); otherwise the raw values, quotes intact):
     * words = args of COPY ADD EXPOSE VOLUME USER WORKDIR STOPSIGNAL;
     * kvs = ENV LABEL ARG (ARG: value NULL when it has none). */
    const char **words;
    size_t nwords;
    lc_df_kv *kvs;
    size_t nkvs;
    lc_df_flag *flags; /* flags with --from --chown --chmod --platform
                        * --mount expanded as BuildKit does */
    size_t nflags;
    const char **heredocs; /* COPY/ADD: each heredoc's content as the file
                            * gets it (variables expanded unless the
                            * delimiter was quoted); RUN: as written */
    const char *workdir;   /* absolute WORKDIR after this instruction ("/" default) */
    const char *user;      /* USER after this instruction, NULL = image default */
    const char **shell;    /* SHELL in effect: {"/bin/sh","-c"} by default */
    size_t nshell;
    int copy_from_stage;         /* COPY/ADD --from naming a stage: its index, else -1 */
    const char *copy_from_image; /* --from naming an image (not a stage), else NULL */
} lc_df_step;

typedef struct lc_df_stage_plan {
    const lc_df_stage *stage;
    const char *base;     /* expanded with the global ARGs */
    const char *platform; /* expanded --platform or NULL */
    int base_stage;       /* index of the stage FROM names, or -1 (image/scratch) */
    bool needed;          /* the target depends on it (or is it) */
    lc_df_step *steps;    /* parallel to stage->instrs */
    size_t nsteps;
} lc_df_stage_plan;

typedef struct lc_df_plan {
    const lc_df_file *file;
    int target;               /* index of the target stage */
    lc_df_stage_plan *stages; /* one per stage of the file, in file order */
    size_t nstages;
    void *priv_;
} lc_df_plan;

/* Evaluates every stage (those not needed too, so they can be shown) and
 * marks the ones the target needs through FROM <stage> and COPY --from.
 * Errors: unknown target (LC_NOT_FOUND), bad substitution, a stage that
 * refers to itself or a later stage, ... */
int lc_df_plan_build(const lc_df_file *f, const lc_df_plan_opts *opts, lc_df_plan **out,
                     lc_err *err);
void lc_df_plan_free(lc_df_plan **p);

/* The argv a RUN step runs, as BuildKit builds it: the exec form as is;
 * the shell form as SHELL + [command]; a command that is only a heredoc
 * (`RUN <<EOF`) runs the body as the script (a body starting with "#!" is
 * written to /dev/pipes/NAME, a tmpfs, and executed); otherwise each
 * heredoc body and its delimiter follow the command on lines of their own,
 * so the shell gives them to the command as stdin. Appends to argv; 0 or
 * -LC_RESOURCE_EXHAUSTED. */
int lc_df_run_argv(const lc_df_step *st, lc_strlist *argv);
/* The heredoc name when the RUN step is a "#!" script run from
 * /dev/pipes/NAME, else NULL. */
const char *lc_df_run_script(const lc_df_step *st);

/* Resolves a WORKDIR argument (already expanded) against the previous one:
 * "a" after "/x" -> "/x/a"; cleans "." and ".." like Go's path.Clean.
 * Returns a malloc'd string, NULL when out of memory. */
char *lc_df_workdir_join(const char *prev, const char *dir);

#endif

/* Temporary stubs: the real implementation lands in lexer.c/parse.c/... */
#include <stdlib.h>
#include "dockerfile.h"
#include "expand.h"
const char *lc_df_kind_name(enum lc_df_kind kind) { (void)kind; return "?"; }
bool lc_df_kind_expands(enum lc_df_kind kind) { (void)kind; return false; }
const lc_df_flag *lc_df_instr_flag(const lc_df_instr *in, const char *name) { (void)in; (void)name; return NULL; }
int lc_df_parse(const char *buf, size_t len, const char *filename, lc_df_file **out, lc_err *err)
{ (void)buf; (void)len; (void)filename; *out = NULL; return lc_err_set(err, LC_UNIMPLEMENTED, "parser not built yet"); }
int lc_df_parse_path(const char *path, lc_df_file **out, lc_err *err) { return lc_df_parse("", 0, path, out, err); }
void lc_df_file_free(lc_df_file **f) { if (f) *f = NULL; }
int lc_df_stage_find(const lc_df_file *f, const char *n) { (void)f; (void)n; return -1; }
char *lc_df_dump(const lc_df_file *f) { (void)f; return NULL; }
int lc_df_plan_build(const lc_df_file *f, const lc_df_plan_opts *o, lc_df_plan **out, lc_err *err)
{ (void)f; (void)o; *out = NULL; return lc_err_set(err, LC_UNIMPLEMENTED, "not built yet"); }
void lc_df_plan_free(lc_df_plan **p) { if (p) *p = NULL; }
char *lc_df_workdir_join(const char *prev, const char *dir) { (void)prev; (void)dir; return NULL; }
int lc_df_expand_word(const char *w, char e, int fl, lc_df_lookup_fn l, void *c, char **out, lc_err *err)
{ (void)w; (void)e; (void)fl; (void)l; (void)c; *out = NULL; return lc_err_set(err, LC_UNIMPLEMENTED, "x"); }
int lc_df_expand_words(const char *w, char e, int fl, lc_df_lookup_fn l, void *c, lc_strlist *out, lc_err *err)
{ (void)w; (void)e; (void)fl; (void)l; (void)c; (void)out; return lc_err_set(err, LC_UNIMPLEMENTED, "x"); }
const char *lc_df_lookup_vars(void *ctx, const char *name, size_t len) { (void)ctx; (void)name; (void)len; return NULL; }
bool lc_df_glob_match(const char *p, size_t pl, const char *s, size_t n) { (void)p; (void)pl; (void)s; (void)n; return false; }

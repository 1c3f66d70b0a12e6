/* Temporary stubs: the real implementation lands in lexer.c/parse.c/... */
#include <stdlib.h>
#include "dockerfile.h"
#include "expand.h"
int lc_df_plan_build(const lc_df_file *f, const lc_df_plan_opts *o, lc_df_plan **out, lc_err *err)
{ (void)f; (void)o; *out = NULL; return lc_err_set(err, LC_UNIMPLEMENTED, "not built yet"); }
void lc_df_plan_free(lc_df_plan **p) { if (p) *p = NULL; }
char *lc_df_workdir_join(const char *prev, const char *dir) { (void)prev; (void)dir; return NULL; }

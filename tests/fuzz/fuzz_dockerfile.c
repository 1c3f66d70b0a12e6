/* fuzz_dockerfile.c - parse, dump and plan arbitrary input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build-worker/dockerfile/dockerfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lc_df_file *f = NULL;
    lc_err err = {0};
    if (lc_df_parse((const char *)data, size, "Dockerfile", &f, &err) != 0) {
        if (err.msg[0] == '\0')
            abort(); /* every failure carries a message */
        return 0;
    }
    char *d = lc_df_dump(f);
    free(d);
    lc_df_var ba[] = {{"A", "x y"}, {"VERSION", "1"}};
    lc_df_plan_opts o = {.build_args = ba, .nbuild_args = 2};
    lc_df_plan *p = NULL;
    if (lc_df_plan_build(f, &o, &p, &err) == 0) {
        if (p->target < 0 || (size_t)p->target >= p->nstages || !p->stages[p->target].needed)
            abort();
        lc_df_plan_free(&p);
    }
    o.target = "0";
    if (lc_df_plan_build(f, &o, &p, &err) == 0)
        lc_df_plan_free(&p);
    lc_df_file_free(&f);
    return 0;
}

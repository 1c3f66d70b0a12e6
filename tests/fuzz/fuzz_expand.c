/* fuzz_expand.c - word processing and substitution on arbitrary words. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build-worker/dockerfile/expand.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *w = malloc(size);
    memcpy(w, data + 1, size - 1);
    w[size - 1] = '\0';
    static const lc_df_var vars[] = {
        {"A", "apple"}, {"E", ""}, {"F", "file.tar.gz"}, {"S", "a b *"}};
    lc_df_varlist vl = {vars, 4};
    int flags = data[0] & 0x0f;
    char esc = (data[0] & 0x10) ? '`' : '\\';
    char *out = NULL;
    lc_err err = {0};
    if (lc_df_expand_word(w, esc, flags, lc_df_lookup_vars, &vl, &out, &err) == 0)
        free(out);
    else if (err.msg[0] == '\0')
        abort();
    lc_strlist l = {0};
    lc_df_expand_words(w, esc, flags, lc_df_lookup_vars, &vl, &l, &err);
    lc_strlist_clear(&l);
    free(w);
    return 0;
}

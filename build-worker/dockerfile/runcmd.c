/* runcmd.c - the command a RUN step runs (see dockerfile.h,
 * lc_df_run_argv): BuildKit's dispatchRun for the shell form, the exec form
 * and heredocs. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "df_internal.h"

/* BuildKit's MustParseHeredoc on the whole command: true when it is one
 * heredoc word and nothing else ("<<EOF", "<<-'EOF'", "3<<EOF"). */
static bool only_heredoc(const char *cmd)
{
    while (isspace((unsigned char)*cmd))
        cmd++;
    while (isdigit((unsigned char)*cmd))
        cmd++;
    if (strncmp(cmd, "<<", 2) != 0)
        return false;
    cmd += 2;
    if (*cmd == '-')
        cmd++;
    if (*cmd == '\0')
        return false;
    const char *end = cmd + strlen(cmd);
    while (end > cmd && isspace((unsigned char)end[-1]))
        end--;
    for (const char *p = cmd; p < end; p++)
        if (isspace((unsigned char)*p) || *p == '<')
            return false;
    return true;
}

static int push_shell(const lc_df_step *st, lc_strlist *argv)
{
    static const char *const def[] = {"/bin/sh", "-c"};
    const char *const *sh = st->nshell ? st->shell : def;
    size_t n = st->nshell ? st->nshell : 2;
    for (size_t i = 0; i < n; i++)
        if (lc_strlist_push(argv, sh[i]) < 0)
            return -LC_RESOURCE_EXHAUSTED;
    return 0;
}

/* The script of a "#!" heredoc lives in the tmpfs runc mounts on /dev (never
 * in a layer), where BuildKit mounts it: /dev/pipes/NAME. Only the shell
 * and its printf builtin are needed besides mkdir and chmod. */
static int shebang_argv(const lc_df_heredoc *h, lc_strlist *argv)
{
    char *script = NULL;
    if (asprintf(&script, "mkdir -p /dev/pipes && printf '%%s' \"$1\" > \"/dev/pipes/$2\" && "
                          "chmod 755 \"/dev/pipes/$2\" && exec \"/dev/pipes/$2\"") < 0)
        return -LC_RESOURCE_EXHAUSTED;
    int rc = lc_strlist_push(argv, "/bin/sh");
    if (rc == 0)
        rc = lc_strlist_push(argv, "-c");
    if (rc == 0)
        rc = lc_strlist_push_owned(argv, script);
    else
        free(script);
    if (rc == 0)
        rc = lc_strlist_push(argv, "sh");
    if (rc == 0)
        rc = lc_strlist_push(argv, h->content);
    if (rc == 0)
        rc = lc_strlist_push(argv, h->name);
    return rc < 0 ? -LC_RESOURCE_EXHAUSTED : 0;
}

const char *lc_df_run_script(const lc_df_step *st)
{
    const lc_df_instr *in = st->instr;
    if (in->json || in->nheredocs == 0 || !only_heredoc(in->nargs ? in->args[0] : ""))
        return NULL;
    return strncmp(in->heredocs[0].content, "#!", 2) == 0 ? in->heredocs[0].name : NULL;
}

int lc_df_run_argv(const lc_df_step *st, lc_strlist *argv)
{
    const lc_df_instr *in = st->instr;
    if (in->json) {
        for (size_t i = 0; i < in->nargs; i++)
            if (lc_strlist_push(argv, in->args[i]) < 0)
                return -LC_RESOURCE_EXHAUSTED;
        return 0;
    }
    const char *cmd = in->nargs ? in->args[0] : "";
    if (in->nheredocs > 0 && only_heredoc(cmd)) {
        const lc_df_heredoc *h = &in->heredocs[0];
        if (strncmp(h->content, "#!", 2) == 0)
            return shebang_argv(h, argv);
        /* The body is the script, run by the shell. */
        if (push_shell(st, argv) < 0 || lc_strlist_push(argv, h->content) < 0)
            return -LC_RESOURCE_EXHAUSTED;
        return 0;
    }
    if (push_shell(st, argv) < 0)
        return -LC_RESOURCE_EXHAUSTED;
    if (in->nheredocs == 0)
        return lc_strlist_push(argv, cmd) < 0 ? -LC_RESOURCE_EXHAUSTED : 0;
    /* The command with its heredocs after it, as a shell reads them: each
     * body and its delimiter line, in order. */
    size_t len = strlen(cmd) + 1;
    for (size_t i = 0; i < in->nheredocs; i++)
        len += 1 + strlen(in->heredocs[i].content) + strlen(in->heredocs[i].name);
    char *text = malloc(len);
    if (text == NULL)
        return -LC_RESOURCE_EXHAUSTED;
    char *p = text;
    p += sprintf(p, "%s", cmd);
    for (size_t i = 0; i < in->nheredocs; i++)
        p += sprintf(p, "\n%s%s", in->heredocs[i].content, in->heredocs[i].name);
    return lc_strlist_push_owned(argv, text) < 0 ? -LC_RESOURCE_EXHAUSTED : 0;
}

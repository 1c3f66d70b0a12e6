/* cmd_admin.c - `layercache stats`, `layercache ls` and `layercache purge`:
 * the cache server's Admin service (admin.proto) for people, as tables or
 * JSON (--format json). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_client.h"
#include "build-worker/cli_flags.h"
#include "err.h"
#include "flags.h"
#include "strlist.h"

int lc_cmd_stats(int argc, char **argv);
int lc_cmd_ls(int argc, char **argv);
int lc_cmd_purge(int argc, char **argv);

/* One command runs per process, so the three flag tables share targets; the
 * cache server connection flags are cli_flags.h's. */
static char *opt_format, *opt_instance, *opt_sort, *opt_writer;
static int64_t opt_limit, opt_older, opt_newer;
static lc_strlist opt_keys;
static bool opt_all, opt_cascade, opt_dry_run, opt_untrusted;

static const lc_flag format_flags[] = {
    {"format", 0, LC_FLAG_STRING, &opt_format, "table", "table|json", "output format", true},
};
static const lc_flag_group format_group = LC_FLAG_GROUP(format_flags);

static const lc_flag stats_flags[] = {
    LC_FLAG_INCLUDE_GROUP(lc_cli_cache_group),
    {"cache-instance", 0, LC_FLAG_STRING, &opt_instance, NULL, "NAME",
     "only this REAPI instance (default: totals and every instance)"},
    LC_FLAG_INCLUDE_GROUP(format_group),
};

static const lc_flag ls_flags[] = {
    LC_FLAG_INCLUDE_GROUP(lc_cli_cache_group),
    {"instance", 0, LC_FLAG_STRING, &opt_instance, NULL, "NAME",
     "only this instance ('' = the default instance; default: every instance)", true},
    {"sort", 0, LC_FLAG_STRING, &opt_sort, "newest", "newest|hits",
     "newest first, or most hit first", true},
    {"limit", 'n', LC_FLAG_INT, &opt_limit, "50", "N", "show at most N entries (0 = all)", true},
    {"writer", 0, LC_FLAG_STRING, &opt_writer, NULL, "NAME", "only entries written by NAME", true},
    {"untrusted", 0, LC_FLAG_BOOL, &opt_untrusted, NULL, NULL,
     "only entries of untrusted tokens (kept for their writer until promoted)", true},
    LC_FLAG_INCLUDE_GROUP(format_group),
};

static const lc_flag purge_flags[] = {
    LC_FLAG_INCLUDE_GROUP(lc_cli_cache_group),
    {"key", 'k', LC_FLAG_LIST, &opt_keys, NULL, "sha256:HEX[/SIZE]",
     "an action key to purge (repeatable; positional arguments are keys too)", true},
    {"instance", 0, LC_FLAG_STRING, &opt_instance, NULL, "NAME",
     "entries of this instance ('' = the default instance)", true},
    {"writer", 0, LC_FLAG_STRING, &opt_writer, NULL, "NAME", "entries written by NAME", true},
    {"untrusted", 0, LC_FLAG_BOOL, &opt_untrusted, NULL, NULL,
     "only entries of untrusted tokens (with --writer: one pull-request token's entries, "
     "none a trusted writer of that name stored)",
     true},
    {"older-than", 0, LC_FLAG_DURATION, &opt_older, "0", "DURATION",
     "entries created more than DURATION ago (90s, 15m, 12h, 7d)", true},
    {"newer-than", 0, LC_FLAG_DURATION, &opt_newer, "0", "DURATION",
     "entries created less than DURATION ago", true},
    {"all", 0, LC_FLAG_BOOL, &opt_all, NULL, NULL, "every entry of every instance, and every blob",
     true},
    {"cascade", 0, LC_FLAG_BOOL, &opt_cascade, NULL, NULL,
     "also purge the steps built on top of a purged step", true},
    {"dry-run", 'n', LC_FLAG_BOOL, &opt_dry_run, NULL, NULL,
     "show what would be purged, remove nothing", true},
    LC_FLAG_INCLUDE_GROUP(format_group),
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char stats_usage[] =
    "usage: layercache stats [options]\n\n"
    "Shows the cache server's counters since it started and what it stores now:\n"
    "per instance the entries, hits, misses, hit rate, bytes in and out, and the\n"
    "build time saved by hits (the original execution time of every hit step).\n\n"
    "The cache server and token can also come from LAYERCACHE_CACHE and\n"
    "LAYERCACHE_TOKEN.";

static const char ls_usage[] =
    "usage: layercache ls [options]\n\n"
    "Lists action cache entries, newest (or most hit) first, with each step's\n"
    "instruction, so you can find the key to purge. TRUST says who gets an entry:\n"
    "trusted (everyone; written by a write or admin token), untrusted (only tokens\n"
    "named like its WRITER), promoted (untrusted results --promote-quorum names\n"
    "stored identically: everyone). [incomplete] marks an entry a blob of which is\n"
    "gone: it misses.\n\n"
    "The cache server and token can also come from LAYERCACHE_CACHE and\n"
    "LAYERCACHE_TOKEN.";

static const char purge_usage[] =
    "usage: layercache purge [options] [KEY...]\n\n"
    "Removes action cache entries: by key (sha256:HEX as `layercache keys` and\n"
    "`layercache ls` print it), by instance, by writer, by age, untrusted ones, or\n"
    "--all (which also empties the CAS). Criteria combine (all must match).\n"
    "--cascade also removes the steps built on top of a removed step (same\n"
    "instance, image state extending the removed one). Purged entries miss at once.\n\n"
    "Drop what one pull-request token stored:\n"
    "  layercache purge --writer pr-1234 --untrusted\n\n"
    "Purge the cache entry of step 5 of a Dockerfile:\n"
    "  layercache keys --format json CONTEXT | jq -r '.steps[5].key' | xargs layercache purge "
    "--key\n\n"
    "The cache server and token can also come from LAYERCACHE_CACHE and\n"
    "LAYERCACHE_TOKEN.";

/* ---- shared ------------------------------------------------------------------ */

/* Who gets an entry (admin.proto Trust; cache-server/trust.h). */
static const char *trust_name(Layercache__V1__Trust t)
{
    switch (t) {
    case LAYERCACHE__V1__TRUST__UNTRUSTED:
        return "untrusted";
    case LAYERCACHE__V1__TRUST__PROMOTED:
        return "promoted";
    default:
        return "trusted";
    }
}

/* Parses flags; returns -1 to go on, else the exit status to return. */
static int parse(const char *cmd, const lc_flag *flags, size_t n, const char *usage, int argc,
                 char **argv, lc_strlist *positional, bool *json)
{
    lc_err err = {0};
    int rc = lc_cli_parse(flags, n, usage, argc, argv, positional, &err);
    if (rc == LC_FLAGS_HELP)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "layercache %s: %s (see --help)\n", cmd, err.msg);
        return 2;
    }
    if (strcmp(opt_format, "table") != 0 && strcmp(opt_format, "json") != 0) {
        fprintf(stderr, "layercache %s: --format must be table or json, not '%s'\n", cmd,
                opt_format);
        return 2;
    }
    *json = strcmp(opt_format, "json") == 0;
    if (lc_cli_cache_opts.target == NULL || lc_cli_cache_opts.target[0] == '\0') {
        fprintf(stderr,
                "layercache %s: no cache server: give --cache grpc://HOST:PORT or set "
                "LAYERCACHE_CACHE\n",
                cmd);
        return 2;
    }
    return -1;
}

static int open_client(const char *cmd, lc_cache_client **c)
{
    lc_err err = {0};
    lc_cache_client_options o = {0};
    lc_cli_cache_client_options(&o);
    if (lc_cache_client_open(lc_cli_cache_opts.target, &o, c, &err) < 0) {
        fprintf(stderr, "layercache %s: %s\n", cmd, err.msg);
        return -1;
    }
    return 0;
}

static int print_json(json_t *root)
{
    int rc = root != NULL ? json_dumpf(root, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : -1;
    if (rc == 0)
        putchar('\n');
    json_decref(root);
    if (rc != 0)
        fprintf(stderr, "layercache: out of memory writing JSON\n");
    return rc == 0 ? 0 : 1;
}

static const char *inst_name(const char *s)
{
    return s == NULL || s[0] == '\0' ? "(default)" : s;
}

static void human_bytes(uint64_t n, char *out, size_t cap)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%" PRIu64 " B", n);
    else
        snprintf(out, cap, "%.1f %s", v, units[u]);
}

static void human_seconds(double s, char *out, size_t cap)
{
    if (s < 60)
        snprintf(out, cap, "%.1fs", s);
    else if (s < 3600)
        snprintf(out, cap, "%.1fm", s / 60);
    else if (s < 86400)
        snprintf(out, cap, "%.1fh", s / 3600);
    else
        snprintf(out, cap, "%.1fd", s / 86400);
}

/* "3m ago", "never". */
static void human_ago(int64_t when, int64_t now, char *out, size_t cap)
{
    if (when <= 0) {
        snprintf(out, cap, "never");
        return;
    }
    int64_t d = now - when;
    if (d < 0)
        d = 0;
    if (d < 60)
        snprintf(out, cap, "%" PRId64 "s ago", d);
    else if (d < 3600)
        snprintf(out, cap, "%" PRId64 "m ago", d / 60);
    else if (d < 86400)
        snprintf(out, cap, "%" PRId64 "h ago", d / 3600);
    else
        snprintf(out, cap, "%" PRId64 "d ago", d / 86400);
}

static void iso_time(int64_t t, char *out, size_t cap)
{
    if (t <= 0) {
        snprintf(out, cap, "%s", "");
        return;
    }
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void key_text(const Build__Bazel__Remote__Execution__V2__Digest *d, char *out, size_t cap)
{
    snprintf(out, cap, "sha256:%s", d && d->hash ? d->hash : "");
}

/* ---- stats ------------------------------------------------------------------- */

static double hit_rate(const Layercache__V1__InstanceStats *s)
{
    uint64_t n = s->ac_hits + s->ac_misses;
    return n ? (double)s->ac_hits / (double)n : 0;
}

static json_t *stats_json(const Layercache__V1__InstanceStats *s, bool with_name)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (with_name)
        json_object_set_new(o, "instance", json_string(s->instance_name ? s->instance_name : ""));
    json_object_set_new(o, "entries", json_integer((json_int_t)s->entries));
    json_object_set_new(o, "entry_bytes", json_integer((json_int_t)s->entry_bytes));
    json_object_set_new(o, "hits", json_integer((json_int_t)s->ac_hits));
    json_object_set_new(o, "misses", json_integer((json_int_t)s->ac_misses));
    json_object_set_new(o, "hit_rate", json_real(hit_rate(s)));
    json_object_set_new(o, "updates", json_integer((json_int_t)s->ac_updates));
    json_object_set_new(o, "bytes_read", json_integer((json_int_t)s->bytes_read));
    json_object_set_new(o, "bytes_written", json_integer((json_int_t)s->bytes_written));
    json_object_set_new(o, "build_seconds_saved", json_real(s->build_seconds_saved));
    json_object_set_new(o, "evictions", json_integer((json_int_t)s->evictions));
    return o;
}

static void stats_row(const char *name, const Layercache__V1__InstanceStats *s)
{
    char size[32], out[32], in[32], saved[32], rate[16];
    human_bytes(s->entry_bytes, size, sizeof(size));
    human_bytes(s->bytes_read, out, sizeof(out));
    human_bytes(s->bytes_written, in, sizeof(in));
    human_seconds(s->build_seconds_saved, saved, sizeof(saved));
    if (s->ac_hits + s->ac_misses > 0)
        snprintf(rate, sizeof(rate), "%.1f%%", 100 * hit_rate(s));
    else
        snprintf(rate, sizeof(rate), "-");
    printf("%-20s %8" PRIu64 " %10s %8" PRIu64 " %8" PRIu64 " %8s %8" PRIu64
           " %10s %10s %9s %9" PRIu64 "\n",
           name, s->entries, size, s->ac_hits, s->ac_misses, rate, s->ac_updates, out, in, saved,
           s->evictions);
}

int lc_cmd_stats(int argc, char **argv)
{
    lc_cache_client *c = NULL;
    Layercache__V1__GetStatsResponse *r = NULL;
    lc_err err = {0};
    bool json = false;
    int status =
        parse("stats", stats_flags, COUNT(stats_flags), stats_usage, argc, argv, NULL, &json);
    if (status >= 0)
        goto out;
    status = 1;
    if (open_client("stats", &c) < 0)
        goto out;
    if (lc_admin_client_get_stats(c, opt_instance, &r, &err) < 0) {
        fprintf(stderr, "layercache stats: %s\n", err.msg);
        goto out;
    }
    Layercache__V1__InstanceStats empty = LAYERCACHE__V1__INSTANCE_STATS__INIT;
    const Layercache__V1__InstanceStats *total = r->total ? r->total : &empty;
    if (json) {
        json_t *root = json_object(), *insts = json_array(), *meths = json_array();
        if (root == NULL || insts == NULL || meths == NULL) {
            json_decref(insts);
            json_decref(meths);
            status = print_json(NULL);
            json_decref(root);
            goto out;
        }
        json_object_set_new(root, "server", json_string(lc_cache_client_target(c)));
        json_object_set_new(root, "version", json_string(r->version ? r->version : ""));
        json_object_set_new(root, "uptime_seconds", json_integer(r->uptime_seconds));
        json_object_set_new(root, "blobs", json_integer((json_int_t)r->blobs));
        json_object_set_new(root, "bytes_stored", json_integer((json_int_t)r->bytes_stored));
        json_object_set_new(root, "max_bytes", json_integer((json_int_t)r->max_bytes));
        json_object_set_new(root, "blobs_evicted", json_integer((json_int_t)r->blobs_evicted));
        json_object_set_new(root, "blob_bytes_evicted",
                            json_integer((json_int_t)r->blob_bytes_evicted));
        json_object_set_new(root, "total", stats_json(total, false));
        for (size_t i = 0; i < r->n_instances; i++)
            json_array_append_new(insts, stats_json(r->instances[i], true));
        json_object_set_new(root, "instances", insts);
        for (size_t i = 0; i < r->n_methods; i++)
            json_array_append_new(meths,
                                  json_pack("{s:s, s:I, s:I}", "method",
                                            r->methods[i]->method ? r->methods[i]->method : "",
                                            "calls", (json_int_t)r->methods[i]->calls, "errors",
                                            (json_int_t)r->methods[i]->errors));
        json_object_set_new(root, "methods", meths);
        status = print_json(root);
        goto out;
    }
    char stored[32], limit[32], evicted[32], up[32];
    human_bytes(r->bytes_stored, stored, sizeof(stored));
    if (r->max_bytes > 0)
        human_bytes(r->max_bytes, limit, sizeof(limit));
    else
        snprintf(limit, sizeof(limit), "none");
    human_bytes(r->blob_bytes_evicted, evicted, sizeof(evicted));
    human_seconds((double)r->uptime_seconds, up, sizeof(up));
    printf("server %s, version %s, up %s\n", lc_cache_client_target(c),
           r->version ? r->version : "?", up);
    printf("stored: %" PRIu64 " blobs, %s (limit %s); evicted: %" PRIu64 " blobs, %s\n\n", r->blobs,
           stored, limit, r->blobs_evicted, evicted);
    printf("%-20s %8s %10s %8s %8s %8s %8s %10s %10s %9s %9s\n", "INSTANCE", "ENTRIES", "SIZE",
           "HITS", "MISSES", "HIT RATE", "UPDATES", "BYTES OUT", "BYTES IN", "SAVED", "EVICTED");
    for (size_t i = 0; i < r->n_instances; i++)
        stats_row(inst_name(r->instances[i]->instance_name), r->instances[i]);
    if (opt_instance == NULL || opt_instance[0] == '\0')
        stats_row("total", total);
    status = 0;
out:
    lc_admin_stats_free(&r);
    lc_cache_client_close(&c);
    lc_flags_free(stats_flags, COUNT(stats_flags));
    return status;
}

/* ---- ls ------------------------------------------------------------------------ */

int lc_cmd_ls(int argc, char **argv)
{
    lc_cache_client *c = NULL;
    Layercache__V1__ListActionsResponse *page = NULL;
    json_t *items = NULL;
    lc_err err = {0};
    char *token = NULL;
    bool json = false;
    int status = parse("ls", ls_flags, COUNT(ls_flags), ls_usage, argc, argv, NULL, &json);
    if (status >= 0)
        goto out;
    status = 2;
    bool hits = strcmp(opt_sort, "hits") == 0;
    if (!hits && strcmp(opt_sort, "newest") != 0) {
        fprintf(stderr, "layercache ls: --sort must be newest or hits, not '%s'\n", opt_sort);
        goto out;
    }
    if (opt_limit < 0) {
        fprintf(stderr, "layercache ls: --limit must be >= 0\n");
        goto out;
    }
    status = 1;
    if (open_client("ls", &c) < 0)
        goto out;
    items = json_array();
    if (items == NULL)
        goto out;
    int64_t now = (int64_t)time(NULL);
    uint64_t shown = 0, total = 0;
    if (!json)
        printf("%-71s %6s %9s %9s %10s  %-16s %-9s %-12s %s\n", "KEY", "HITS", "LAST HIT",
               "CREATED", "SIZE", "WRITER", "TRUST", "INSTANCE", "INSTRUCTION");
    for (;;) {
        Layercache__V1__ListActionsRequest req = LAYERCACHE__V1__LIST_ACTIONS_REQUEST__INIT;
        req.instance_name = opt_instance ? opt_instance : "";
        req.default_instance = opt_instance != NULL && opt_instance[0] == '\0';
        req.order = hits ? LAYERCACHE__V1__LIST_ACTIONS_REQUEST__ORDER__MOST_HIT
                         : LAYERCACHE__V1__LIST_ACTIONS_REQUEST__ORDER__NEWEST;
        uint64_t want = opt_limit > 0 ? (uint64_t)opt_limit - shown : 1000;
        req.page_size = (int32_t)(want < 1000 ? want : 1000);
        req.page_token = token ? token : "";
        req.writer = opt_writer ? opt_writer : "";
        if (opt_untrusted)
            req.trust = LAYERCACHE__V1__LIST_ACTIONS_REQUEST__TRUST_FILTER__UNTRUSTED_ONLY;
        if (lc_admin_client_list_actions(c, &req, &page, &err) < 0) {
            fprintf(stderr, "layercache ls: %s\n", err.msg);
            goto out;
        }
        total = page->total_entries;
        for (size_t i = 0; i < page->n_actions; i++) {
            const Layercache__V1__ActionInfo *a = page->actions[i];
            char key[96];
            key_text(a->action_digest, key, sizeof(key));
            if (json) {
                char created[32], last[32];
                iso_time(a->created_unix, created, sizeof(created));
                iso_time(a->last_hit_unix, last, sizeof(last));
                json_t *from = json_array();
                for (size_t k = 0; from != NULL && k < a->n_promoted_from; k++)
                    json_array_append_new(from, json_string(a->promoted_from[k]));
                json_array_append_new(
                    items,
                    json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:s, s:I, s:s, s:I, s:I, s:s, "
                              "s:o*, s:b}",
                              "instance", a->instance_name ? a->instance_name : "", "key", key,
                              "action_size",
                              (json_int_t)(a->action_digest ? a->action_digest->size_bytes : 0),
                              "instruction", a->description ? a->description : "", "writer",
                              a->writer ? a->writer : "", "created_unix",
                              (json_int_t)a->created_unix, "created", created, "last_hit_unix",
                              (json_int_t)a->last_hit_unix, "last_hit", last, "hit_count",
                              (json_int_t)a->hit_count, "size_bytes", (json_int_t)a->size_bytes,
                              "trust", trust_name(a->trust), "promoted_from", from, "incomplete",
                              (int)a->incomplete));
            } else {
                char last[24], created[24], size[32];
                human_ago(a->last_hit_unix, now, last, sizeof(last));
                human_ago(a->created_unix, now, created, sizeof(created));
                human_bytes(a->size_bytes, size, sizeof(size));
                printf("%-71s %6" PRIu64 " %9s %9s %10s  %-16.16s %-9s %-12.12s %s%s\n", key,
                       a->hit_count, last, created, size, a->writer ? a->writer : "",
                       trust_name(a->trust), inst_name(a->instance_name),
                       a->incomplete ? "[incomplete] " : "",
                       a->description && a->description[0] ? a->description : "(unknown)");
            }
            shown++;
        }
        free(token);
        token = page->next_page_token && page->next_page_token[0] ? strdup(page->next_page_token)
                                                                  : NULL;
        lc_admin_list_free(&page);
        if (token == NULL || (opt_limit > 0 && shown >= (uint64_t)opt_limit))
            break;
    }
    if (json) {
        json_t *root = json_object();
        if (root != NULL) {
            json_object_set_new(root, "total_entries", json_integer((json_int_t)total));
            json_object_set_new(root, "actions", items);
            items = NULL;
        }
        status = print_json(root);
    } else {
        if (shown < total)
            printf("(%" PRIu64 " of %" PRIu64 " entries; --limit 0 shows all)\n", shown, total);
        status = 0;
    }
out:
    json_decref(items);
    free(token);
    lc_admin_list_free(&page);
    lc_cache_client_close(&c);
    lc_flags_free(ls_flags, COUNT(ls_flags));
    return status;
}

/* ---- purge --------------------------------------------------------------------- */

/* "sha256:HEX", "HEX", with an optional "/SIZE" (size 0: any size). */
static int parse_key(const char *s, lc_digest *d, lc_err *err)
{
    const char *hex = strncmp(s, "sha256:", 7) == 0 ? s + 7 : s;
    const char *slash = strchr(hex, '/');
    size_t hexlen = slash ? (size_t)(slash - hex) : strlen(hex);
    long long size = 0;
    if (slash != NULL) {
        char *end = NULL;
        size = strtoll(slash + 1, &end, 10);
        if (end == slash + 1 || *end != '\0' || size < 0)
            return lc_err_set(err, LC_INVALID_ARGUMENT, "key '%s': bad size after '/'", s);
    }
    if (lc_digest_parse(hex, hexlen, size, d, err) < 0) {
        lc_err_prefix(err, "key '%s' (want sha256:<64 hex digits>)", s);
        return -LC_INVALID_ARGUMENT;
    }
    return 0;
}

int lc_cmd_purge(int argc, char **argv)
{
    lc_cache_client *c = NULL;
    Layercache__V1__PurgeResponse *r = NULL;
    lc_strlist positional = {0};
    lc_digest *keys = NULL;
    Build__Bazel__Remote__Execution__V2__Digest *dmsgs = NULL, **dptrs = NULL;
    char(*hexes)[LC_HASH_HEX_LEN + 1] = NULL;
    lc_err err = {0};
    bool json = false;
    int status = parse("purge", purge_flags, COUNT(purge_flags), purge_usage, argc, argv,
                       &positional, &json);
    if (status >= 0)
        goto out;
    status = 2;
    for (size_t i = 0; i < positional.len; i++)
        if (lc_strlist_push(&opt_keys, positional.items[i]) < 0)
            goto out;
    size_t nk = opt_keys.len;
    keys = calloc(nk + 1, sizeof(*keys));
    dmsgs = calloc(nk + 1, sizeof(*dmsgs));
    dptrs = calloc(nk + 1, sizeof(*dptrs));
    hexes = calloc(nk + 1, sizeof(*hexes));
    if (keys == NULL || dmsgs == NULL || dptrs == NULL || hexes == NULL) {
        fprintf(stderr, "layercache purge: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < nk; i++) {
        if (parse_key(opt_keys.items[i], &keys[i], &err) < 0) {
            fprintf(stderr, "layercache purge: %s\n", err.msg);
            goto out;
        }
        build__bazel__remote__execution__v2__digest__init(&dmsgs[i]);
        lc_digest_hex(&keys[i], hexes[i]);
        dmsgs[i].hash = hexes[i];
        dmsgs[i].size_bytes = keys[i].size;
        dptrs[i] = &dmsgs[i];
    }
    bool criteria = nk > 0 || opt_instance != NULL || opt_writer != NULL || opt_older > 0 ||
                    opt_newer > 0 || opt_untrusted;
    if (!criteria && !opt_all) {
        fprintf(stderr, "layercache purge: say what to purge: --key, --instance, --writer, "
                        "--older-than/--newer-than, --untrusted, or --all (see --help)\n");
        goto out;
    }
    if (opt_all && (criteria || opt_cascade)) {
        fprintf(stderr, "layercache purge: --all removes everything; it takes no other "
                        "criteria or --cascade\n");
        goto out;
    }
    status = 1;
    if (open_client("purge", &c) < 0)
        goto out;
    Layercache__V1__PurgeRequest req = LAYERCACHE__V1__PURGE_REQUEST__INIT;
    req.instance_name = opt_instance ? opt_instance : "";
    req.default_instance = opt_instance != NULL && opt_instance[0] == '\0';
    req.n_action_digests = nk;
    req.action_digests = dptrs;
    req.writer = opt_writer ? opt_writer : "";
    req.older_than_seconds = opt_older;
    req.newer_than_seconds = opt_newer;
    req.all = opt_all;
    req.cascade = opt_cascade;
    req.dry_run = opt_dry_run;
    req.untrusted_only = opt_untrusted;
    if (lc_admin_client_purge(c, &req, &r, &err) < 0) {
        fprintf(stderr, "layercache purge: %s\n", err.msg);
        goto out;
    }
    if (json) {
        json_t *root = json_object(), *list = json_array();
        if (root == NULL || list == NULL) {
            json_decref(list);
            json_decref(root);
            status = print_json(NULL);
            goto out;
        }
        for (size_t i = 0; i < r->n_removed; i++) {
            const Layercache__V1__PurgedAction *a = r->removed[i];
            char key[96];
            key_text(a->action_digest, key, sizeof(key));
            json_array_append_new(
                list, json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:b, s:s}", "instance",
                                a->instance_name ? a->instance_name : "", "key", key, "action_size",
                                (json_int_t)(a->action_digest ? a->action_digest->size_bytes : 0),
                                "instruction", a->description ? a->description : "", "writer",
                                a->writer ? a->writer : "", "created_unix",
                                (json_int_t)a->created_unix, "cascaded", (int)a->cascaded, "trust",
                                trust_name(a->trust)));
        }
        json_object_set_new(root, "dry_run", json_boolean(opt_dry_run));
        json_object_set_new(root, "entries_removed", json_integer((json_int_t)r->entries_removed));
        json_object_set_new(root, "blobs_removed", json_integer((json_int_t)r->blobs_removed));
        json_object_set_new(root, "bytes_removed", json_integer((json_int_t)r->bytes_removed));
        json_object_set_new(root, "truncated", json_boolean(r->truncated));
        json_object_set_new(root, "removed", list);
        status = print_json(root);
        goto out;
    }
    size_t cascaded = 0;
    for (size_t i = 0; i < r->n_removed; i++)
        cascaded += r->removed[i]->cascaded;
    printf("%s %" PRIu64 " action cache entr%s", opt_dry_run ? "would remove" : "removed",
           r->entries_removed, r->entries_removed == 1 ? "y" : "ies");
    if (cascaded > 0)
        printf(" (%zu by cascade)", cascaded);
    printf("%s\n", r->n_removed > 0 ? ":" : "");
    for (size_t i = 0; i < r->n_removed; i++) {
        const Layercache__V1__PurgedAction *a = r->removed[i];
        char key[96];
        key_text(a->action_digest, key, sizeof(key));
        printf("  %s  %-12.12s %-16.16s %-9s %s%s\n", key, inst_name(a->instance_name),
               a->writer ? a->writer : "", trust_name(a->trust),
               a->description && a->description[0] ? a->description : "(unknown)",
               a->cascaded ? "  [cascade]" : "");
    }
    if (r->truncated)
        printf("  ... and %" PRIu64 " more\n", r->entries_removed - r->n_removed);
    if (opt_all) {
        char bytes[32];
        human_bytes(r->bytes_removed, bytes, sizeof(bytes));
        printf("%s %" PRIu64 " blobs, %s\n", opt_dry_run ? "would remove" : "removed",
               r->blobs_removed, bytes);
    }
    status = 0;
out:
    free(hexes);
    free(dptrs);
    free(dmsgs);
    free(keys);
    lc_admin_purge_free(&r);
    lc_cache_client_close(&c);
    lc_strlist_clear(&positional);
    lc_flags_free(purge_flags, COUNT(purge_flags));
    return status;
}

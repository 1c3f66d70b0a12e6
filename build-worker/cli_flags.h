/* cli_flags.h - the option groups several `layercache` commands share, each
 * declared once here with the variables it fills; a command lists a group in
 * its table with LC_FLAG_INCLUDE_GROUP (common/flags.h). One command runs per
 * process, so the targets are process globals; the including table's
 * lc_flags_free frees them.
 *
 * A flag added to a group appears in every command that includes it: give
 * it a field here and pass it on in the lc_cli_* helpers below. */
#ifndef LC_CLI_FLAGS_H
#define LC_CLI_FLAGS_H

#include <stdint.h>

#include "build-worker/orchestrate/remote.h"
#include "build-worker/orchestrate/statedir.h"
#include "build-worker/registry/client.h"
#include "cache_client.h"
#include "err.h"
#include "flags.h"
#include "strlist.h"

/* Environment variables are LAYERCACHE_<FLAG>. */
#define LC_CLI_ENV_PREFIX "LAYERCACHE_"

/* Reaching the cache server. */
typedef struct lc_cli_cache {
    char *target;   /* --cache grpc[s]://HOST:PORT; NULL = none */
    char *instance; /* --cache-instance; set only by lc_cli_instance_group */
    char *token;    /* --token */
    char *cacert;   /* --cacert */
    char *tls_cert; /* --tls-cert */
    char *tls_key;  /* --tls-key */
    char *peers;    /* --cache-peers HOST:PORT,...: route to owners */
} lc_cli_cache;

extern lc_cli_cache lc_cli_cache_opts;
/* --cache, --cache-peers, --token, --cacert, --tls-cert, --tls-key */
extern const lc_flag_group lc_cli_cache_group;
/* --cache-instance NAME (default ""), for commands that read and write one
 * instance; `stats` has its own, a filter. */
extern const lc_flag_group lc_cli_instance_group;

/* The cache address of a worker's remote cache: --cache-peers (a peer
 * list, cache_client.h) if given, else --cache; borrowed, may be NULL. */
const char *lc_cli_cache_target(void);
/* Copies the connection options into o (strings borrowed from the flags). */
void lc_cli_remote_opts(lc_remote_opts *o);
void lc_cli_cache_client_options(lc_cache_client_options *o);

/* Talking to registries: --registry-auth, --registry-cacert,
 * --insecure-registry, --registry-chunk-size. */
typedef struct lc_cli_registry {
    char *auth_file;
    char *cacert;
    lc_strlist insecure;
    int64_t chunk_size;
} lc_cli_registry;

extern lc_cli_registry lc_cli_registry_opts;
extern const lc_flag_group lc_cli_registry_group;

/* The registry client options the flags give (pointers borrowed). */
lc_regclient_opts lc_cli_regclient_opts(void);

/* What to build: the same flags for `build` and `keys`, so that keys
 * computes the keys the same build would. */
typedef struct lc_cli_build {
    char *file;            /* -f, --file; NULL = CONTEXT/Dockerfile */
    lc_strlist build_args; /* --build-arg NAME[=VALUE] */
    char *target;          /* --target STAGE */
    char *platform;        /* --platform OS/ARCH[/VARIANT][,...] as given */
    char *network;         /* --network default|none|host (RUN's default; in the keys) */
    lc_strlist add_hosts;  /* --add-host NAME:IP (names in the keys) */
} lc_cli_build;

extern lc_cli_build lc_cli_build_opts;
extern const lc_flag_group lc_cli_build_group;

/* --network as an enum lc_df_network (dockerfile/runflags.h), and every
 * --add-host checked: INVALID_ARGUMENT naming the bad value. */
int lc_cli_build_network(int *network, lc_err *err);

/* What RUN steps may use besides the Dockerfile: --secret, --ssh (build
 * only: they never enter keys) and --allow network.host. */
typedef struct lc_cli_run {
    lc_strlist secrets; /* --secret id=ID[,src=FILE|,env=VAR] */
    lc_strlist ssh;     /* --ssh default|ID=SOCKET */
    lc_strlist allow;   /* --allow network.host */
} lc_cli_run;

extern lc_cli_run lc_cli_run_opts;
extern const lc_flag_group lc_cli_run_group;

/* Checks --allow; *network_host: network.host was allowed (or --network
 * host asked for it, as buildx does). */
int lc_cli_run_allow(int network, bool *network_host, lc_err *err);

/* --state-dir DIR; NULL = the default (lc_statedir_default). */
extern char *lc_cli_state_dir;
extern const lc_flag_group lc_cli_state_dir_group;

/* Opens --state-dir, else the default location. *sd owned by the caller. */
int lc_cli_statedir_open(lc_statedir **sd, lc_err *err);

/* Parses argv[1..] against flags (and LAYERCACHE_* variables). Returns 0
 * to go on, LC_FLAGS_HELP after printing usage and the options to stdout,
 * or a negative code with err set. */
int lc_cli_parse(const lc_flag *flags, size_t n, const char *usage, int argc, char **argv,
                 lc_strlist *positional, lc_err *err);

#endif

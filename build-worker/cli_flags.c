/* cli_flags.c - see cli_flags.h. */
#include "build-worker/cli_flags.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-worker/dockerfile/runflags.h"
#include "build-worker/runtime/network.h"

lc_cli_cache lc_cli_cache_opts;
lc_cli_registry lc_cli_registry_opts;
char *lc_cli_state_dir;
lc_cli_build lc_cli_build_opts;
lc_cli_run lc_cli_run_opts;

static const lc_flag build_flags[] = {
    {"file", 'f', LC_FLAG_STRING, &lc_cli_build_opts.file, NULL, "FILE",
     "the Dockerfile (default: CONTEXT/Dockerfile)", true},
    {"build-arg", 0, LC_FLAG_LIST, &lc_cli_build_opts.build_args, NULL, "NAME=VALUE",
     "set a build argument; NAME alone takes the value from the environment", true},
    {"target", 0, LC_FLAG_STRING, &lc_cli_build_opts.target, NULL, "STAGE",
     "build up to this stage (name or index; default: the last stage)", true},
    {"platform", 0, LC_FLAG_STRING, &lc_cli_build_opts.platform, NULL, "OS/ARCH[/VARIANT],...",
     "target platform (default: the host's, e.g. linux/amd64); another runs its RUN steps under "
     "an emulator registered with binfmt_misc (Debian's qemu-user-static); build: a,b builds "
     "each (--output type=oci then writes an image index)",
     true},
    {"network", 0, LC_FLAG_STRING, &lc_cli_build_opts.network, "default", "default|none|host",
     "network of RUN steps: default (a private namespace with outbound NAT, the worker's "
     "loopback out of reach), none (loopback only), host (the worker's; implies --allow "
     "network.host)",
     true},
    {"add-host", 0, LC_FLAG_LIST, &lc_cli_build_opts.add_hosts, NULL, "NAME:IP",
     "add a line to RUN steps' /etc/hosts (repeatable)", true},
};
const lc_flag_group lc_cli_build_group = LC_FLAG_GROUP(build_flags);

int lc_cli_build_network(int *network, lc_err *err)
{
    int n = lc_df_network_parse(lc_cli_build_opts.network ? lc_cli_build_opts.network : "default");
    if (n < 0)
        return lc_err_set(err, LC_INVALID_ARGUMENT,
                          "--network must be default, none or host, not '%s'",
                          lc_cli_build_opts.network);
    for (size_t i = 0; i < lc_cli_build_opts.add_hosts.len; i++) {
        char *name, *ip;
        int rc = lc_net_parse_host(lc_cli_build_opts.add_hosts.items[i], &name, &ip, err);
        if (rc < 0)
            return rc;
        free(name);
        free(ip);
    }
    *network = n == LC_DF_NET_DEFAULT ? LC_DF_NET_UNSET : n;
    return 0;
}

static const lc_flag run_flags[] = {
    {"secret", 0, LC_FLAG_LIST, &lc_cli_run_opts.secrets, NULL, "id=ID[,src=FILE|,env=VAR]",
     "a secret for RUN --mount=type=secret (repeatable; never stored, logged or uploaded)",
     true},
    {"ssh", 0, LC_FLAG_LIST, &lc_cli_run_opts.ssh, NULL, "default|ID=SOCKET",
     "an ssh agent for RUN --mount=type=ssh (repeatable; default: $SSH_AUTH_SOCK)", true},
    {"allow", 0, LC_FLAG_LIST, &lc_cli_run_opts.allow, NULL, "network.host",
     "allow an entitlement: network.host lets RUN --network=host use the worker's network",
     true},
};
const lc_flag_group lc_cli_run_group = LC_FLAG_GROUP(run_flags);

int lc_cli_run_allow(int network, bool *network_host, lc_err *err)
{
    *network_host = network == LC_DF_NET_HOST;
    for (size_t i = 0; i < lc_cli_run_opts.allow.len; i++) {
        const char *a = lc_cli_run_opts.allow.items[i];
        if (strcmp(a, "network.host") == 0)
            *network_host = true;
        else
            return lc_err_set(err, strcmp(a, "security.insecure") == 0 ? LC_UNIMPLEMENTED
                                                                        : LC_INVALID_ARGUMENT,
                              "--allow %s: %s", a,
                              strcmp(a, "security.insecure") == 0
                                  ? "not supported (every RUN step is sandboxed)"
                                  : "unknown entitlement (network.host)");
    }
    return 0;
}

static const lc_flag cache_flags[] = {
    {"cache", 0, LC_FLAG_STRING, &lc_cli_cache_opts.target, NULL, "grpc[s]://HOST:PORT",
     "cache server (grpcs:// for TLS)"},
    {"cache-peers", 0, LC_FLAG_STRING, &lc_cli_cache_opts.peers, NULL, "HOST:PORT,...|NAME:PORT",
     "cache cluster: the replicas' --peers list, or the one DNS name whose addresses are the "
     "replicas (a Kubernetes headless Service); each call goes straight to an owner of its key "
     "(replaces --cache; grpcs:// on each entry for TLS)"},
    {"token", 0, LC_FLAG_STRING, &lc_cli_cache_opts.token, NULL, "TOKEN",
     "bearer token for the cache server (prefer the environment variable)"},
    {"cacert", 0, LC_FLAG_STRING, &lc_cli_cache_opts.cacert, NULL, "FILE",
     "grpcs://: PEM file of the CA that signed the server's certificate (default: system roots)"},
    {"tls-cert", 0, LC_FLAG_STRING, &lc_cli_cache_opts.tls_cert, NULL, "FILE",
     "grpcs://: client certificate (PEM) for servers that require mutual TLS; needs --tls-key"},
    {"tls-key", 0, LC_FLAG_STRING, &lc_cli_cache_opts.tls_key, NULL, "FILE",
     "grpcs://: private key (PEM) of --tls-cert"},
};
const lc_flag_group lc_cli_cache_group = LC_FLAG_GROUP(cache_flags);

static const lc_flag instance_flags[] = {
    {"cache-instance", 0, LC_FLAG_STRING, &lc_cli_cache_opts.instance, "", "NAME",
     "REAPI instance name on the cache server (one per team or project)"},
};
const lc_flag_group lc_cli_instance_group = LC_FLAG_GROUP(instance_flags);

const char *lc_cli_cache_target(void)
{
    /* A peer list is a target too (cache_client.h). */
    if (lc_cli_cache_opts.peers != NULL && lc_cli_cache_opts.peers[0] != '\0')
        return lc_cli_cache_opts.peers;
    return lc_cli_cache_opts.target;
}

void lc_cli_remote_opts(lc_remote_opts *o)
{
    o->target = lc_cli_cache_target();
    o->peers = lc_cli_cache_opts.peers;
    o->instance = lc_cli_cache_opts.instance;
    o->token = lc_cli_cache_opts.token;
    o->cacert = lc_cli_cache_opts.cacert;
    o->tls_cert = lc_cli_cache_opts.tls_cert;
    o->tls_key = lc_cli_cache_opts.tls_key;
}

void lc_cli_cache_client_options(lc_cache_client_options *o)
{
    o->instance_name = lc_cli_cache_opts.instance;
    o->token = lc_cli_cache_opts.token;
    o->ca_file = lc_cli_cache_opts.cacert;
    o->cert_file = lc_cli_cache_opts.tls_cert;
    o->key_file = lc_cli_cache_opts.tls_key;
    o->peers = lc_cli_cache_opts.peers;
}

static const lc_flag registry_flags[] = {
    {"registry-auth", 0, LC_FLAG_STRING, &lc_cli_registry_opts.auth_file, NULL, "FILE",
     "registry credentials in Docker's config.json format (default: $DOCKER_CONFIG/config.json, "
     "else ~/.docker/config.json)"},
    {"registry-cacert", 0, LC_FLAG_STRING, &lc_cli_registry_opts.cacert, NULL, "FILE",
     "PEM CA bundle for registries with a private CA (default: the system store)"},
    {"insecure-registry", 0, LC_FLAG_LIST, &lc_cli_registry_opts.insecure, NULL, "HOST:PORT",
     "talk plain HTTP to this registry (repeatable)"},
    {"registry-chunk-size", 0, LC_FLAG_SIZE, &lc_cli_registry_opts.chunk_size, "0", "BYTES",
     "pushes upload blobs larger than this in chunks of this size (0: one request)"},
};
const lc_flag_group lc_cli_registry_group = LC_FLAG_GROUP(registry_flags);

lc_regclient_opts lc_cli_regclient_opts(void)
{
    return (lc_regclient_opts){.auth_file = lc_cli_registry_opts.auth_file,
                               .cacert = lc_cli_registry_opts.cacert,
                               .insecure = &lc_cli_registry_opts.insecure,
                               .chunk_size = (uint64_t)lc_cli_registry_opts.chunk_size};
}

static const lc_flag state_dir_flags[] = {
    {"state-dir", 0, LC_FLAG_STRING, &lc_cli_state_dir, NULL, "DIR",
     "local state directory: layers, blobs, images, stat cache (default: ~/.cache/layercache)"},
};
const lc_flag_group lc_cli_state_dir_group = LC_FLAG_GROUP(state_dir_flags);

int lc_cli_statedir_open(lc_statedir **sd, lc_err *err)
{
    char path[PATH_MAX];
    int rc;
    if (lc_cli_state_dir != NULL)
        snprintf(path, sizeof(path), "%s", lc_cli_state_dir);
    else if ((rc = lc_statedir_default(path, sizeof(path), err)) < 0)
        return rc;
    return lc_statedir_open(path, sd, err);
}

int lc_cli_parse(const lc_flag *flags, size_t n, const char *usage, int argc, char **argv,
                 lc_strlist *positional, lc_err *err)
{
    int rc = lc_flags_parse(flags, n, LC_CLI_ENV_PREFIX, argc, argv, 1, positional, err);
    if (rc == LC_FLAGS_HELP)
        lc_flags_usage(stdout, usage, flags, n, LC_CLI_ENV_PREFIX);
    return rc;
}

/* main.c - `layercache <command> [options]`: the build worker's front door.
 *
 * Each subcommand is one line in LC_COMMANDS below and a function
 *   int lc_cmd_<name>(int argc, char **argv)
 * (argv[0] is the command name; returns the process exit status) in its own
 * file, e.g. cmd_keys.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LC_VERSION
#define LC_VERSION "0.1.0"
#endif

/* name, one-line summary (shown by --help) */
#define LC_COMMANDS(X)                                                                             \
    X(build, "build a Dockerfile, reusing and sharing steps through the cache")                    \
    X(keys, "compute the cache key of every build step (nothing is built)")                        \
    X(images, "list the images in the local image store")                                          \
    X(image, "manage local images: image import OCI-LAYOUT NAME[:TAG]")                            \
    X(pull, "pull an image from a registry into the local image store")                          \
    X(push, "push an image of the local image store to a registry")                              \
    X(stats, "cache server statistics: hits, misses, hit rate, build time saved")                  \
    X(ls, "list cache entries with their step instructions, newest or most hit first")             \
    X(purge, "remove cache entries by key, instance, writer, age, or all")

#define LC_DECLARE(name, summary) int lc_cmd_##name(int argc, char **argv);
LC_COMMANDS(LC_DECLARE)

typedef struct lc_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} lc_command;

#define LC_ENTRY(name, summary) {#name, lc_cmd_##name, summary},
static const lc_command commands[] = {LC_COMMANDS(LC_ENTRY)};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: layercache <command> [options]\n\n"
                 "layercache builds container images from Dockerfiles and shares every step's\n"
                 "result through a REAPI cache server.\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n  layercache <command> --help   options of a command\n"
                 "  layercache --version          print the version\n");
}

int main(int argc, char **argv)
{
    /* Hashing uses libuv's thread pool: size it to the machine (read once,
     * at the pool's first use). */
    if (getenv("UV_THREADPOOL_SIZE") == NULL) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        char buf[16];
        snprintf(buf, sizeof(buf), "%ld", n > 4 ? (n > 128 ? 128 : n) : 4);
        setenv("UV_THREADPOOL_SIZE", buf, 0);
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("layercache %s\n", LC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(cmd, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "layercache: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}

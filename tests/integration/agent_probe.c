/* agent_probe.c - asks the ssh agent at $SSH_AUTH_SOCK for its identities
 * and prints each key's comment, one a line (the SSH agent protocol:
 * SSH2_AGENTC_REQUEST_IDENTITIES = 11, answer 12). Built static by
 * test_run_secrets and run inside a RUN --mount=type=ssh step, where no
 * ssh-add exists. Exit 2 when the agent cannot be reached. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int read_full(int fd, unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int main(void)
{
    const char *path = getenv("SSH_AUTH_SOCK");
    if (path == NULL) {
        fprintf(stderr, "SSH_AUTH_SOCK is not set\n");
        return 2;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror(path);
        return 2;
    }
    const unsigned char req[5] = {0, 0, 0, 1, 11};
    unsigned char hdr[4];
    if (write(fd, req, sizeof(req)) != (ssize_t)sizeof(req) || read_full(fd, hdr, 4) < 0) {
        perror("agent");
        return 2;
    }
    uint32_t len = be32(hdr);
    unsigned char *msg = len > 0 && len < (1u << 20) ? malloc(len) : NULL;
    if (msg == NULL || read_full(fd, msg, len) < 0 || msg[0] != 12 || len < 5) {
        fprintf(stderr, "bad agent answer\n");
        return 2;
    }
    uint32_t nkeys = be32(msg + 1), off = 5;
    for (uint32_t k = 0; k < nkeys; k++) {
        if (off + 4 > len)
            return 2;
        off += 4 + be32(msg + off); /* key blob */
        if (off + 4 > len)
            return 2;
        uint32_t cl = be32(msg + off);
        off += 4;
        if (off + cl > len)
            return 2;
        printf("%.*s\n", (int)cl, (const char *)msg + off);
        off += cl;
    }
    free(msg);
    close(fd);
    return 0;
}

/* peers.c - see peers.h. */
#include "peers.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int lc_peers_split_hostport(const char *s, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon[1] == '\0')
        return -1;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hcap || strlen(colon + 1) >= pcap)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, pcap, "%s", colon + 1);
    return 0;
}

bool lc_peers_is_numeric_host(const char *h)
{
    struct in_addr a4;
    struct in6_addr a6;
    return inet_pton(AF_INET, h, &a4) == 1 || inet_pton(AF_INET6, h, &a6) == 1;
}

size_t lc_peers_resolve(const char *host, const char *port, char out[][LC_PEERS_ID_MAX], size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    size_t n = 0;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return 0;
    for (struct addrinfo *a = res; a != NULL && n < cap; a = a->ai_next) {
        char ip[INET6_ADDRSTRLEN];
        const void *src = a->ai_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if (inet_ntop(a->ai_family, src, ip, sizeof(ip)) == NULL)
            continue;
        char id[LC_PEERS_ID_MAX];
        if (a->ai_family == AF_INET6)
            snprintf(id, sizeof(id), "[%s]:%s", ip, port);
        else
            snprintf(id, sizeof(id), "%s:%s", ip, port);
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup |= strcmp(out[i], id) == 0;
        if (!dup)
            snprintf(out[n++], LC_PEERS_ID_MAX, "%s", id);
    }
    freeaddrinfo(res);
    return n;
}

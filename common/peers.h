/* peers.h - peer lists of a layercache cluster: HOST:PORT entries and the
 * DNS form, one name whose addresses are the replicas (a Kubernetes
 * headless Service). The replicas (cache-server/cluster.c) and clients that
 * route to them (common/cache_client.c) must turn a name into the same
 * peer ids, or they would place keys differently: both use this file. */
#ifndef LC_PEERS_H
#define LC_PEERS_H

#include <stdbool.h>
#include <stddef.h>

/* Room for one peer id, "A.B.C.D:PORT" or "[V6]:PORT" or a listed name. */
#define LC_PEERS_ID_MAX 300

/* Splits "HOST:PORT" or "[V6]:PORT" (brackets dropped) into host and port;
 * -1 when there is no port or a part does not fit. */
int lc_peers_split_hostport(const char *s, char *host, size_t hcap, char *port, size_t pcap);

/* True for an IPv4 or IPv6 address literal (no brackets). */
bool lc_peers_is_numeric_host(const char *host);

/* The ids of host's addresses with port, as the replicas of a DNS peer list
 * name each other: "A.B.C.D:PORT" or "[V6]:PORT", each once, in resolver
 * order, at most cap. Returns how many (0: the name does not resolve). */
size_t lc_peers_resolve(const char *host, const char *port, char out[][LC_PEERS_ID_MAX],
                        size_t cap);

#endif

/* test_cache_client_peers.c - the cache client routing straight to owners
 * (lc_cache_client_options.peers) against three real replicas on loopback
 * (--peers naming all three, --replication 2).
 *
 * Checks: writes (BatchUpdateBlobs split by owner, ByteStream.Write,
 * UpdateActionResult) and reads (GetActionResult one by one and
 * concurrently, FindMissingBlobs, BatchReadBlobs, ByteStream.Read) through
 * the routed client give the right answers; each replica's own counters
 * (Admin GetStats with the cluster token: the replica's local view, where
 * only calls a client made to it count) show that every action-cache call
 * landed on the key's first owner by common/placement, not on one replica;
 * with one replica SIGKILLed every key still hits, blobs still read and
 * new writes succeed (the client falls back to the next owner). */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "admin_client.h"
#include "cache_client.h"
#include "itest.h"
#include "placement.h"
#include "build-worker/layer/fsutil.h"

#define N_REP 3
#define K 24
#define BIG_SIZE (300 * 1024)
#define TOKEN "layercache-cluster" /* the replicas' default cluster token */

static struct {
    pid_t pid;
    char dir[64];
    char id[64]; /* 127.0.0.1:PORT */
} rep[N_REP];

static void kill_all(void)
{
    for (int i = 0; i < N_REP; i++) {
        if (rep[i].pid > 0) {
            kill(rep[i].pid, SIGKILL);
            waitpid(rep[i].pid, NULL, 0);
            rep[i].pid = -1;
        }
        if (rep[i].dir[0] != '\0') {
            lc_fs_rm_rf(rep[i].dir);
            rep[i].dir[0] = '\0';
        }
    }
}

static void on_signal(int sig)
{
    for (int i = 0; i < N_REP; i++)
        if (rep[i].pid > 0)
            kill(rep[i].pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A loopback port p with p + 1 (the peer port) free too. */
static int free_port_pair(void)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        int a = socket(AF_INET, SOCK_STREAM, 0), b = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        int port = -1;
        if (bind(a, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
            getsockname(a, (struct sockaddr *)&sa, &len) == 0) {
            sa.sin_port = htons((uint16_t)(ntohs(sa.sin_port) + 1));
            if (bind(b, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                port = ntohs(sa.sin_port) - 1;
        }
        close(a);
        close(b);
        if (port > 0)
            return port;
    }
    CHECK(0, "no free port pair");
    return -1;
}

static void start_replica(int i, const char *peers)
{
    const char *bin_dir = getenv("LC_BIN");
    char bin[1024], data[128];
    snprintf(bin, sizeof(bin), "%s/layercache-server", bin_dir != NULL ? bin_dir : "bin");
    itest_srv.dir[0] = '\0';
    itest_tmpdir();
    snprintf(rep[i].dir, sizeof(rep[i].dir), "%s", itest_srv.dir);
    snprintf(data, sizeof(data), "%s/data", itest_srv.dir);
    char *argv[] = {bin,       "--listen",      rep[i].id,     "--data",  data,
                    "--peers", (char *)peers,   "--self",      rep[i].id, "--replication",
                    "2",       "--http-listen", "127.0.0.1:0", NULL};
    itest_process_start(argv, "layercache-server listening grpc=");
    CHECK(strcmp(itest_srv.addr, rep[i].id) == 0, "replica %d listens at %s, not %s", i,
          itest_srv.addr, rep[i].id);
    rep[i].pid = itest_srv.pid;
    itest_srv.pid = -1; /* ours to stop, not itest.h's */
    itest_srv.dir[0] = '\0';
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
}

/* Index of the first owner of an action key / a blob among the replicas. */
static int first_owner_action(const lc_digest *d)
{
    const char *ids[N_REP] = {rep[0].id, rep[1].id, rep[2].id};
    uint8_t key[256];
    size_t order[N_REP];
    lc_placement_rank(ids, N_REP, key, lc_placement_action_key("", d, key, sizeof(key)), order);
    return (int)order[0];
}

/* One replica's own counters (the cluster token makes it answer locally). */
static void local_stats(int i, uint64_t *hits, uint64_t *updates)
{
    lc_cache_client_options o = {.token = TOKEN};
    lc_cache_client *c = NULL;
    lc_err err = {0};
    char target[96];
    snprintf(target, sizeof(target), "grpc://%s", rep[i].id);
    CHECK_RC(lc_cache_client_open(target, &o, &c, &err), 0, &err);
    Layercache__V1__GetStatsResponse *st = NULL;
    CHECK_RC(lc_admin_client_get_stats(c, NULL, &st, &err), 0, &err);
    CHECK(st->total != NULL, "GetStats of replica %d has no total", i);
    *hits = st->total->ac_hits;
    *updates = st->total->ac_updates;
    lc_admin_stats_free(&st);
    lc_cache_client_close(&c);
}

static lc_action_result *result_of(const lc_digest *small, const lc_digest *big)
{
    static Build__Bazel__Remote__Execution__V2__OutputFile of[2];
    static Build__Bazel__Remote__Execution__V2__OutputFile *ofs[2];
    static Build__Bazel__Remote__Execution__V2__Digest dm[2];
    static char hex[2][LC_HASH_HEX_LEN + 1];
    static lc_action_result ar;
    const lc_digest *ds[2] = {small, big};
    for (int j = 0; j < 2; j++) {
        build__bazel__remote__execution__v2__output_file__init(&of[j]);
        build__bazel__remote__execution__v2__digest__init(&dm[j]);
        lc_digest_hex(ds[j], hex[j]);
        dm[j].hash = hex[j];
        dm[j].size_bytes = ds[j]->size;
        of[j].path = j == 0 ? "out/small" : "out/big";
        of[j].digest = &dm[j];
        ofs[j] = &of[j];
    }
    build__bazel__remote__execution__v2__action_result__init(&ar);
    ar.n_output_files = 2;
    ar.output_files = ofs;
    return &ar;
}

static unsigned char small_data[K][64], big_data[K][BIG_SIZE];
static lc_digest small_d[K], big_d[K], action_d[K];

static void check_reads(lc_cache_client *c, const char *label)
{
    lc_err err = {0};
    /* GetActionResult one by one, then all at once. */
    for (int i = 0; i < K; i++) {
        lc_action_result *r = NULL;
        CHECK_RC(lc_cache_client_get_action_result(c, &action_d[i], &r, &err), 0, &err);
        CHECK(r->n_output_files == 2, "%s: entry %d has %zu outputs", label, i, r->n_output_files);
        lc_action_result_free(&r);
    }
    lc_cache_lookup look[K];
    CHECK_RC(lc_cache_client_get_action_results(c, action_d, K, look, &err), 0, &err);
    for (int i = 0; i < K; i++) {
        CHECK(look[i].status == 0 && look[i].result != NULL, "%s: lookup %d: %d", label, i,
              look[i].status);
        lc_action_result_free(&look[i].result);
    }
    /* FindMissingBlobs: every stored blob present, unknown ones missing. */
    lc_digest all[3 * K];
    unsigned char missing[3 * K];
    for (int i = 0; i < K; i++) {
        all[3 * i] = small_d[i];
        all[3 * i + 1] = big_d[i];
        char absent[32];
        int n = snprintf(absent, sizeof(absent), "absent %s %d", label, i);
        lc_digest_of(absent, (size_t)n, &all[3 * i + 2]);
    }
    CHECK_RC(lc_cache_client_find_missing(c, all, 3 * K, missing, &err), 0, &err);
    for (int i = 0; i < 3 * K; i++)
        CHECK(missing[i] == (i % 3 == 2), "%s: FindMissingBlobs item %d says %d", label, i,
              missing[i]);
    /* BatchReadBlobs of the small blobs; ByteStream.Read of the big ones. */
    lc_cache_blob blobs[K];
    for (int i = 0; i < K; i++)
        blobs[i].digest = small_d[i];
    CHECK_RC(lc_cache_client_batch_read(c, blobs, K, &err), 0, &err);
    for (int i = 0; i < K; i++) {
        CHECK(blobs[i].status == 0 && blobs[i].len == sizeof(small_data[i]) &&
                  memcmp(blobs[i].data, small_data[i], blobs[i].len) == 0,
              "%s: BatchReadBlobs blob %d", label, i);
        free(blobs[i].data);
    }
    for (int i = 0; i < K; i++) {
        void *got = NULL;
        CHECK_RC(lc_cache_client_read_buffer(c, &big_d[i], &got, &err), 0, &err);
        CHECK(memcmp(got, big_data[i], BIG_SIZE) == 0, "%s: ByteStream.Read blob %d", label, i);
        free(got);
    }
    fprintf(stderr,
            "ok   %s: %d hits (single and concurrent), FindMissingBlobs, batch and "
            "ByteStream reads\n",
            label, K);
}

int main(void)
{
    lc_err err = {0};
    char peers[256] = "";
    atexit(kill_all);
    for (int i = 0; i < N_REP; i++) {
        snprintf(rep[i].id, sizeof(rep[i].id), "127.0.0.1:%d", free_port_pair());
        rep[i].pid = -1;
        snprintf(peers + strlen(peers), sizeof(peers) - strlen(peers), "%s%s", i ? "," : "",
                 rep[i].id);
    }
    for (int i = 0; i < N_REP; i++)
        start_replica(i, peers);
    usleep(1500 * 1000); /* started one after the other: let each see the others up */

    /* The routed client: no front address, only the peer list. */
    lc_cache_client_options o = {.peers = peers, .deadline_ms = 30000};
    lc_cache_client *c = NULL;
    CHECK_RC(lc_cache_client_open(NULL, &o, &c, &err), 0, &err);
    lc_cache_capabilities caps;
    CHECK_RC(lc_cache_client_get_capabilities(c, &caps, &err), 0, &err);
    CHECK_RC(lc_cache_capabilities_check(&caps, 1, &err), 0, &err);

    /* ---- writes ---- */
    lc_cache_blob up[K];
    for (int i = 0; i < K; i++) {
        itest_fill(small_data[i], sizeof(small_data[i]), 1000 + (uint64_t)i);
        itest_fill(big_data[i], BIG_SIZE, 2000 + (uint64_t)i);
        lc_digest_of(small_data[i], sizeof(small_data[i]), &small_d[i]);
        lc_digest_of(big_data[i], BIG_SIZE, &big_d[i]);
        char a[32];
        int n = snprintf(a, sizeof(a), "action %d", i);
        lc_digest_of(a, (size_t)n, &action_d[i]);
        up[i] = (lc_cache_blob){
            .digest = small_d[i], .data = small_data[i], .len = sizeof(small_data[i])};
    }
    CHECK_RC(lc_cache_client_batch_update(c, up, K, &err), 0, &err);
    for (int i = 0; i < K; i++) {
        CHECK(up[i].status == 0, "BatchUpdateBlobs blob %d: %d", i, up[i].status);
        CHECK_RC(lc_cache_client_write_buffer(c, &big_d[i], big_data[i], &err), 0, &err);
        CHECK_RC(lc_cache_client_update_action_result(c, &action_d[i],
                                                      result_of(&small_d[i], &big_d[i]), &err),
                 0, &err);
    }

    /* ---- reads, and where the calls landed ---- */
    check_reads(c, "3 replicas");
    uint64_t want_hits[N_REP] = {0}, want_updates[N_REP] = {0};
    for (int i = 0; i < K; i++) {
        int f = first_owner_action(&action_d[i]);
        want_hits[f] += 2; /* one single lookup, one concurrent */
        want_updates[f] += 1;
    }
    int replicas_used = 0;
    for (int i = 0; i < N_REP; i++) {
        uint64_t hits = 0, updates = 0;
        local_stats(i, &hits, &updates);
        fprintf(stderr,
                "     replica %d (%s): %" PRIu64 " hits, %" PRIu64
                " updates from clients (first owner of %" PRIu64 " keys)\n",
                i, rep[i].id, hits, updates, want_updates[i]);
        CHECK(hits == want_hits[i] && updates == want_updates[i],
              "replica %d counted %" PRIu64 " hits and %" PRIu64 " updates, want %" PRIu64
              " and %" PRIu64 " (the calls of the keys it owns first)",
              i, hits, updates, want_hits[i], want_updates[i]);
        replicas_used += hits > 0;
    }
    CHECK(replicas_used >= 2, "the calls landed on %d replica(s) only", replicas_used);
    fprintf(stderr, "ok   every action-cache call landed on its key's first owner\n");

    /* ---- one replica SIGKILLed: the client falls back to the next owner ---- */
    int dead = first_owner_action(&action_d[0]);
    kill(rep[dead].pid, SIGKILL);
    waitpid(rep[dead].pid, NULL, 0);
    rep[dead].pid = -1;
    double t0 = itest_now();
    check_reads(c, "one replica killed");
    double took = itest_now() - t0;
    CHECK(took < 20, "reads with a dead replica took %.1f s", took);
    /* New writes whose first owner is the dead replica still succeed. */
    int wrote = 0;
    for (int i = 0; wrote < 3 && i < 200; i++) {
        char a[32];
        int n = snprintf(a, sizeof(a), "late action %d", i);
        lc_digest ad;
        lc_digest_of(a, (size_t)n, &ad);
        if (first_owner_action(&ad) != dead)
            continue;
        CHECK_RC(
            lc_cache_client_update_action_result(c, &ad, result_of(&small_d[0], &big_d[0]), &err),
            0, &err);
        lc_action_result *r = NULL;
        CHECK_RC(lc_cache_client_get_action_result(c, &ad, &r, &err), 0, &err);
        lc_action_result_free(&r);
        wrote++;
    }
    CHECK(wrote == 3, "no action keys owned first by the dead replica");
    fprintf(stderr, "ok   writes owned first by the dead replica go to the next owner\n");
    lc_cache_client_close(&c);

    /* The live replicas stop cleanly (an ASan build reports nothing). */
    for (int i = 0; i < N_REP; i++) {
        if (rep[i].pid <= 0)
            continue;
        int status = 0;
        kill(rep[i].pid, SIGTERM);
        waitpid(rep[i].pid, &status, 0);
        rep[i].pid = -1;
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "replica %d did not exit cleanly (wait status 0x%x)", i, status);
    }
    fprintf(stderr, "PASS\n");
    return 0;
}

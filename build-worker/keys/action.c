/* action.c - see action.h. */
#include "action.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Build__Bazel__Remote__Execution__V2__Digest pb_digest;

static void set_pb_digest(pb_digest *pd, const lc_digest *d, char hex[LC_HASH_HEX_LEN + 1])
{
    build__bazel__remote__execution__v2__digest__init(pd);
    lc_digest_hex(d, hex);
    pd->hash = hex;
    pd->size_bytes = d->size;
}

static int pack(const ProtobufCMessage *m, uint8_t **out, size_t *len, lc_digest *d)
{
    *len = protobuf_c_message_get_packed_size(m);
    *out = malloc(*len ? *len : 1);
    if (*out == NULL)
        return -LC_RESOURCE_EXHAUSTED;
    protobuf_c_message_pack(m, *out);
    lc_digest_of(*out, *len, d);
    return 0;
}

int lc_step_action_make(const lc_digest *input_key, const char *instruction, const char *platform,
                        lc_step_action *out, lc_err *err)
{
    memset(out, 0, sizeof(*out));
    Build__Bazel__Remote__Execution__V2__Platform__Property prop;
    Build__Bazel__Remote__Execution__V2__Platform__Property *props[1] = {&prop};
    Build__Bazel__Remote__Execution__V2__Platform plat;
    build__bazel__remote__execution__v2__platform__property__init(&prop);
    build__bazel__remote__execution__v2__platform__init(&plat);
    prop.name = "platform";
    prop.value = (char *)platform;
    plat.n_properties = 1;
    plat.properties = props;

    Build__Bazel__Remote__Execution__V2__Command cmd;
    build__bazel__remote__execution__v2__command__init(&cmd);
    char *args[2] = {LC_STEP_COMMAND_TOOL, (char *)instruction};
    char *outputs[1] = {"state.json"};
    cmd.n_arguments = 2;
    cmd.arguments = args;
    cmd.n_output_paths = 1;
    cmd.output_paths = outputs;
    cmd.platform = &plat;
    if (pack(&cmd.base, &out->command, &out->command_len, &out->command_digest) < 0)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");

    Build__Bazel__Remote__Execution__V2__Action action;
    build__bazel__remote__execution__v2__action__init(&action);
    pb_digest cd, root;
    char chex[LC_HASH_HEX_LEN + 1], rhex[LC_HASH_HEX_LEN + 1];
    set_pb_digest(&cd, &out->command_digest, chex);
    set_pb_digest(&root, &lc_digest_empty, rhex);
    action.command_digest = &cd;
    action.input_root_digest = &root;
    /* The input key covers everything the step depends on. */
    action.salt.data = (uint8_t *)input_key->hash;
    action.salt.len = LC_HASH_LEN;
    action.platform = &plat;
    if (pack(&action.base, &out->action, &out->action_len, &out->action_digest) < 0) {
        lc_step_action_clear(out);
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    }
    return 0;
}

void lc_step_action_clear(lc_step_action *a)
{
    free(a->command);
    free(a->action);
    memset(a, 0, sizeof(*a));
}

char *lc_step_command_instruction(const uint8_t *command, size_t len)
{
    Build__Bazel__Remote__Execution__V2__Command *cmd =
        build__bazel__remote__execution__v2__command__unpack(NULL, len, command);
    char *text = NULL;
    if (cmd != NULL && cmd->n_arguments == 2 && strcmp(cmd->arguments[0], LC_STEP_COMMAND_TOOL) == 0)
        text = strdup(cmd->arguments[1]);
    if (cmd != NULL)
        build__bazel__remote__execution__v2__command__free_unpacked(cmd, NULL);
    return text;
}

static void set_timestamp(Google__Protobuf__Timestamp *ts, double t)
{
    google__protobuf__timestamp__init(ts);
    ts->seconds = (int64_t)t;
    ts->nanos = (int32_t)((t - (double)(int64_t)t) * 1e9);
}

int lc_step_result_encode(const lc_step_result *r, const char *worker, double start, double end,
                          uint8_t **out, size_t *len, lc_err *err)
{
    int rc = 0;
    size_t nfiles = r->nlayers + 1;
    Build__Bazel__Remote__Execution__V2__OutputFile *files = calloc(nfiles, sizeof(*files));
    Build__Bazel__Remote__Execution__V2__OutputFile **fptrs = calloc(nfiles, sizeof(*fptrs));
    pb_digest *digests = calloc(nfiles, sizeof(*digests));
    char(*hexes)[LC_HASH_HEX_LEN + 1] = calloc(nfiles, sizeof(*hexes));
    char(*paths)[32] = calloc(nfiles, sizeof(*paths));
    if (!files || !fptrs || !digests || !hexes || !paths) {
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nfiles; i++) {
        build__bazel__remote__execution__v2__output_file__init(&files[i]);
        if (i == 0)
            snprintf(paths[i], sizeof(paths[i]), "state.json");
        else
            snprintf(paths[i], sizeof(paths[i]), "layers/%zu", i - 1);
        set_pb_digest(&digests[i], i == 0 ? &r->state : &r->layers[i - 1], hexes[i]);
        files[i].path = paths[i];
        files[i].digest = &digests[i];
        fptrs[i] = &files[i];
    }
    Build__Bazel__Remote__Execution__V2__ExecutedActionMetadata meta;
    build__bazel__remote__execution__v2__executed_action_metadata__init(&meta);
    Google__Protobuf__Timestamp ts_start, ts_end;
    set_timestamp(&ts_start, start);
    set_timestamp(&ts_end, end);
    meta.worker = (char *)(worker ? worker : "");
    meta.worker_start_timestamp = &ts_start;
    meta.worker_completed_timestamp = &ts_end;
    meta.execution_start_timestamp = &ts_start;
    meta.execution_completed_timestamp = &ts_end;

    Build__Bazel__Remote__Execution__V2__ActionResult ar;
    build__bazel__remote__execution__v2__action_result__init(&ar);
    ar.n_output_files = nfiles;
    ar.output_files = fptrs;
    ar.execution_metadata = &meta;
    lc_digest unused;
    if (pack(&ar.base, out, len, &unused) < 0)
        rc = lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
out:
    free(files);
    free(fptrs);
    free(digests);
    free(hexes);
    free(paths);
    return rc;
}

static int parse_pb_digest(const pb_digest *pd, lc_digest *d, lc_err *err)
{
    if (pd == NULL || pd->hash == NULL)
        return lc_err_set(err, LC_INVALID_ARGUMENT, "output file without a digest");
    return lc_digest_parse(pd->hash, strlen(pd->hash), pd->size_bytes, d, err);
}

int lc_step_result_decode(const Build__Bazel__Remote__Execution__V2__ActionResult *ar,
                          lc_step_result *r, lc_err *err)
{
    memset(r, 0, sizeof(*r));
    int have_state = 0, rc = 0;
    size_t nfound = 0;
    r->layers = calloc(ar->n_output_files ? ar->n_output_files : 1, sizeof(*r->layers));
    if (r->layers == NULL)
        return lc_err_set(err, LC_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < ar->n_output_files; i++) {
        const Build__Bazel__Remote__Execution__V2__OutputFile *f = ar->output_files[i];
        if (f->path == NULL)
            continue;
        if (strcmp(f->path, "state.json") == 0) {
            if ((rc = parse_pb_digest(f->digest, &r->state, err)) < 0)
                goto fail;
            have_state = 1;
        } else if (strncmp(f->path, "layers/", 7) == 0) {
            char *end = NULL;
            unsigned long idx = strtoul(f->path + 7, &end, 10);
            if (*end != '\0' || idx >= ar->n_output_files) {
                rc = lc_err_set(err, LC_INVALID_ARGUMENT, "bad layer path '%s'", f->path);
                goto fail;
            }
            if ((rc = parse_pb_digest(f->digest, &r->layers[idx], err)) < 0)
                goto fail;
            nfound++;
            if (idx + 1 > r->nlayers)
                r->nlayers = idx + 1;
        }
    }
    if (nfound != r->nlayers) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "action result lists layers with gaps");
        goto fail;
    }
    if (!have_state) {
        rc = lc_err_set(err, LC_INVALID_ARGUMENT, "action result has no state.json");
        goto fail;
    }
    const Build__Bazel__Remote__Execution__V2__ExecutedActionMetadata *m = ar->execution_metadata;
    if (m != NULL) {
        if (m->worker != NULL && *m->worker != '\0')
            r->worker = strdup(m->worker);
        if (m->execution_start_timestamp && m->execution_completed_timestamp)
            r->exec_seconds =
                (double)(m->execution_completed_timestamp->seconds -
                         m->execution_start_timestamp->seconds) +
                (m->execution_completed_timestamp->nanos - m->execution_start_timestamp->nanos) / 1e9;
    }
    return 0;
fail:
    lc_step_result_clear(r);
    return rc;
}

void lc_step_result_clear(lc_step_result *r)
{
    free(r->layers);
    free(r->worker);
    memset(r, 0, sizeof(*r));
}

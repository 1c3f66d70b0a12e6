/* secrets.h - what `layercache build --secret` and `--ssh` offer to
 * RUN --mount=type=secret and type=ssh, in docker buildx's spelling:
 *
 *   --secret id=ID[,src=FILE]        the file's content (source= too)
 *   --secret id=ID,env=VAR           the variable's value
 *   --secret id=ID,type=env[,src=VAR]  type=file|env, as buildx
 *   --secret id=ID                   $ID if that variable is set, else the file ./ID
 *   --ssh default                    the agent at $SSH_AUTH_SOCK
 *   --ssh ID=SOCKET                  the agent listening on SOCKET
 *
 * Every --secret is checked when the build starts (the file exists and is
 * at most 500 KiB, as buildx) but read only when a step mounts it, into
 * memory that is wiped after use: a value never reaches a log, an error
 * message, a layer, a key, the state directory or the cache server. An
 * --ssh path must be a unix socket (an agent); private key files are
 * refused: load them into ssh-agent.
 */
#ifndef LC_SECRETS_H
#define LC_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "strlist.h"

/* buildx's limit for one secret. */
#define LC_SECRET_MAX_SIZE (500 * 1024)

typedef struct lc_secrets lc_secrets;

/* Parses and checks the flags (either list may be NULL). Errors name the
 * flag value and the file or variable, never a value. */
int lc_secrets_open(const lc_strlist *secrets, const lc_strlist *ssh, lc_secrets **out,
                    lc_err *err);
void lc_secrets_free(lc_secrets **s);

/* Reads secret id: *found false (and 0 returned) when no --secret names
 * it. *data is malloc'd (NUL-terminated beyond len); release it with
 * lc_secrets_wipe. */
int lc_secrets_get(const lc_secrets *s, const char *id, char **data, size_t *len, bool *found,
                   lc_err *err);
void lc_secrets_wipe(char **data, size_t len);

/* The agent socket --ssh gave id, or NULL. */
const char *lc_secrets_ssh(const lc_secrets *s, const char *id);

#endif

/* log.h - leveled logging to stderr, safe from any thread.
 * Lines look like `2026-11-28T01:02:03.456Z I server: message`. */
#ifndef LC_LOG_H
#define LC_LOG_H

enum lc_log_level { LC_LOG_DEBUG = 0, LC_LOG_INFO, LC_LOG_WARN, LC_LOG_ERROR, LC_LOG_OFF };

void lc_log_set_level(int level);
int lc_log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off"; returns -1 if unknown. */
int lc_log_level_parse(const char *name);

void lc_log(int level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LC_DEBUG(mod, ...) lc_log(LC_LOG_DEBUG, mod, __VA_ARGS__)
#define LC_INFO(mod, ...) lc_log(LC_LOG_INFO, mod, __VA_ARGS__)
#define LC_WARN(mod, ...) lc_log(LC_LOG_WARN, mod, __VA_ARGS__)
#define LC_ERROR(mod, ...) lc_log(LC_LOG_ERROR, mod, __VA_ARGS__)

#endif

#ifndef DURUS_CBERKELEYDB_SHIM_H
#define DURUS_CBERKELEYDB_SHIM_H

#include <db.h>
#include <string.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Berkeley DB's API is a table of function pointers inside each handle, and
 * several of its parts are macros. Swift cannot call macros and calls the
 * pointers awkwardly, so each operation the Swift side uses is one inline
 * function here. */

/* Reserves disk blocks for the first `length` bytes of an open file without
 * changing its size (fallocate with FALLOC_FL_KEEP_SIZE, which glibc only
 * declares under _GNU_SOURCE). 0, or -1 with errno set. */
static inline int durus_reserve_file_space(int fd, long long length) {
    return (int)syscall(SYS_fallocate, fd, 1 /* FALLOC_FL_KEEP_SIZE */, (off_t)0, (off_t)length);
}

/* Lowers the calling thread's scheduling priority (Linux keeps a nice value
 * per thread); for the background collector. */
static inline int durus_lower_thread_priority(int nice_value) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice_value);
}

/* Flags, as unsigned values (some do not fit the Int32 Swift would infer). */
static const u_int32_t durus_DB_CREATE = DB_CREATE;
static const u_int32_t durus_DB_RDONLY = DB_RDONLY;
static const u_int32_t durus_DB_THREAD = DB_THREAD;
static const u_int32_t durus_DB_RECOVER = DB_RECOVER;
static const u_int32_t durus_DB_REGISTER = DB_REGISTER;
static const u_int32_t durus_DB_BACKUP_CLEAN = DB_BACKUP_CLEAN;
static const u_int32_t durus_DB_INIT_TXN = DB_INIT_TXN;
static const u_int32_t durus_DB_INIT_LOCK = DB_INIT_LOCK;
static const u_int32_t durus_DB_INIT_LOG = DB_INIT_LOG;
static const u_int32_t durus_DB_INIT_MPOOL = DB_INIT_MPOOL;
static const u_int32_t durus_DB_AUTO_COMMIT = DB_AUTO_COMMIT;
static const u_int32_t durus_DB_MULTIVERSION = DB_MULTIVERSION;
static const u_int32_t durus_DB_TXN_SNAPSHOT = DB_TXN_SNAPSHOT;
static const u_int32_t durus_DB_READ_COMMITTED = DB_READ_COMMITTED;
static const u_int32_t durus_DB_TXN_NOSYNC = DB_TXN_NOSYNC;
static const u_int32_t durus_DB_TXN_WRITE_NOSYNC = DB_TXN_WRITE_NOSYNC;
static const u_int32_t durus_DB_REGION_INIT = DB_REGION_INIT;
static const u_int32_t durus_DB_TXN_SYNC = DB_TXN_SYNC;
static const u_int32_t durus_DB_FIRST = DB_FIRST;
static const u_int32_t durus_DB_LAST = DB_LAST;
static const u_int32_t durus_DB_NEXT = DB_NEXT;
static const u_int32_t durus_DB_LOCK_DEFAULT = DB_LOCK_DEFAULT;
static const u_int32_t durus_DB_CHKSUM = DB_CHKSUM;
static const u_int32_t durus_DB_TXN_NOT_DURABLE = DB_TXN_NOT_DURABLE;

static const int durus_DB_NOTFOUND = DB_NOTFOUND;
static const int durus_DB_KEYEXIST = DB_KEYEXIST;
static const int durus_DB_LOCK_DEADLOCK = DB_LOCK_DEADLOCK;
static const int durus_DB_LOCK_NOTGRANTED = DB_LOCK_NOTGRANTED;
static const int durus_DB_RUNRECOVERY = DB_RUNRECOVERY;
static const int durus_DB_BUFFER_SMALL = DB_BUFFER_SMALL;

static const DBTYPE durus_DB_BTREE = DB_BTREE;
static const DBTYPE durus_DB_HASH = DB_HASH;
static const DBTYPE durus_DB_UNKNOWN = DB_UNKNOWN;

/* ---- environment ---- */
static inline int durus_env_create(DB_ENV **env) { return db_env_create(env, 0); }
static inline int durus_env_open(DB_ENV *env, const char *home, u_int32_t flags, int mode) {
    return env->open(env, home, flags, mode);
}
static inline int durus_env_close(DB_ENV *env) { return env->close(env, 0); }
/* Removes the environment's region files (its shared cache and tables) when no
 * other process has it open; EBUSY otherwise. The handle is consumed. */
static inline int durus_env_remove(const char *home) {
    DB_ENV *env = NULL;
    int r = db_env_create(&env, 0);
    if (r != 0) return r;
    return env->remove(env, home, 0);
}
/* Hot backup: copies the databases, then the log files, into target. */
static inline int durus_env_backup(DB_ENV *env, const char *target, u_int32_t flags) {
    return env->backup(env, target, flags);
}
/* Runs catastrophic recovery over a hot backup (every log file copied), in a
 * private environment that leaves no region files behind. */
static inline int durus_env_recover_backup(const char *home) {
    DB_ENV *env = NULL;
    int r = db_env_create(&env, 0);
    if (r != 0) return r;
    r = env->open(env, home, DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG | DB_INIT_MPOOL
                  | DB_RECOVER_FATAL | DB_PRIVATE, 0644);
    int c = env->close(env, 0);
    return r != 0 ? r : c;
}
static inline int durus_env_set_cachesize(DB_ENV *env, u_int32_t gbytes, u_int32_t bytes, int ncache) {
    return env->set_cachesize(env, gbytes, bytes, ncache);
}
static inline int durus_env_set_flags(DB_ENV *env, u_int32_t flags, int on) {
    return env->set_flags(env, flags, on);
}
static inline int durus_env_set_lk_detect(DB_ENV *env, u_int32_t policy) {
    return env->set_lk_detect(env, policy);
}
static inline int durus_env_set_lk_max(DB_ENV *env, u_int32_t locks, u_int32_t lockers, u_int32_t objects) {
    int r = env->set_lk_max_locks(env, locks);
    if (r == 0) r = env->set_lk_max_lockers(env, lockers);
    if (r == 0) r = env->set_lk_max_objects(env, objects);
    return r;
}
static inline int durus_env_set_tx_max(DB_ENV *env, u_int32_t max) { return env->set_tx_max(env, max); }
static inline int durus_env_set_lg_max(DB_ENV *env, u_int32_t bytes) { return env->set_lg_max(env, bytes); }
static inline int durus_env_set_lg_bsize(DB_ENV *env, u_int32_t bytes) { return env->set_lg_bsize(env, bytes); }
/* Forced: an unforced checkpoint that finds no log written since the last one
 * is skipped, and when that last one ran while a transaction was active, its
 * old LSN keeps every later log file from ever being removed. */
static inline int durus_env_txn_checkpoint(DB_ENV *env, u_int32_t kbyte, u_int32_t min) {
    return env->txn_checkpoint(env, kbyte, min, DB_FORCE);
}
static inline int durus_env_memp_trickle(DB_ENV *env, int percent) {
    int written = 0;
    return env->memp_trickle(env, percent, &written);
}
static inline int durus_env_log_remove_unused(DB_ENV *env) {
    char **list = NULL;
    int r = env->log_archive(env, &list, DB_ARCH_REMOVE);
    if (list != NULL) free(list);
    return r;
}

/* Routes Berkeley DB's own error messages to a callback, so Swift errors can carry them. */
typedef void (*durus_errcall)(const DB_ENV *env, const char *prefix, const char *message);
static inline void durus_env_set_errcall(DB_ENV *env, durus_errcall call) { env->set_errcall(env, call); }

/* ---- transactions ---- */
static inline int durus_txn_begin(DB_ENV *env, DB_TXN **txn, u_int32_t flags) {
    return env->txn_begin(env, NULL, txn, flags);
}
static inline int durus_txn_commit(DB_TXN *txn, u_int32_t flags) { return txn->commit(txn, flags); }
/* Writes and syncs the log to its current end. Callers at the same time
 * wait for one another's write, and one that finds the log synced past the
 * end it saw when called skips its own. */
static inline int durus_env_log_flush(DB_ENV *env) { return env->log_flush(env, NULL); }
static inline int durus_txn_abort(DB_TXN *txn) { return txn->abort(txn); }

/* ---- databases ---- */
static inline int durus_db_create(DB **db, DB_ENV *env) { return db_create(db, env, 0); }
static inline int durus_db_open(DB *db, DB_TXN *txn, const char *file, DBTYPE type, u_int32_t flags, int mode) {
    return db->open(db, txn, file, NULL, type, flags, mode);
}
static inline int durus_db_get_type(DB *db, DBTYPE *type) { return db->get_type(db, type); }
static inline int durus_db_close(DB *db) { return db->close(db, 0); }
static inline int durus_db_set_flags(DB *db, u_int32_t flags) { return db->set_flags(db, flags); }
/* Writes the table's dirty pages and flushes the file to disk. */
static inline int durus_db_sync(DB *db) { return db->sync(db, 0); }
/* Removes a table's file, as a transaction of its own. */
static inline int durus_env_dbremove(DB_ENV *env, const char *file) {
    return env->dbremove(env, NULL, file, NULL, DB_AUTO_COMMIT);
}

/* get into malloc'd memory (required for DB_THREAD handles); the caller frees data->data. */
static inline int durus_db_get(DB *db, DB_TXN *txn, const void *key, u_int32_t klen, void **data, u_int32_t *dlen) {
    DBT k, d;
    memset(&k, 0, sizeof k); memset(&d, 0, sizeof d);
    k.data = (void *)key; k.size = klen;
    d.flags = DB_DBT_MALLOC;
    int r = db->get(db, txn, &k, &d, 0);
    if (r == 0) { *data = d.data; *dlen = d.size; } else { *data = NULL; *dlen = 0; }
    return r;
}
/* get into the caller's buffer; DB_BUFFER_SMALL sets *dlen to the size needed. */
static inline int durus_db_get_into(DB *db, DB_TXN *txn, const void *key, u_int32_t klen,
                                    void *buffer, u_int32_t capacity, u_int32_t *dlen) {
    DBT k, d;
    memset(&k, 0, sizeof k); memset(&d, 0, sizeof d);
    k.data = (void *)key; k.size = klen;
    d.data = buffer; d.ulen = capacity; d.flags = DB_DBT_USERMEM;
    int r = db->get(db, txn, &k, &d, 0);
    *dlen = d.size;
    return r;
}
static inline int durus_db_exists(DB *db, DB_TXN *txn, const void *key, u_int32_t klen) {
    DBT k;
    memset(&k, 0, sizeof k);
    k.data = (void *)key; k.size = klen;
    return db->exists(db, txn, &k, 0);
}
static inline int durus_db_put(DB *db, DB_TXN *txn, const void *key, u_int32_t klen, const void *data, u_int32_t dlen) {
    DBT k, d;
    memset(&k, 0, sizeof k); memset(&d, 0, sizeof d);
    k.data = (void *)key; k.size = klen;
    d.data = (void *)data; d.size = dlen;
    return db->put(db, txn, &k, &d, 0);
}
/* Puts an empty value under key unless key is there already (DB_KEYEXIST). */
static inline int durus_db_put_new(DB *db, const void *key, u_int32_t klen) {
    DBT k, d;
    memset(&k, 0, sizeof k); memset(&d, 0, sizeof d);
    k.data = (void *)key; k.size = klen;
    return db->put(db, NULL, &k, &d, DB_NOOVERWRITE);
}
static inline int durus_db_del(DB *db, DB_TXN *txn, const void *key, u_int32_t klen) {
    DBT k;
    memset(&k, 0, sizeof k);
    k.data = (void *)key; k.size = klen;
    return db->del(db, txn, &k, 0);
}

/* ---- cursors ---- */
static inline int durus_cursor_open(DB *db, DB_TXN *txn, DBC **cursor, u_int32_t flags) {
    return db->cursor(db, txn, cursor, flags);
}
static inline int durus_cursor_close(DBC *cursor) { return cursor->close(cursor); }
/* Positions the cursor on `key` and reads its value into the caller's buffer
 * (DB_BUFFER_SMALL sets *dlen to the size needed). */
static inline int durus_cursor_find_into(DBC *cursor, const void *key, u_int32_t klen,
                                         void *buffer, u_int32_t capacity, u_int32_t *dlen) {
    DBT k, d;
    memset(&k, 0, sizeof k); memset(&d, 0, sizeof d);
    k.data = (void *)key; k.size = klen;
    d.data = buffer; d.ulen = capacity; d.flags = DB_DBT_USERMEM;
    int r = cursor->get(cursor, &k, &d, DB_SET);
    *dlen = d.size;
    return r;
}
/* Replaces the value under the cursor's current position. */
static inline int durus_cursor_put_current(DBC *cursor, const void *data, u_int32_t dlen) {
    DBT k, d;
    memset(&k, 0, sizeof k); memset(&d, 0, sizeof d);
    d.data = (void *)data; d.size = dlen;
    return cursor->put(cursor, &k, &d, DB_CURRENT);
}

/* Bulk read: fills `buffer` with as many key/data pairs as fit, continuing
 * from the cursor's position (DB_FIRST to start, DB_NEXT to go on). */
static inline int durus_cursor_get_bulk(DBC *cursor, u_int32_t position, void *buffer, u_int32_t capacity,
                                        u_int32_t *needed) {
    DBT k, d;
    memset(&k, 0, sizeof k); memset(&d, 0, sizeof d);
    d.data = buffer; d.ulen = capacity; d.flags = DB_DBT_USERMEM;
    int r = cursor->get(cursor, &k, &d, position | DB_MULTIPLE_KEY);
    *needed = d.size;
    return r;
}
/* Walks a bulk buffer filled by durus_cursor_get_bulk: *state is NULL to begin;
 * returns 0 with a pair, or 1 when the buffer is exhausted. */
static inline int durus_bulk_next(void *buffer, u_int32_t capacity, void **state,
                                  void **key, u_int32_t *klen, void **data, u_int32_t *dlen) {
    DBT d;
    memset(&d, 0, sizeof d);
    d.data = buffer; d.ulen = capacity;
    void *p = *state;
    if (p == NULL) { DB_MULTIPLE_INIT(p, &d); }
    void *kp = NULL, *dp = NULL;
    u_int32_t kl = 0, dl = 0;
    DB_MULTIPLE_KEY_NEXT(p, &d, kp, kl, dp, dl);
    *state = p;
    if (p == NULL) return 1;
    *key = kp; *klen = kl; *data = dp; *dlen = dl;
    return 0;
}

static inline const char *durus_strerror(int code) { return db_strerror(code); }

/* ---- migration ---- */
static const u_int32_t durus_DB_SET_RANGE = DB_SET_RANGE;

/* Puts key/data in txn unless key is there already (DB_KEYEXIST). */
static inline int durus_db_put_new_in(DB *db, DB_TXN *txn, const void *key, u_int32_t klen,
                                      const void *data, u_int32_t dlen) {
    DBT k, d;
    memset(&k, 0, sizeof k); memset(&d, 0, sizeof d);
    k.data = (void *)key; k.size = klen;
    d.data = (void *)data; d.size = dlen;
    return db->put(db, txn, &k, &d, DB_NOOVERWRITE);
}
/* Removes every key of the database, in txn. */
static inline int durus_db_truncate(DB *db, DB_TXN *txn) {
    u_int32_t count = 0;
    return db->truncate(db, txn, &count, 0);
}
/* Moves the cursor (DB_SET_RANGE: to the first key at or after the *klen
 * bytes in `key`; DB_NEXT: one on) and reads only its key into `key`. */
static inline int durus_cursor_key(DBC *cursor, u_int32_t position, void *key, u_int32_t capacity, u_int32_t *klen) {
    DBT k, d;
    char none;
    memset(&k, 0, sizeof k); memset(&d, 0, sizeof d);
    k.data = key; k.size = *klen; k.ulen = capacity; k.flags = DB_DBT_USERMEM;
    d.data = &none; d.ulen = 0; d.flags = DB_DBT_USERMEM | DB_DBT_PARTIAL;
    int r = cursor->get(cursor, &k, &d, position);
    *klen = k.size;
    return r;
}
/* Deletes the pair under the cursor. */
static inline int durus_cursor_del(DBC *cursor) { return cursor->del(cursor, 0); }

#endif

#ifndef DURUS_REPLICATION_H
#define DURUS_REPLICATION_H

/* Berkeley DB's replication manager, for DurusBerkeleyDB: the parts that need
 * a C translation unit of their own (an event callback with per-environment
 * state, a thread-local flag for PERM_FAILED, socket options on repmgr's
 * sockets), and thin calls through the handle's function table. See
 * RECIPE.md in the replication work for why each step is here. */

#include <db.h>
#include <stddef.h>

/* Return codes Swift compares against. */
static const int durus_DB_REP_HANDLE_DEAD = DB_REP_HANDLE_DEAD;
static const int durus_DB_REP_LOCKOUT = DB_REP_LOCKOUT;
static const int durus_DB_REP_UNAVAIL = DB_REP_UNAVAIL;
static const int durus_DB_TIMEOUT = DB_TIMEOUT;
static const int durus_DB_KEYEMPTY = DB_KEYEMPTY;
static const u_int32_t durus_DB_INIT_REP = DB_INIT_REP;

/* Roles as the event callback last saw them. */
#define DURUS_ROLE_UNKNOWN 0
#define DURUS_ROLE_MASTER 1
#define DURUS_ROLE_REPLICA 2
static const int durus_role_unknown = DURUS_ROLE_UNKNOWN;
static const int durus_role_master = DURUS_ROLE_MASTER;
static const int durus_role_replica = DURUS_ROLE_REPLICA;

/* Installs the event callback and the replication settings that are legal
 * before the environment opens. Timeouts in microseconds. acks: 0 quorum,
 * 1 all, 2 one, 3 none. 0 or a Berkeley DB error code. */
int durus_rep_configure(DB_ENV *env, int acks, int priority, u_int32_t ack_timeout,
                        u_int32_t heartbeat_send, u_int32_t heartbeat_monitor,
                        u_int32_t election_timeout, u_int32_t election_retry,
                        u_int32_t connection_retry);
/* What durus_rep_configure allocated: take it before closing the
 * environment and free it after. */
void *durus_rep_state_pointer(DB_ENV *env);
void durus_rep_free_state(void *state);

/* Declares the local site (as the group's creator when `creator`) and each
 * peer as a bootstrap helper; after open, before durus_rep_start. */
int durus_rep_local_site(DB_ENV *env, const char *host, unsigned port, int creator);
int durus_rep_peer_site(DB_ENV *env, const char *host, unsigned port);
/* repmgr_start with elections. It may block for ever on a peer that is some
 * other TCP service: call it on a thread the caller can give up on. */
int durus_rep_start(DB_ENV *env);

/* 1 when a TCP connection to host:port is accepted within timeout_ms, else 0. */
int durus_tcp_probe(const char *host, unsigned port, int timeout_ms);

/* What the events said. The master's eid is -1 when unknown. */
int durus_rep_role(DB_ENV *env);
int durus_rep_master_eid(DB_ENV *env);
int durus_rep_startup_done(DB_ENV *env);
int durus_rep_local_site_removed(DB_ENV *env);
int durus_rep_panicked(DB_ENV *env);
/* Increases at each role or master change (MASTER, CLIENT, NEWMASTER, MASTER_FAILURE). */
long durus_rep_changes(DB_ENV *env);

/* The host (copied into buffer) and port of site eid; 0, or DB_NOTFOUND. */
int durus_rep_site_address(DB_ENV *env, int eid, char *buffer, size_t capacity, unsigned *port);
/* Sites known to the group besides this one: counts of all and of connected ones. */
/* The other sites of this site's group, as "host:port host:port ...". */
int durus_rep_site_names(DB_ENV *env, char *buffer, size_t capacity);
int durus_rep_site_counts(DB_ENV *env, unsigned *all, unsigned *connected);
/* Replication lag as this replica sees it: log bytes between what it has
 * applied and what it knows is coming (0 on a master). */
int durus_rep_lag_bytes(DB_ENV *env, unsigned long long *bytes);

/* PERM_FAILED arrives on the committing thread, during commit: clear before,
 * read after. */
void durus_rep_clear_perm_failed(void);
int durus_rep_perm_failed(void);

/* Commit tokens: `token` is DB_TXN_TOKEN_SIZE (20) bytes that commit fills in. */
int durus_txn_set_commit_token(DB_TXN *txn, void *token);
int durus_txn_applied(DB_ENV *env, const void *token, u_int32_t timeout_us);

/* Moves the cursor (DB_SET_RANGE from the *klen bytes in key, or DB_NEXT)
 * and reads its key and value into the caller's buffers; DB_BUFFER_SMALL
 * sets *dlen to the size needed. */
int durus_cursor_entry(DBC *cursor, u_int32_t position, void *key, u_int32_t kcap, u_int32_t *klen,
                       void *data, u_int32_t dcap, u_int32_t *dlen);

/* Nesting depth of storage operations on this thread (for retrying after a
 * dead handle only at the outermost level). */
int durus_rep_depth_enter(void);
void durus_rep_depth_leave(void);

#endif

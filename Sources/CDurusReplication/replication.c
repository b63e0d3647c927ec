#include "durus_replication.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct durus_rep_state {
    atomic_int role;
    atomic_int master_eid;
    atomic_int startup_done;
    atomic_int local_site_removed;
    atomic_int panicked;
    atomic_long changes;
} durus_rep_state;

static _Thread_local int perm_failed;
static _Thread_local int depth;

static durus_rep_state *state_of(DB_ENV *env) { return (durus_rep_state *)env->app_private; }

/* repmgr 5.3 never sets TCP_NODELAY, so every acknowledged commit waits for
 * Nagle's delayed ACK (about 45 ms). On each new connection, every TCP socket
 * of the process gets it; SwiftNIO's already have it, so this is harmless. */
static void set_nodelay_everywhere(void) {
    long limit = sysconf(_SC_OPEN_MAX);
    if (limit <= 0 || limit > 65536) limit = 65536;
    for (int fd = 3; fd < limit; fd++) {
        int type = 0;
        socklen_t length = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) {
            if (errno == EBADF) continue;
            continue;
        }
        if (type != SOCK_STREAM) continue;
        struct sockaddr_storage address;
        socklen_t alength = sizeof address;
        if (getsockname(fd, (struct sockaddr *)&address, &alength) != 0) continue;
        if (address.ss_family != AF_INET && address.ss_family != AF_INET6) continue;
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

/* Runs on repmgr's threads (and, for PERM_FAILED, on the committing thread):
 * no Berkeley DB calls here, only atomics. */
static void on_event(DB_ENV *env, u_int32_t event, void *info) {
    durus_rep_state *s = state_of(env);
    if (s == NULL) return;
    switch (event) {
    case DB_EVENT_PANIC:
        atomic_store(&s->panicked, 1);
        break;
    case DB_EVENT_REP_MASTER:
        atomic_store(&s->role, DURUS_ROLE_MASTER);
        atomic_store(&s->master_eid, -2);
        atomic_fetch_add(&s->changes, 1);
        break;
    case DB_EVENT_REP_CLIENT:
        atomic_store(&s->role, DURUS_ROLE_REPLICA);
        if (atomic_load(&s->master_eid) == -2) atomic_store(&s->master_eid, -1);
        atomic_fetch_add(&s->changes, 1);
        break;
    case DB_EVENT_REP_NEWMASTER:
        if (info != NULL && atomic_load(&s->role) != DURUS_ROLE_MASTER) atomic_store(&s->master_eid, *(int *)info);
        atomic_fetch_add(&s->changes, 1);
        break;
    case DB_EVENT_REP_MASTER_FAILURE:
        if (atomic_load(&s->role) != DURUS_ROLE_MASTER) atomic_store(&s->master_eid, -1);
        atomic_fetch_add(&s->changes, 1);
        break;
    case DB_EVENT_REP_STARTUPDONE:
    case DB_EVENT_REP_INIT_DONE:
        atomic_store(&s->startup_done, 1);
        atomic_fetch_add(&s->changes, 1);
        break;
    case DB_EVENT_REP_LOCAL_SITE_REMOVED:
        atomic_store(&s->local_site_removed, 1);
        break;
    case DB_EVENT_REP_PERM_FAILED:
        perm_failed = 1;
        break;
    case DB_EVENT_REP_CONNECT_ESTD:
        set_nodelay_everywhere();
        break;
    default:
        break;
    }
}

int durus_rep_configure(DB_ENV *env, int acks, int priority, u_int32_t ack_timeout,
                        u_int32_t heartbeat_send, u_int32_t heartbeat_monitor,
                        u_int32_t election_timeout, u_int32_t election_retry,
                        u_int32_t connection_retry) {
    durus_rep_state *s = calloc(1, sizeof *s);
    if (s == NULL) return ENOMEM;
    atomic_store(&s->master_eid, -1);
    env->app_private = s;
    int r = env->set_event_notify(env, on_event);
    u_int32_t policy = DB_REPMGR_ACKS_QUORUM;
    switch (acks) {
    case 1: policy = DB_REPMGR_ACKS_ALL; break;
    case 2: policy = DB_REPMGR_ACKS_ONE; break;
    case 3: policy = DB_REPMGR_ACKS_NONE; break;
    default: break;
    }
    if (r == 0) r = env->repmgr_set_ack_policy(env, (int)policy);
    if (r == 0) r = env->rep_set_priority(env, (u_int32_t)priority);
    if (r == 0) r = env->rep_set_timeout(env, DB_REP_ACK_TIMEOUT, ack_timeout);
    if (r == 0) r = env->rep_set_timeout(env, DB_REP_HEARTBEAT_SEND, heartbeat_send);
    if (r == 0) r = env->rep_set_timeout(env, DB_REP_HEARTBEAT_MONITOR, heartbeat_monitor);
    if (r == 0) r = env->rep_set_timeout(env, DB_REP_ELECTION_TIMEOUT, election_timeout);
    if (r == 0) r = env->rep_set_timeout(env, DB_REP_ELECTION_RETRY, election_retry);
    if (r == 0) r = env->rep_set_timeout(env, DB_REP_CONNECTION_RETRY, connection_retry);
    if (r == 0) r = env->rep_set_config(env, DB_REPMGR_CONF_2SITE_STRICT, 1);
    /* The master otherwise sleeps 30 s inside every checkpoint (letting
     * replicas finish theirs first), which held commits and close up. */
    if (r == 0) r = env->rep_set_timeout(env, DB_REP_CHECKPOINT_DELAY, 0);
    /* During a role change Berkeley DB locks its API out, and a call that
     * arrives then sleeps 5 s before it looks again: calls return
     * DB_REP_LOCKOUT at once instead, and the callers retry within ms. */
    if (r == 0) r = env->rep_set_config(env, DB_REP_CONF_NOWAIT, 1);
    /* A commit's log records go to each replica as one message, sent when
     * the commit record is written, not one message (and one wakeup of the
     * replica) per record. */
    if (r == 0) r = env->rep_set_config(env, DB_REP_CONF_BULK, 1);
    return r;
}

void *durus_rep_state_pointer(DB_ENV *env) { return env->app_private; }
void durus_rep_free_state(void *state) { free(state); }

int durus_rep_local_site(DB_ENV *env, const char *host, unsigned port, int creator) {
    DB_SITE *site = NULL;
    int r = env->repmgr_site(env, host, port, &site, 0);
    if (r != 0) return r;
    r = site->set_config(site, DB_LOCAL_SITE, 1);
    if (r == 0 && creator) r = site->set_config(site, DB_GROUP_CREATOR, 1);
    int c = site->close(site);
    return r != 0 ? r : c;
}

int durus_rep_peer_site(DB_ENV *env, const char *host, unsigned port) {
    DB_SITE *site = NULL;
    int r = env->repmgr_site(env, host, port, &site, 0);
    if (r != 0) return r;
    r = site->set_config(site, DB_BOOTSTRAP_HELPER, 1);
    if (r == 0) r = site->set_config(site, DB_REPMGR_PEER, 1);
    int c = site->close(site);
    return r != 0 ? r : c;
}

int durus_rep_start(DB_ENV *env) { return env->repmgr_start(env, 3, DB_REP_ELECTION); }

int durus_tcp_probe(const char *host, unsigned port, int timeout_ms) {
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char service[16];
    snprintf(service, sizeof service, "%u", port);
    if (getaddrinfo(host, service, &hints, &found) != 0 || found == NULL) return 0;
    int accepted = 0;
    for (struct addrinfo *a = found; a != NULL && !accepted; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) continue;
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r == 0) {
            accepted = 1;
        } else if (errno == EINPROGRESS) {
            struct pollfd p = { .fd = fd, .events = POLLOUT };
            if (poll(&p, 1, timeout_ms) == 1) {
                int error = 0;
                socklen_t length = sizeof error;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0) accepted = 1;
            }
        }
        close(fd);
    }
    freeaddrinfo(found);
    return accepted;
}

int durus_rep_role(DB_ENV *env) { return state_of(env) ? atomic_load(&state_of(env)->role) : 0; }
int durus_rep_master_eid(DB_ENV *env) { return state_of(env) ? atomic_load(&state_of(env)->master_eid) : -1; }
int durus_rep_startup_done(DB_ENV *env) { return state_of(env) ? atomic_load(&state_of(env)->startup_done) : 0; }
int durus_rep_local_site_removed(DB_ENV *env) {
    return state_of(env) ? atomic_load(&state_of(env)->local_site_removed) : 0;
}
int durus_rep_panicked(DB_ENV *env) { return state_of(env) ? atomic_load(&state_of(env)->panicked) : 0; }
long durus_rep_changes(DB_ENV *env) { return state_of(env) ? atomic_load(&state_of(env)->changes) : 0; }

int durus_rep_site_address(DB_ENV *env, int eid, char *buffer, size_t capacity, unsigned *port) {
    u_int count = 0;
    DB_REPMGR_SITE *list = NULL;
    int r = env->repmgr_site_list(env, &count, &list);
    if (r != 0) return r;
    r = DB_NOTFOUND;
    for (u_int i = 0; i < count; i++) {
        if (list[i].eid == eid) {
            snprintf(buffer, capacity, "%s", list[i].host);
            *port = list[i].port;
            r = 0;
            break;
        }
    }
    free(list);
    return r;
}

int durus_rep_site_names(DB_ENV *env, char *buffer, size_t capacity) {
    u_int count = 0;
    DB_REPMGR_SITE *list = NULL;
    int r = env->repmgr_site_list(env, &count, &list);
    if (r != 0) return r;
    size_t used = 0;
    buffer[0] = 0;
    for (u_int i = 0; i < count && used < capacity; i++) {
        int n = snprintf(buffer + used, capacity - used, "%s%s:%u", used ? " " : "", list[i].host, list[i].port);
        if (n < 0) break;
        used += (size_t)n;
    }
    free(list);
    return 0;
}

int durus_rep_site_counts(DB_ENV *env, unsigned *all, unsigned *connected) {
    u_int count = 0;
    DB_REPMGR_SITE *list = NULL;
    int r = env->repmgr_site_list(env, &count, &list);
    if (r != 0) return r;
    *all = count;
    *connected = 0;
    for (u_int i = 0; i < count; i++) if (list[i].status == DB_REPMGR_CONNECTED) (*connected)++;
    free(list);
    return 0;
}

int durus_rep_lag_bytes(DB_ENV *env, unsigned long long *bytes) {
    DB_REP_STAT *stat = NULL;
    int r = env->rep_stat(env, &stat, 0);
    if (r != 0) return r;
    *bytes = 0;
    if (stat->st_status == DB_REP_CLIENT && stat->st_waiting_lsn.file != 0) {
        /* Bytes between the next record expected and the first one held back. */
        if (stat->st_waiting_lsn.file == stat->st_next_lsn.file && stat->st_waiting_lsn.offset > stat->st_next_lsn.offset)
            *bytes = stat->st_waiting_lsn.offset - stat->st_next_lsn.offset;
    }
    free(stat);
    return 0;
}

void durus_rep_clear_perm_failed(void) { perm_failed = 0; }
int durus_rep_perm_failed(void) { return perm_failed; }

int durus_txn_set_commit_token(DB_TXN *txn, void *token) {
    return txn->set_commit_token(txn, (DB_TXN_TOKEN *)token);
}

int durus_txn_applied(DB_ENV *env, const void *token, u_int32_t timeout_us) {
    DB_TXN_TOKEN copy;
    memcpy(&copy, token, sizeof copy);
    return env->txn_applied(env, &copy, timeout_us, 0);
}

int durus_rep_depth_enter(void) { return depth++; }
void durus_rep_depth_leave(void) { depth--; }

int durus_cursor_entry(DBC *cursor, u_int32_t position, void *key, u_int32_t kcap, u_int32_t *klen,
                       void *data, u_int32_t dcap, u_int32_t *dlen) {
    DBT k, d;
    memset(&k, 0, sizeof k); memset(&d, 0, sizeof d);
    k.data = key; k.size = *klen; k.ulen = kcap; k.flags = DB_DBT_USERMEM;
    d.data = data; d.ulen = dcap; d.flags = DB_DBT_USERMEM;
    int r = cursor->get(cursor, &k, &d, position);
    *klen = k.size;
    *dlen = d.size;
    return r;
}

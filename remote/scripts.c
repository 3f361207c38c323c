/* The Lua scripts of the Redis tier and the way they are run.
 *
 * The scripts themselves live in remote/lua, one .lua file each (each readable and
 * runnable on its own with redis-cli --eval) and are embedded at build time
 * by cmake/embed_lua.cmake, with remote/lua/prelude.lua inserted after each
 * shebang. Write scripts carry the `#!lua` shebang, so Redis checks for
 * out-of-memory before the script starts rather than at its first write:
 * a script never stops half-way for lack of memory.
 *
 * Scripts are loaded with SCRIPT LOAD at open and run with EVALSHA; after a
 * NOSCRIPT (a restarted or flushed Redis) the same call falls back to EVAL,
 * which also puts the script back in Redis' cache.
 *
 * On Redis Cluster every script is loaded in a second form whose prelude
 * line `local PUBLISH = 'PUBLISH'` reads 'SPUBLISH': events go out on the
 * namespace's shard (sharded pub/sub), with no other change to any script.
 */
#include "remote/remote.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#define LUA(name)                      \
    extern const char sc__lua_##name[]; \
    extern const size_t sc__lua_##name##_len;
LUA(get)
LUA(set)
LUA(delete)
LUA(clear)
LUA(clear_batch)
LUA(heartbeat)
LUA(sync)
LUA(version)
LUA(get_many)
LUA(set_behind)
LUA(delete_behind)
LUA(wb_take)
LUA(wb_ack)
LUA(wb_state)
LUA(wb_release)
LUA(fetch_lock)
LUA(fetch_store)
LUA(fetch_unlock)
LUA(tag)
LUA(tag_invalidate)
LUA(confirm)
LUA(perms)
#undef LUA

/* The names a command is given in messages are spelled out here, so a
 * call formats nothing it may not need. */
#define SCRIPT(name) \
    {#name, "EVALSHA (" #name " script)", "EVAL (" #name " script)", sc__lua_##name, &sc__lua_##name##_len}
static const struct {
    const char *name;
    const char *evalsha_what, *eval_what;
    const char *src;
    const size_t *len;
} scripts[SC__SCRIPT_COUNT] = {
    [SC__SCRIPT_GET] = SCRIPT(get),
    [SC__SCRIPT_SET] = SCRIPT(set),
    [SC__SCRIPT_DELETE] = SCRIPT(delete),
    [SC__SCRIPT_CLEAR] = SCRIPT(clear),
    [SC__SCRIPT_CLEAR_BATCH] = SCRIPT(clear_batch),
    [SC__SCRIPT_HEARTBEAT] = SCRIPT(heartbeat),
    [SC__SCRIPT_SYNC] = SCRIPT(sync),
    [SC__SCRIPT_VERSION] = SCRIPT(version),
    [SC__SCRIPT_GET_MANY] = SCRIPT(get_many),
    [SC__SCRIPT_SET_BEHIND] = SCRIPT(set_behind),
    [SC__SCRIPT_DELETE_BEHIND] = SCRIPT(delete_behind),
    [SC__SCRIPT_WB_TAKE] = SCRIPT(wb_take),
    [SC__SCRIPT_WB_ACK] = SCRIPT(wb_ack),
    [SC__SCRIPT_WB_STATE] = SCRIPT(wb_state),
    [SC__SCRIPT_WB_RELEASE] = SCRIPT(wb_release),
    [SC__SCRIPT_FETCH_LOCK] = SCRIPT(fetch_lock),
    [SC__SCRIPT_FETCH_STORE] = SCRIPT(fetch_store),
    [SC__SCRIPT_FETCH_UNLOCK] = SCRIPT(fetch_unlock),
    [SC__SCRIPT_TAG] = SCRIPT(tag),
    [SC__SCRIPT_TAG_INVALIDATE] = SCRIPT(tag_invalidate),
    [SC__SCRIPT_CONFIRM] = SCRIPT(confirm),
    [SC__SCRIPT_PERMS] = SCRIPT(perms),
};
#undef SCRIPT

/* The SPUBLISH form of every script, built once. */
static char *sharded_src[SC__SCRIPT_COUNT];
static size_t sharded_len[SC__SCRIPT_COUNT];
static pthread_once_t sharded_once = PTHREAD_ONCE_INIT;

static void build_sharded(void)
{
    static const char from[] = "local PUBLISH = 'PUBLISH'";
    static const char to[] = "local PUBLISH = 'SPUBLISH'";
    for (int i = 0; i < SC__SCRIPT_COUNT; i++) {
        const char *at = strstr(scripts[i].src, from);
        if (!at)
            continue; /* a script that publishes nothing */
        size_t len = *scripts[i].len + 1, head = (size_t)(at - scripts[i].src);
        char *s = malloc(len + 1);
        if (!s)
            continue;
        memcpy(s, scripts[i].src, head);
        memcpy(s + head, to, sizeof to - 1);
        memcpy(s + head + sizeof to - 1, at + sizeof from - 1, *scripts[i].len - head - (sizeof from - 1) + 1);
        sharded_src[i] = s;
        sharded_len[i] = len;
    }
}

/* The source of script id as pool p runs it. */
static const char *script_src(const sc__pool *p, int id, size_t *len)
{
    if (sc__pool_sharded(p)) {
        pthread_once(&sharded_once, build_sharded);
        if (sharded_src[id]) {
            *len = sharded_len[id];
            return sharded_src[id];
        }
    }
    *len = *scripts[id].len;
    return scripts[id].src;
}

int sc__remote_is_oom(const char *reply)
{
    return strncmp(reply, "OOM", 3) == 0 || strstr(reply, "OOM command not allowed") != NULL;
}

/* A plain-words reading of an error reply, so a full Redis or a missing
 * permission is not mistaken for a network problem. */
const char *sc__remote_explain(const char *reply)
{
    if (sc__remote_is_oom(reply))
        return "Redis is out of memory (maxmemory reached; nothing was written): ";
    /* Outside a script Redis says NOPERM; inside one, "The user executing
     * the script can't ...". */
    if (strstr(reply, "NOPERM") || strstr(reply, "no permissions") || strstr(reply, "user executing the script can't"))
        return "permission denied by the Redis ACL (NOPERM): ";
    if (strncmp(reply, "READONLY", 8) == 0)
        return "Redis is a read-only replica: ";
    return "";
}

sc_status sc__scripts_load(sc__pool *p, unsigned timeout_ms, char shas[SC__SCRIPT_COUNT][41], char *err,
                           size_t errlen)
{
    for (int i = 0; i < SC__SCRIPT_COUNT; i++) {
        size_t src_len;
        const char *argv[3] = {"SCRIPT", "LOAD", script_src(p, i, &src_len)};
        size_t lens[3] = {6, 4, src_len};
        redisReply *reply;
        sc_status st = sc__pool_command(p, sc__remote_now_ms() + timeout_ms, timeout_ms, "SCRIPT LOAD", SC__POOL_READ,
                                        3, argv, lens, &reply, err, errlen);
        if (st != SC_OK)
            return st;
        if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
            int is_err = reply->type == REDIS_REPLY_ERROR;
            sc__remote_errf(err, errlen, "redis %s: %sSCRIPT LOAD %s failed: %s", sc__pool_addr(p),
                            is_err ? sc__remote_explain(reply->str) : "", scripts[i].name,
                            is_err ? reply->str : "unexpected reply");
            freeReplyObject(reply);
            return SC_ERR_REMOTE;
        }
        memcpy(shas[i], reply->str, 40);
        shas[i][40] = '\0';
        freeReplyObject(reply);
    }
    return SC_OK;
}

sc_status sc__script_run(sc__pool *p, const char shas[SC__SCRIPT_COUNT][41], sc__script_id id, int nkeys,
                         int nargs, const char **args, const size_t *lens, int64_t deadline, unsigned timeout_ms,
                         redisReply **reply, char *err, size_t errlen)
{
    *reply = NULL;
    /* Every script takes at most a couple of dozen arguments except
     * get_many and clear_batch; those alone pay for heap arrays. */
    enum { ON_STACK = 32 };
    const char *argv_stack[ON_STACK];
    size_t argl_stack[ON_STACK];
    int argc = 3 + nargs;
    const char **argv = argv_stack;
    size_t *argl = argl_stack;
    if (argc > ON_STACK) {
        argv = malloc((size_t)argc * sizeof *argv);
        argl = malloc((size_t)argc * sizeof *argl);
        if (!argv || !argl) {
            free(argv);
            free(argl);
            sc__remote_errf(err, errlen, "out of memory");
            return SC_ERR_NOMEM;
        }
    }
    /* A script Redis runs with flags=no-writes cannot write (Redis refuses
     * its writes): the pool may run it again after a lost reply. */
    static const char no_writes[] = "#!lua flags=no-writes";
    int writes = strncmp(scripts[id].src, no_writes, sizeof no_writes - 1) == 0 ? SC__POOL_READ : SC__POOL_WRITE;
    char numkeys[24];
    argv[0] = "EVALSHA";
    argl[0] = 7;
    argv[1] = shas[id];
    argl[1] = 40;
    argv[2] = numkeys;
    argl[2] = sc__decimal(numkeys, nkeys > 0 ? (size_t)nkeys : 0);
    memcpy(argv + 3, args, (size_t)nargs * sizeof *argv);
    memcpy(argl + 3, lens, (size_t)nargs * sizeof *argl);

    sc_status st = sc__pool_command(p, deadline, timeout_ms, scripts[id].evalsha_what, writes, argc, argv, argl, reply,
                                    err, errlen);
    if (st == SC_OK && (*reply)->type == REDIS_REPLY_ERROR && strncmp((*reply)->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(*reply);
        *reply = NULL;
        argv[0] = "EVAL";
        argl[0] = 4;
        argv[1] = script_src(p, id, &argl[1]);
        st = sc__pool_command(p, deadline, timeout_ms, scripts[id].eval_what, writes, argc, argv, argl, reply, err,
                              errlen);
    }
    if (argv != argv_stack) {
        free(argv);
        free(argl);
    }
    if (st == SC_OK && (*reply)->type == REDIS_REPLY_ERROR) {
        sc__remote_errf(err, errlen, "redis %s: %s%s script failed: %.*s", sc__pool_addr(p),
                        sc__remote_explain((*reply)->str), scripts[id].name,
                 (int)(*reply)->len, (*reply)->str);
        freeReplyObject(*reply);
        *reply = NULL;
        st = SC_ERR_REMOTE;
    }
    return st;
}

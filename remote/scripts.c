/* The Lua scripts of the Redis tier and the way they are run.
 *
 * Every write runs as one script so that storing the value, taking its
 * version, appending the log entry and publishing the event happen in one
 * atomic step: the order of events on the channel is the order of writes.
 * Events are built here, in Lua, because the version is only known inside
 * the script; the format is the one in the codec comment of sync/sync.h.
 *
 * Lua in Redis has only doubles. A number passed to redis.call or tostring()
 * is printed with %.14g ("1.7636890000001e+15"), and cjson.encode does the
 * same, so every integer leaves the script through string.format('%d', n) or
 * through cmsgpack (which packs integral doubles as integers). Versions stay
 * below 2^53 (about 9e15; the seed is about 1.8e15), so doubles hold them
 * exactly.
 *
 * Scripts are loaded with SCRIPT LOAD at open and run with EVALSHA; after a
 * NOSCRIPT (a restarted or flushed Redis) the same call falls back to EVAL,
 * which also puts the script back in Redis' cache.
 */
#include "remote/remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

/* Helpers shared by the scripts that take a version or publish.
 * seed: seeds the counter from the Redis clock in microseconds, built as a
 *   string (a number would print as 1.7e+15). A log that survived the
 *   counter stays behind it, because XADD needs ever-growing ids.
 * event: vs and ttl are decimal strings; value is the raw bytes (msgpack) or
 *   the caller's base64 (JSON), nil when the event carries none.
 * emit: the log entry (unless the log is off), then the PUBLISH. */
#define LUA_PRELUDE                                                                                       \
    "local function seed(seq_key, log_key)\n"                                                             \
    "  if redis.call('EXISTS', seq_key) == 1 then return end\n"                                          \
    "  local t = redis.call('TIME')\n"                                                                    \
    "  local s = t[1] .. string.format('%06d', tonumber(t[2]))\n"                                          \
    "  local top = redis.call('XREVRANGE', log_key, '+', '-', 'COUNT', 1)\n"                               \
    "  if top[1] then\n"                                                                                  \
    "    local last = string.match(top[1][1], '^(%d+)-')\n"                                               \
    "    if #last > #s or (#last == #s and last > s) then s = last end\n"                                 \
    "  end\n"                                                                                             \
    "  redis.call('SET', seq_key, s)\n"                                                                   \
    "end\n"                                                                                               \
    "local function event(fmt, action, key, sender, vs, value, ttl)\n"                                    \
    "  local t = redis.call('TIME')\n"                                                                    \
    "  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                            \
    "  if fmt == 'json' then\n"                                                                           \
    "    local p = {'{\"format\":1,\"action\":\"', action, '\",\"key\":', cjson.encode(key),\n"           \
    "               ',\"sender\":', cjson.encode(sender), ',\"version\":', vs}\n"                          \
    "    if value then p[#p + 1] = ',\"value\":\"' .. value .. '\"' end\n"                                 \
    "    p[#p + 1] = ',\"ttl\":' .. ttl .. ',\"time\":' .. string.format('%d', ms) .. '}'\n"                \
    "    return table.concat(p)\n"                                                                        \
    "  end\n"                                                                                             \
    "  local e = {format = 1, action = action, key = key, sender = sender,\n"                              \
    "             version = tonumber(vs), ttl = tonumber(ttl), time = ms}\n"                               \
    "  if value then e.value = value end\n"                                                               \
    "  return cmsgpack.pack(e)\n"                                                                         \
    "end\n"                                                                                               \
    "local function emit(log_key, log_len, channel, vs, ev)\n"                                            \
    "  if log_len ~= '0' then\n"                                                                          \
    "    redis.call('XADD', log_key, 'MAXLEN', '~', log_len, vs .. '-0', 'e', ev)\n"                      \
    "  end\n"                                                                                             \
    "  redis.call('PUBLISH', channel, ev)\n"                                                              \
    "end\n"

/* KEYS: value key, seq, log. ARGV: key, value, ttl, action (set |
 * invalidate), sender, channel, fmt, log_len, value_b64. Every check comes
 * before the INCR: a script that fails after it would leave a hole in the
 * sequence that subscribers would take for a lost event. */
static const char SET_SRC[] =
    LUA_PRELUDE
    "local ty = redis.call('TYPE', KEYS[1]).ok\n"
    "if ty ~= 'none' and ty ~= 'hash' then\n"
    "  return redis.error_reply('WRONGTYPE ' .. KEYS[1] .. ' is a ' .. ty .. ', not a synccache hash')\n"
    "end\n"
    "seed(KEYS[2], KEYS[3])\n"
    "local vs = string.format('%d', redis.call('INCR', KEYS[2]))\n"
    "redis.call('HSET', KEYS[1], 'value', ARGV[2], 'version', vs)\n"
    "if ARGV[3] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[3]) else redis.call('PERSIST', KEYS[1]) end\n"
    "local value = nil\n"
    "if ARGV[4] == 'set' then\n"
    "  if ARGV[7] == 'json' then value = ARGV[9] else value = ARGV[2] end\n"
    "end\n"
    "emit(KEYS[3], ARGV[8], ARGV[6], vs, event(ARGV[7], ARGV[4], ARGV[1], ARGV[5], vs, value, ARGV[3]))\n"
    "return vs\n";

/* KEYS: value key, seq, log. ARGV: key, sender, channel, fmt, log_len. */
static const char DELETE_SRC[] =
    LUA_PRELUDE
    "seed(KEYS[2], KEYS[3])\n"
    "local vs = string.format('%d', redis.call('INCR', KEYS[2]))\n"
    "redis.call('DEL', KEYS[1])\n"
    "emit(KEYS[3], ARGV[5], ARGV[3], vs, event(ARGV[4], 'delete', ARGV[1], ARGV[2], vs, nil, '0'))\n"
    "return vs\n";

/* KEYS: seq, log. ARGV: sender, channel, fmt, log_len. The keys themselves
 * were unlinked by the caller in SCAN batches before this runs. */
static const char CLEAR_SRC[] =
    LUA_PRELUDE
    "seed(KEYS[1], KEYS[2])\n"
    "local vs = string.format('%d', redis.call('INCR', KEYS[1]))\n"
    "emit(KEYS[2], ARGV[4], ARGV[2], vs, event(ARGV[3], 'clear', '', ARGV[1], vs, nil, '0'))\n"
    "return vs\n";

/* KEYS: seq, log. ARGV: sender, channel, fmt. No INCR and no log entry: the
 * heartbeat only tells subscribers which sequence was current when it was
 * published, so they can see events they missed. */
static const char HEARTBEAT_SRC[] =
    LUA_PRELUDE
    "seed(KEYS[1], KEYS[2])\n"
    "local vs = redis.call('GET', KEYS[1])\n"
    "redis.call('PUBLISH', ARGV[2], event(ARGV[3], 'heartbeat', '', ARGV[1], vs, nil, '0'))\n"
    "return vs\n";

/* KEYS: seq, log. */
static const char SEQ_SRC[] =
    LUA_PRELUDE
    "seed(KEYS[1], KEYS[2])\n"
    "return redis.call('GET', KEYS[1])\n";

/* KEYS: value key. Returns nil, or {value, version, pttl}. */
static const char GET_SRC[] =
    "local h = redis.call('HMGET', KEYS[1], 'value', 'version')\n"
    "if not h[1] then return false end\n"
    "return {h[1], h[2] or '', redis.call('PTTL', KEYS[1])}\n";

static const struct {
    const char *name;
    const char *src;
    size_t len;
} scripts[SC__SCRIPT_COUNT] = {
    [SC__SCRIPT_GET] = {"get", GET_SRC, sizeof GET_SRC - 1},
    [SC__SCRIPT_SET] = {"set", SET_SRC, sizeof SET_SRC - 1},
    [SC__SCRIPT_DELETE] = {"delete", DELETE_SRC, sizeof DELETE_SRC - 1},
    [SC__SCRIPT_CLEAR] = {"clear", CLEAR_SRC, sizeof CLEAR_SRC - 1},
    [SC__SCRIPT_HEARTBEAT] = {"heartbeat", HEARTBEAT_SRC, sizeof HEARTBEAT_SRC - 1},
    [SC__SCRIPT_SEQ] = {"seq", SEQ_SRC, sizeof SEQ_SRC - 1},
};

sc_status sc__scripts_load(sc__pool *p, unsigned timeout_ms, char shas[SC__SCRIPT_COUNT][41], char *err,
                           size_t errlen)
{
    for (int i = 0; i < SC__SCRIPT_COUNT; i++) {
        const char *argv[3] = {"SCRIPT", "LOAD", scripts[i].src};
        size_t lens[3] = {6, 4, scripts[i].len};
        redisReply *reply;
        sc_status st = sc__pool_command(p, sc__remote_now_ms() + timeout_ms, timeout_ms, "SCRIPT LOAD", 3, argv, lens,
                                        &reply, err, errlen);
        if (st != SC_OK)
            return st;
        if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
            sc__remote_errf(err, errlen, "redis %s: SCRIPT LOAD %s failed: %s", sc__pool_addr(p), scripts[i].name,
                     reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
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
    int argc = 3 + nargs;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *argl = malloc((size_t)argc * sizeof *argl);
    if (!argv || !argl) {
        free(argv);
        free(argl);
        sc__remote_errf(err, errlen, "out of memory");
        return SC_ERR_NOMEM;
    }
    char numkeys[16];
    snprintf(numkeys, sizeof numkeys, "%d", nkeys);
    argv[0] = "EVALSHA";
    argl[0] = 7;
    argv[1] = shas[id];
    argl[1] = 40;
    argv[2] = numkeys;
    argl[2] = strlen(numkeys);
    memcpy(argv + 3, args, (size_t)nargs * sizeof *argv);
    memcpy(argl + 3, lens, (size_t)nargs * sizeof *argl);

    char what[64];
    snprintf(what, sizeof what, "EVALSHA (%s script)", scripts[id].name);
    sc_status st = sc__pool_command(p, deadline, timeout_ms, what, argc, argv, argl, reply, err, errlen);
    if (st == SC_OK && (*reply)->type == REDIS_REPLY_ERROR && strncmp((*reply)->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(*reply);
        *reply = NULL;
        argv[0] = "EVAL";
        argl[0] = 4;
        argv[1] = scripts[id].src;
        argl[1] = scripts[id].len;
        snprintf(what, sizeof what, "EVAL (%s script)", scripts[id].name);
        st = sc__pool_command(p, deadline, timeout_ms, what, argc, argv, argl, reply, err, errlen);
    }
    free(argv);
    free(argl);
    if (st == SC_OK && (*reply)->type == REDIS_REPLY_ERROR) {
        sc__remote_errf(err, errlen, "redis %s: %s script failed: %.*s", sc__pool_addr(p), scripts[id].name,
                 (int)(*reply)->len, (*reply)->str);
        freeReplyObject(*reply);
        *reply = NULL;
        st = SC_ERR_REMOTE;
    }
    return st;
}

"""The Lua scripts of the bus consumer, each atomic on the Redis server (``EVALSHA``; see
:class:`busclient.Script`)."""

from __future__ import annotations

from busclient import Script

__all__ = ["REPLY", "DEAD_LETTER", "TOUCH", "REQUEUE"]


#: Answer request entries, at most once per entry id; many entries per call (one round trip).
#: KEYS: request stream. ARGV: group, consumer, done record TTL (ms), reply list TTL (ms),
#: done record key prefix (``sbusr:done:``), then per entry three values: entry id, reply list
#: key ('' for none), response text ('' for none).
#: Per entry: when this consumer's delivery is the only one there ever was (XPENDING: owner
#: is this consumer, delivery count 1) no other copy can exist and no record is needed;
#: otherwise the "answered" record ``<prefix><entry id>`` is taken with SET NX PX and only its
#: first taker replies. Then RPUSH + PEXPIRE the reply list, then XACK.
#: Returns one value per entry: 1 answered now, 0 answered before (acked either way), or the
#: error text of a reply list refused: Redis's (e.g. WRONGTYPE: ``reply_to`` names a key that
#: is not a list), or ours when ``reply_to`` names a key that exists without an expiry, or
#: with one longer than the reply list TTL (a reply list is new, or has the expiry of a reply
#: pushed before; any other key is another application's data, e.g. a task queue, and is never
#: written to nor given an expiry); such an
#: entry is neither acked nor recorded as answered, and the consumer dead-letters it. One bad
#: entry never holds back the others of the same call.
#: Reply lists and records are not declared in KEYS: the bus needs a single Redis, not a cluster.
REPLY = Script("""
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local done_ttl, reply_ttl, done_prefix = ARGV[3], ARGV[4], ARGV[5]
local outcomes = {}
for i = 6, #ARGV, 3 do
  local id, reply_to, body = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local pending = redis.pcall('XPENDING', stream, group, id, id, 1)
  local first
  if type(pending) == 'table' and not pending.err and pending[1]
      and pending[1][2] == consumer and tonumber(pending[1][4]) == 1 then
    first = true
  else
    first = redis.call('SET', done_prefix .. id, '1', 'NX', 'PX', done_ttl)
  end
  local refused
  if first and reply_to ~= '' and body ~= '' then
    local life_ms = redis.call('PTTL', reply_to)
    if life_ms == -1 then
      refused = 'REFUSED reply_to names a key without an expiry, not a reply list'
      redis.call('DEL', done_prefix .. id)
    elseif life_ms > tonumber(reply_ttl) then
      refused = 'REFUSED reply_to names a key that expires later than a reply list would, '
        .. 'not a reply list'
      redis.call('DEL', done_prefix .. id)
    else
      local pushed = redis.pcall('RPUSH', reply_to, body)
      if type(pushed) == 'table' and pushed.err then
        refused = pushed.err
        redis.call('DEL', done_prefix .. id)
      else
        redis.call('PEXPIRE', reply_to, reply_ttl)
      end
    end
  end
  if refused then
    outcomes[#outcomes + 1] = refused
  else
    redis.pcall('XACK', stream, group, id)
    outcomes[#outcomes + 1] = first and 1 or 0
  end
end
return outcomes
""")

#: Move one pending entry to the dead-letter stream, once.
#: KEYS: request stream, dead-letter stream. ARGV: group, entry id, reason, deliveries,
#: dead-letter stream MAXLEN (approximate).
#: The dead entry's fields: reason, entry_id, deliveries, then the original fields.
#: Returns 1 when moved, 0 when the entry was no longer pending.
DEAD_LETTER = Script("""
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if acked == 1 then
  local fields = {'reason', ARGV[3], 'entry_id', ARGV[2], 'deliveries', ARGV[4]}
  if entry[1] then
    for _, value in ipairs(entry[1][2]) do fields[#fields + 1] = value end
  end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(fields))
end
return acked
""")

#: Reset the idle time of entries this consumer is still working on, so no other instance
#: reclaims them (XCLAIM ... JUSTID does not count a delivery). Entries another consumer
#: owns by now are left alone.
#: KEYS: request stream. ARGV: group, consumer, entry ids...  Returns the number touched.
TOUCH = Script("""
local touched = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
""")

#: Hand a pending entry this consumer will not run back to the stream: a copy is added at
#: its end (new entry id, same fields) and the original acked, so any instance reads it at
#: once instead of after claim_idle_ms. Only when this consumer still owns the entry.
#: KEYS: request stream. ARGV: group, consumer, entry id.  Returns the new id or false.
REQUEUE = Script("""
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not (pending[1] and pending[1][2] == ARGV[2]) then return false end
local entry = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if not entry[1] then return false end
return redis.call('XADD', KEYS[1], '*', unpack(entry[1][2]))
""")

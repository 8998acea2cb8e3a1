"""What the Redis revocation store keeps on the server, and the Lua scripts that change it.

An entry's state is kept as JSON, encoded and decoded here too.

Layout under one key prefix:

- ``entry:<key>``: the entry's latest state as JSON, expiring when the entry does;
- ``id:<id>``: the entry key an id names (for un-revoking by id);
- ``seq``: the change counter; ``epoch``: the change feed's identity, written by the
  first reader of a feed that has none (so a flushed or restarted Redis gets a new one).
  A reader that finds the counter below the entries' own numbers (the ``seq`` key lost
  alone) sets it past them again and gives the feed a new epoch: numbers were handed
  out twice, and every follower must reload;
- ``changes``: sorted set of entry keys scored by their latest change number;
- ``expiry``: sorted set of entry keys scored by expiry, to prune ``changes``;
- ``audit``: a stream of admin actions.
"""

from __future__ import annotations

import json

from backends.revocation.base import Change, EntryKey, Revocation

# Expired members pruned from the indexes per write: bounded work in one script.
PRUNE_PER_WRITE = 1000

# One change: ARGV[1] 'merge' revokes (ARGV[6] the incoming entry, merged over a live one
# as policy.merge does); 'put' writes ARGV[6] exactly, only if the entry is still
# ARGV[7], else returns false. Then the next number, the indexes, the id key (built here:
# a merge decides whose id it keeps), the audit record (ARGV[8] its action, '' for none)
# and the announcement. Returns the state written. Numbers are written with %.17g, which
# reads back as the same double.
CHANGE_SCRIPT = """
local entry, counter, changes, expiry, audit = unpack(KEYS)
local mode, member, now, channel, id_prefix = unpack(ARGV, 1, 5)
local payload, expected, action, actor, reason = unpack(ARGV, 6, 10)
local null = cjson.null
local current = redis.call('GET', entry)
local state = cjson.decode(payload)
if mode == 'merge' then
  if current then
    local old = cjson.decode(current)
    if not old.removed and old.expires_at > tonumber(now) then
      if state.cutoff ~= null and (old.cutoff == null or state.cutoff > old.cutoff) then
        old.cutoff = state.cutoff
      end
      if state.expires_at > old.expires_at then
        old.expires_at = state.expires_at
      end
      state = old
    end
  end
  state.removed = false
  state.origin = null
elseif (current or '') ~= expected then
  return false
end
local function text(v)
  if v == nil or v == null then return 'null' end
  return cjson.encode(v)
end
local function number(v)
  if v == nil or v == null then return 'null' end
  return string.format('%.17g', v)
end
local origin = 'null'
if type(state.origin) == 'table' then
  origin = '[' .. text(state.origin[1]) .. ',' .. string.format('%d', state.origin[2]) .. ']'
end
local seq = redis.call('INCR', counter)
local doc = '{"seq":' .. string.format('%d', seq) .. ',"id":' .. text(state.id)
  .. ',"kind":' .. text(state.kind) .. ',"value":' .. text(state.value)
  .. ',"issuer":' .. text(state.issuer) .. ',"cutoff":' .. number(state.cutoff)
  .. ',"expires_at":' .. number(state.expires_at)
  .. ',"created_at":' .. number(state.created_at) .. ',"reason":' .. text(state.reason)
  .. ',"actor":' .. text(state.actor) .. ',"removed":' .. tostring(state.removed == true)
  .. ',"origin":' .. origin .. '}'
local exat = string.format('%d', math.ceil(state.expires_at))
redis.call('SET', entry, doc, 'EXAT', exat)
redis.call('ZADD', changes, seq, member)
redis.call('ZADD', expiry, number(state.expires_at), member)
if state.removed == true then
  redis.call('DEL', id_prefix .. state.id)
else
  redis.call('SET', id_prefix .. state.id, member, 'EXAT', exat)
end
local stale = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, PRUNE_PER_WRITE)
for _, old in ipairs(stale) do
  if old ~= member then
    redis.call('ZREM', changes, old)
    redis.call('ZREM', expiry, old)
  end
end
if action ~= '' then
  local issuer = state.issuer
  if issuer == null then issuer = '' end
  redis.call('XADD', audit, '*', 'at', now, 'action', action, 'entry_id', state.id,
             'kind', state.kind, 'value', state.value, 'issuer', issuer, 'actor', actor,
             'reason', reason)
end
redis.call('PUBLISH', channel, seq)
return doc
""".replace("PRUNE_PER_WRITE", str(PRUNE_PER_WRITE))

# One page of the feed, with the epoch and the counter as found, atomically.
READ_SCRIPT = """
local epoch_key, counter, changes = unpack(KEYS)
local new_epoch, cursor, limit = unpack(ARGV)
local epoch = redis.call('GET', epoch_key)
if not epoch then
  redis.call('SET', epoch_key, new_epoch)
  epoch = new_epoch
end
local head = tonumber(redis.call('GET', counter) or '0')
local top = redis.call('ZREVRANGE', changes, 0, 0, 'WITHSCORES')
if top[2] and tonumber(top[2]) > head then
  redis.call('SET', counter, top[2])
  redis.call('SET', epoch_key, new_epoch)
  epoch = new_epoch
end
local page = redis.call('ZRANGEBYSCORE', changes, '(' .. cursor, '+inf', 'WITHSCORES',
                        'LIMIT', 0, limit)
local at_cursor = redis.call('ZRANGEBYSCORE', changes, cursor, cursor, 'LIMIT', 0, 1)
return {epoch, head, page, at_cursor}
"""


def key_member(key: EntryKey) -> str:
    kind, issuer, value = key
    return json.dumps([kind, issuer or "", value], separators=(",", ":"))


def encode_state(entry: Revocation, removed: bool, origin: tuple[str, int] | None = None) -> str:
    return json.dumps(
        {
            "seq": 0,  # the change script numbers it
            "id": entry.id,
            "kind": entry.kind,
            "value": entry.value,
            "issuer": entry.issuer,
            "cutoff": entry.cutoff,
            "expires_at": entry.expires_at,
            "created_at": entry.created_at,
            "reason": entry.reason,
            "actor": entry.actor,
            "removed": removed,
            "origin": list(origin) if origin is not None else None,
        },
        separators=(",", ":"),
    )


def decode_state(raw: bytes | str | None) -> Change | None:
    if raw is None:
        return None
    doc = json.loads(raw)
    cutoff = doc["cutoff"]
    entry = Revocation(
        id=doc["id"],
        kind=doc["kind"],
        value=doc["value"],
        issuer=doc["issuer"],
        # The change script writes a whole number without its ".0".
        cutoff=float(cutoff) if cutoff is not None else None,
        expires_at=float(doc["expires_at"]),
        created_at=float(doc["created_at"]),
        reason=doc["reason"],
        actor=doc["actor"],
    )
    origin = doc.get("origin")  # absent from states written before origins existed
    return Change(doc["seq"], entry, doc["removed"], tuple(origin) if origin else None)


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

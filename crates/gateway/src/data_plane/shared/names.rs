//! Everything the fleet agrees on in Redis, in one place: the names of its keys and channels
//! and the Lua scripts that change them. Every replica must write the same names and run the
//! same scripts; a change here is a change of the shared format (bump `FORMAT`).
//!
//! The keys, under the settings' prefix (`switchyard` by default):
//! - `PREFIX:v1:limits:KEY_ID`: a hash per virtual key: its rpm and tpm buckets
//!   (`rpm_level`, `rpm_at`, `tpm_level`, `tpm_at`; the time in microseconds of Redis's clock)
//!   and its budgets (`day` = 20261126, `day_spent`, `day_reserved`, `month` = 202611,
//!   `month_spent`, `month_reserved`, nano-USD), and what each replica holds of the
//!   reservations (`day_held:REPLICA`, `month_held:REPLICA` = `PERIOD:NANOS`, see [`RESERVE`]).
//!   Kept for two days after its last change: a key idle that long is rebuilt from the store,
//!   which holds every request's cost.
//! - `PREFIX:v1:replicas`: a sorted set of replica ids scored by when their heartbeat expires.
//! - `PREFIX:v1:cache:HEX`: one exact cache entry, `HEX` the SHA-256 of its scope (tenant,
//!   route, shape) and exact key, expiring with the entry (`PX`).
//! - channels `PREFIX:v1:cache:entries` (semantic entries as they are stored) and
//!   `PREFIX:v1:control:changed` (a control change committed).
//!
//! The scripts read Redis's clock (`TIME`), so replicas whose clocks differ agree on the
//! buckets' refill and on when a UTC day or month starts; Redis 7 replicates a script's
//! effects, so reading the clock before writing is allowed.

use sha2::{Digest, Sha256};
use switchyard_cache::{ExactKey, Scope};

/// The version of the names and formats below: replicas of different formats never read each
/// other's keys.
const FORMAT: &str = "v1";

/// The names under one prefix.
#[derive(Debug, Clone)]
pub struct Names {
    root: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Names {
            root: format!("{prefix}:{FORMAT}"),
        }
    }

    /// A virtual key's limits (rate buckets and budgets).
    pub fn limits(&self, key_id: &str) -> String {
        format!("{}:limits:{key_id}", self.root)
    }

    /// The replicas' heartbeats.
    pub fn replicas(&self) -> String {
        format!("{}:replicas", self.root)
    }

    /// An exact cache entry. The scope is inside the digest, every part length-prefixed, so
    /// two tenants (or routes, or shapes) never share a name.
    pub fn cache_entry(&self, scope: &Scope, key: &ExactKey) -> String {
        let mut h = Sha256::new();
        for part in [scope.tenant.as_bytes(), scope.route.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(scope.shape.0);
        h.update(key.0);
        format!("{}:cache:{}", self.root, hex::encode(h.finalize()))
    }

    /// Where semantic cache entries are published as they are stored.
    pub fn cache_channel(&self) -> String {
        format!("{}:cache:entries", self.root)
    }

    /// Where a committed control change is announced.
    pub fn changes_channel(&self) -> String {
        format!("{}:control:changed", self.root)
    }
}

/// Redis's clock and the UTC calendar periods budgets count in (`counters::Periods`, computed
/// here from that clock). Civil dates from days since 1970 and back are Howard Hinnant's
/// algorithms; Lua's numbers are doubles, exact for these integers.
const CLOCK: &str = r"
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function civil(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m > 2 and m - 3 or m + 9
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local DAY_MS = 86400000
local function periods(us)
  local ms = math.floor(us / 1000)
  local days = math.floor(ms / DAY_MS)
  local y, m, d = civil(days)
  local ny, nm = y, m + 1
  if nm == 13 then ny, nm = y + 1, 1 end
  return {
    ms = ms, day = y * 10000 + m * 100 + d, month = y * 100 + m,
    day_start = days * DAY_MS, day_end = (days + 1) * DAY_MS,
    month_start = days_from_civil(y, m, 1) * DAY_MS,
    month_end = days_from_civil(ny, nm, 1) * DAY_MS,
  }
end

local function num(x) return string.format('%.17g', x) end
local function int(x) return string.format('%.0f', x) end
local KEEP_MS = 172800000
";

/// Token buckets and spend budgets as `switchyard_resilience`'s `TokenBucket` and
/// `SpendBudget` keep them, over the fields of a key's limits hash.
const LIMITS: &str = r"
-- A bucket of `cap` units refilled at cap / 60 a second; full when Redis holds none. The level
-- may be below zero (a settlement's debt).
local function refill(level, at, cap, us)
  if not level then return cap end
  local elapsed = math.max(0, us - (at or us)) / 1000000
  return math.min(cap, level + elapsed * cap / 60)
end

-- Microseconds until `amount` (at most the whole bucket) fits; nil when it fits now.
local function wait_for(level, amount, cap)
  local needed = math.min(amount, cap)
  if level >= needed then return nil end
  if cap <= 0 then return 60000000 end
  return (needed - level) / (cap / 60) * 1000000
end

-- What the x-ratelimit headers say: units left, and microseconds until the bucket is full.
local function window(level, cap)
  local remaining = math.floor(math.max(0, math.min(level, cap)))
  if cap <= 0 then return remaining, 0 end
  return remaining, math.max(0, (cap - level) / (cap / 60) * 1000000)
end

-- A budget's spent and reserved in `period`: zero when what Redis holds is of an earlier period
-- (a new day or month starts at zero), nil when it holds nothing (seed it from the store).
local function budget(period, stored, spent, reserved)
  if not stored then return nil, nil end
  if tonumber(stored) ~= period then return 0, 0 end
  return tonumber(spent) or 0, tonumber(reserved) or 0
end

-- What one replica holds of a budget's reservations: the field `day_held:REPLICA` (or
-- `month_held:`) = `PERIOD:NANOS`; 0 when it holds nothing of `period`.
local function held_field(which, replica) return which .. '_held:' .. replica end
local function parse_held(value, period)
  if not value then return 0 end
  local p, nanos = string.match(value, '^(%d+):(%d+)$')
  if tonumber(p) ~= period then return 0 end
  return tonumber(nanos)
end
local function set_held(k, which, replica, period, nanos)
  if nanos > 0 then
    redis.call('HSET', k, held_field(which, replica), int(period) .. ':' .. int(nanos))
  else
    redis.call('HDEL', k, held_field(which, replica))
  end
end
";

/// Checks and takes every limit of a key in one step (`switchyard_resilience::KeyLimits`:
/// rpm, then tpm, then the day's and the month's budget; a refusal takes nothing).
///
/// A budget's reservations are held in the name of the replica that made them, so that a
/// replica that dies with requests in flight (SIGKILL, a crash, a host lost) does not keep
/// them reserved until the day or month ends:
/// 1. a reservation adds its cost to `day_reserved` and to what this replica holds
///    (`day_held:REPLICA`); a settlement frees what the replica still holds of it, at most;
/// 2. every reservation first gives back what replicas whose heartbeat has expired
///    (`HEARTBEAT`, `RedisSettings::replica_ttl`) hold of the key, and drops holdings of an
///    earlier period; the fleet's budget is free again within a heartbeat's lifetime of a
///    replica's death;
/// 3. a replica cut off from Redis for longer than that loses its holdings the same way,
///    and its settlements later free nothing (point 1): nothing is freed twice. What the
///    requests it had in flight cost is then counted in the store only, so the fleet may
///    pass the budget by what those requests cost.
///
/// KEYS[1] the key's limits, KEYS[2] the replicas' heartbeats; ARGV rpm, tpm, daily, monthly
/// ('' for none), tokens, cost, this replica's id.
/// Reply: outcome (0 admitted, 1 refused, 2 seed first), which (refused: 1 rpm, 2 tpm, 3 day,
/// 4 month; seed: 1 the day, 2 the month, 3 both), retry after (µs), rpm remaining and reset
/// (µs; -1 without rpm), tpm remaining and reset, the day, its spent + reserved (-1 unknown),
/// the month, its spent + reserved, the day's and the month's start (ms).
pub const RESERVE: &str = r"
local us = clock()
local p = periods(us)
local k, alive = KEYS[1], KEYS[2]
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local daily, monthly = tonumber(ARGV[3]), tonumber(ARGV[4])
local tokens, cost = tonumber(ARGV[5]), tonumber(ARGV[6])
local replica = ARGV[7]
local h = redis.call('HMGET', k, 'rpm_level', 'rpm_at', 'tpm_level', 'tpm_at',
  'day', 'day_spent', 'day_reserved', 'month', 'month_spent', 'month_reserved')
local r_level = rpm and refill(tonumber(h[1]), tonumber(h[2]), rpm, us)
local t_level = tpm and refill(tonumber(h[3]), tonumber(h[4]), tpm, us)
local d_spent, d_res = budget(p.day, h[5], h[6], h[7])
local m_spent, m_res = budget(p.month, h[8], h[9], h[10])

-- Point 2: the holdings of dead replicas given back, those of earlier periods dropped.
local given = {day = 0, month = 0}
local fields = (daily or monthly) and redis.call('HGETALL', k) or {}
for i = 1, #fields, 2 do
  local which, holder = string.match(fields[i], '^(%a+)_held:(.+)$')
  if which == 'day' or which == 'month' then
    local nanos = parse_held(fields[i + 1], p[which])
    local expires = nanos > 0 and tonumber(redis.call('ZSCORE', alive, holder))
    if nanos == 0 or not expires or expires <= p.ms then
      redis.call('HDEL', k, fields[i])
      given[which] = given[which] + nanos
    end
  end
end
if d_res and given.day > 0 then
  d_res = math.max(0, d_res - given.day)
  redis.call('HSET', k, 'day_reserved', int(d_res))
end
if m_res and given.month > 0 then
  m_res = math.max(0, m_res - given.month)
  redis.call('HSET', k, 'month_reserved', int(m_res))
end

local function reply(outcome, which, retry)
  local rr, rreset, tr, treset = -1, 0, -1, 0
  if rpm then rr, rreset = window(r_level, rpm) end
  if tpm then tr, treset = window(t_level, tpm) end
  local dc, mc = -1, -1
  if d_spent then dc = d_spent + d_res end
  if m_spent then mc = m_spent + m_res end
  return {outcome, which, math.ceil(retry), rr, math.ceil(rreset), tr, math.ceil(treset),
    p.day, dc, p.month, mc, p.day_start, p.month_start}
end

if rpm then
  local wait = wait_for(r_level, 1, rpm)
  if wait then return reply(1, 1, wait) end
end
if tpm then
  local wait = wait_for(t_level, tokens, tpm)
  if wait then return reply(1, 2, wait) end
end
local seed = 0
if daily and not d_spent then seed = seed + 1 end
if monthly and not m_spent then seed = seed + 2 end
if seed > 0 then return reply(2, seed, 0) end
if daily and d_spent + d_res >= daily then return reply(1, 3, (p.day_end - p.ms) * 1000) end
if monthly and m_spent + m_res >= monthly then
  return reply(1, 4, (p.month_end - p.ms) * 1000)
end

if rpm then
  r_level = r_level - 1
  redis.call('HSET', k, 'rpm_level', num(r_level), 'rpm_at', int(us))
end
if tpm then
  t_level = t_level - tokens
  redis.call('HSET', k, 'tpm_level', num(t_level), 'tpm_at', int(us))
end
-- Point 1: reserved, and held in this replica's name.
if daily then
  d_res = d_res + cost
  redis.call('HSET', k, 'day', p.day, 'day_spent', int(d_spent), 'day_reserved', int(d_res))
  local mine = parse_held(redis.call('HGET', k, held_field('day', replica)), p.day)
  set_held(k, 'day', replica, p.day, mine + cost)
end
if monthly then
  m_res = m_res + cost
  redis.call('HSET', k, 'month', p.month, 'month_spent', int(m_spent),
    'month_reserved', int(m_res))
  local mine = parse_held(redis.call('HGET', k, held_field('month', replica)), p.month)
  set_held(k, 'month', replica, p.month, mine + cost)
end
redis.call('PEXPIRE', k, KEEP_MS)
return reply(0, 0, 0)
";

/// Replaces a reservation with what the request used: the tpm bucket gets back what it
/// reserved and pays what it used (a debt below zero delays later requests); each budget
/// Redis holds frees the reservation (at most what this replica still holds of it: see
/// [`RESERVE`]) and adds the cost. A budget Redis holds nothing of is left alone: the store
/// has the request's cost, and the next reservation seeds from it.
///
/// KEYS[1] the key's limits; ARGV tpm ('' for none), reserved tokens, used tokens, reserved
/// cost, used cost, the id of the replica that reserved.
pub const SETTLE: &str = r"
local us = clock()
local p = periods(us)
local k = KEYS[1]
local tpm = tonumber(ARGV[1])
local rt, ut = tonumber(ARGV[2]), tonumber(ARGV[3])
local rc, uc = tonumber(ARGV[4]), tonumber(ARGV[5])
local replica = ARGV[6]
local h = redis.call('HMGET', k, 'tpm_level', 'tpm_at',
  'day', 'day_spent', 'day_reserved', 'month', 'month_spent', 'month_reserved')
if tpm then
  local level = math.min(tpm, refill(tonumber(h[1]), tonumber(h[2]), tpm, us) + rt - ut)
  redis.call('HSET', k, 'tpm_level', num(level), 'tpm_at', int(us))
end
local function settle(field, period, stored, spent, reserved)
  local s, r = budget(period, stored, spent, reserved)
  if not s then return end
  local mine = parse_held(redis.call('HGET', k, held_field(field, replica)), period)
  local freed = math.min(rc, mine)
  set_held(k, field, replica, period, mine - freed)
  redis.call('HSET', k, field, period, field .. '_spent', int(s + uc),
    field .. '_reserved', int(math.max(0, r - freed)))
end
settle('day', p.day, h[3], h[4], h[5])
settle('month', p.month, h[6], h[7], h[8])
redis.call('PEXPIRE', k, KEEP_MS)
return 1
";

/// Seeds a key's budgets with what the store says it spent, only where Redis holds nothing for
/// them (HSETNX): two replicas seeding at once count the spend once.
///
/// KEYS[1] the key's limits; ARGV the day, its spend ('' not to seed it), the month, its spend.
pub const SEED: &str = r"
local k = KEYS[1]
local function seed(field, period, spent)
  if spent == '' then return end
  if redis.call('HSETNX', k, field, period) == 1 then
    redis.call('HSET', k, field .. '_spent', spent, field .. '_reserved', 0)
  end
end
seed('day', ARGV[1], ARGV[2])
seed('month', ARGV[3], ARGV[4])
redis.call('PEXPIRE', k, KEEP_MS)
return 1
";

/// A replica's heartbeat: its id scored by when it expires (Redis's clock), the expired ones
/// removed; the reply is how many replicas are alive.
///
/// KEYS[1] the replicas; ARGV this replica's id, how long its heartbeat lasts (ms).
pub const HEARTBEAT: &str = r"
local ms = math.floor(clock() / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
redis.call('ZADD', KEYS[1], ms + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl)
return redis.call('ZCARD', KEYS[1])
";

/// The scripts, each with the helpers it uses, made once (hashing them for EVALSHA).
pub struct Scripts {
    pub reserve: redis::Script,
    pub settle: redis::Script,
    pub seed: redis::Script,
    pub heartbeat: redis::Script,
}

impl Scripts {
    pub fn new() -> Self {
        let with_limits = |body: &str| redis::Script::new(&format!("{CLOCK}{LIMITS}{body}"));
        Scripts {
            reserve: with_limits(RESERVE),
            settle: with_limits(SETTLE),
            seed: redis::Script::new(&format!("{CLOCK}{SEED}")),
            heartbeat: redis::Script::new(&format!("{CLOCK}{HEARTBEAT}")),
        }
    }

    /// A script that answers the periods of a time (µs), to test `periods` against
    /// `counters::Periods`.
    #[cfg(test)]
    pub fn periods_probe() -> redis::Script {
        redis::Script::new(&format!(
            "{CLOCK}local p = periods(tonumber(ARGV[1])) return {{p.day, p.month, \
             p.day_start, p.month_start, p.day_end, p.month_end}}"
        ))
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_cache::Shape;

    fn scope(tenant: &str, route: &str) -> Scope {
        Scope {
            tenant: tenant.into(),
            route: route.into(),
            shape: Shape([7; 32]),
        }
    }

    #[test]
    fn cache_names_keep_tenants_routes_and_shapes_apart() {
        let n = Names::new("sy");
        let k = ExactKey([1; 32]);
        let a = n.cache_entry(&scope("ab", "c"), &k);
        assert!(a.starts_with("sy:v1:cache:"), "{a}");
        assert_eq!(a, n.cache_entry(&scope("ab", "c"), &k), "stable");
        // Moving a byte between tenant and route is another scope.
        assert_ne!(a, n.cache_entry(&scope("a", "bc"), &k));
        assert_ne!(a, n.cache_entry(&scope("other", "c"), &k));
        let mut shaped = scope("ab", "c");
        shaped.shape = Shape([8; 32]);
        assert_ne!(a, n.cache_entry(&shaped, &k));
        assert_ne!(a, n.cache_entry(&scope("ab", "c"), &ExactKey([2; 32])));
        assert_eq!(n.limits("k-1"), "sy:v1:limits:k-1");
    }

    /// The scripts' calendar (on Redis's clock) is `counters::Periods`' (on this process's):
    /// month ends, a leap day, the turn of a year, before 1970 not needed.
    #[tokio::test]
    async fn the_scripts_periods_are_the_gateways() {
        use crate::data_plane::counters::Periods;
        use chrono::TimeZone;
        let redis = match switchyard_testkit::servers::RedisServer::start() {
            Ok(r) => r,
            Err(e) => return e.skip("the_scripts_periods_are_the_gateways"),
        };
        let mut conn = redis::Client::open(redis.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let probe = Scripts::periods_probe();
        for (y, mo, d, h) in [
            (2026, 11, 26, 13),
            (2026, 12, 31, 23),
            (2027, 1, 1, 0),
            (2028, 2, 29, 12),
            (2028, 3, 1, 0),
            (2100, 2, 28, 23),
            (2026, 1, 31, 0),
        ] {
            let t = chrono::Utc.with_ymd_and_hms(y, mo, d, h, 30, 15).unwrap();
            let us = t.timestamp_micros() + 123;
            let got: Vec<i64> = probe.arg(us).invoke_async(&mut conn).await.unwrap();
            let p = Periods::at(t);
            let ms = t.timestamp_millis();
            let expected = vec![
                i64::from(p.day),
                i64::from(p.month),
                p.day_start_ms,
                p.month_start_ms,
                ms + i64::try_from(p.until_next_day.as_millis()).unwrap(),
                ms + i64::try_from(p.until_next_month.as_millis()).unwrap(),
            ];
            assert_eq!(got, expected, "{t}");
        }
    }
}

//! Dashboard sessions and the throttle on wrong admin keys, pure of HTTP handlers (the edge's
//! `access` and `dashboard` use them). Sessions are kept behind [`SessionStore`], so that
//! replicas behind one load balancer can share them: [`MemorySessions`] is a bounded table in
//! this process, [`StoredSessions`] the same table in the store every replica shares. The
//! throttle stays in this process.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use switchyard_store::{Store, StoreError};

pub const SESSION_COOKIE: &str = "switchyard_dashboard";
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3_600);
/// Beyond this many live sessions the oldest is ended: sign-ins cannot grow memory unbounded.
const MAX_SESSIONS: usize = 1_024;
pub(crate) const LOGIN_PATH: &str = "/dashboard/login";
/// Wrong keys an address may try at once, and again each minute after.
const FAILURES_PER_MINUTE: u32 = 10;
/// Addresses whose failures are remembered; beyond it the least throttled is forgotten.
const MAX_CLIENTS: usize = 4_096;

/// Where dashboard sessions are kept. A session is bound to the admin key it was opened with
/// (its SHA-256, `admin`) and lasts [`SESSION_TTL`]. An implementation keeps only the digest
/// of a token ([`digest`]), never the token, and reads its own clock: with several replicas
/// the one that checks a session need not be the one that opened it.
///
/// Async, unlike the store's traits: the edge calls it on its async threads for every
/// dashboard request, and a shared implementation does I/O.
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// A new session for the admin whose key hashes to `admin`; returns its token.
    async fn open(&self, admin: [u8; 32]) -> Result<String, StoreError>;

    /// How long the session has left, when `token` names one that is live and was opened with
    /// the admin key in force now (`admin`; `None` when no admin key is configured).
    async fn check(
        &self,
        token: &str,
        admin: Option<[u8; 32]>,
    ) -> Result<Option<Duration>, StoreError>;

    /// Ends the session `token` names, if any.
    async fn close(&self, token: &str) -> Result<(), StoreError>;
}

/// Sessions in this process, by the SHA-256 of their token: at most [`MAX_SESSIONS`], the
/// oldest ended first. A restart signs every browser out.
#[derive(Default)]
pub struct MemorySessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
}

#[derive(Clone, Copy)]
struct Session {
    admin: [u8; 32],
    expires: Instant,
}

#[async_trait::async_trait]
impl SessionStore for MemorySessions {
    async fn open(&self, admin: [u8; 32]) -> Result<String, StoreError> {
        Ok(self.open_at(admin, Instant::now()))
    }

    async fn check(
        &self,
        token: &str,
        admin: Option<[u8; 32]>,
    ) -> Result<Option<Duration>, StoreError> {
        Ok(self.check_at(token, admin, Instant::now()))
    }

    async fn close(&self, token: &str) -> Result<(), StoreError> {
        self.remove(token);
        Ok(())
    }
}

impl MemorySessions {
    /// [`SessionStore::open`] at `now`.
    fn open_at(&self, admin: [u8; 32], now: Instant) -> String {
        let token = new_token();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                open.remove(&oldest);
            }
        }
        open.insert(
            digest(&token),
            Session {
                admin,
                expires: now + SESSION_TTL,
            },
        );
        token
    }

    /// [`SessionStore::check`] at `now`.
    fn check_at(&self, token: &str, admin: Option<[u8; 32]>, now: Instant) -> Option<Duration> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let session = open.get(&digest(token))?;
        (Some(session.admin) == admin && session.expires > now)
            .then(|| session.expires.saturating_duration_since(now))
    }

    fn remove(&self, token: &str) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&digest(token));
    }
}

/// Sessions in the store ([`switchyard_store::SessionRecords`]), so that every replica on one
/// database knows every session: a browser behind a load balancer stays signed in wherever
/// its requests land, and a restart signs no one out. At most [`MAX_SESSIONS`] are kept, those
/// that expire first ended first, as [`MemorySessions`] does; replicas opening sessions at once
/// keep the bound too (the store opens each in a locked transaction). Times are the wall
/// clock's, which replicas share, and the store's calls run off the async threads.
pub struct StoredSessions {
    store: Arc<dyn Store>,
}

impl StoredSessions {
    pub fn new(store: Arc<dyn Store>) -> StoredSessions {
        StoredSessions { store }
    }

    /// Runs `work` on the store off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        crate::tasks::spawn_blocking(move || work(&*store))
            .await
            .map_err(|_| StoreError::Interrupted)?
    }

    /// [`SessionStore::open`] at `now_ms`.
    async fn open_at(&self, admin: [u8; 32], now_ms: i64) -> Result<String, StoreError> {
        let token = new_token();
        let key = digest(&token);
        let ttl = i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
        let expires = now_ms.saturating_add(ttl);
        self.blocking(move |s| s.open_session(&key, &admin, now_ms, expires, MAX_SESSIONS))
            .await?;
        Ok(token)
    }

    /// [`SessionStore::check`] at `now_ms`.
    async fn check_at(
        &self,
        token: &str,
        admin: Option<[u8; 32]>,
        now_ms: i64,
    ) -> Result<Option<Duration>, StoreError> {
        let Some(admin) = admin else {
            return Ok(None);
        };
        let key = digest(token);
        let session = self.blocking(move |s| s.session(&key, now_ms)).await?;
        Ok(session
            .filter(|s| s.admin == admin)
            .map(|s| Duration::from_millis(u64::try_from(s.expires_at_ms - now_ms).unwrap_or(0))))
    }
}

#[async_trait::async_trait]
impl SessionStore for StoredSessions {
    async fn open(&self, admin: [u8; 32]) -> Result<String, StoreError> {
        self.open_at(admin, wall_ms()).await
    }

    async fn check(
        &self,
        token: &str,
        admin: Option<[u8; 32]>,
    ) -> Result<Option<Duration>, StoreError> {
        self.check_at(token, admin, wall_ms()).await
    }

    async fn close(&self, token: &str) -> Result<(), StoreError> {
        let key = digest(token);
        self.blocking(move |s| s.close_session(&key)).await?;
        Ok(())
    }
}

/// A new session token: 32 random bytes as hex.
fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The wall clock in Unix ms (a session opened on one replica is checked on another).
fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Failed key checks per client address, so a wrong key cannot be tried hundreds of times a
/// second. It stays in this process, not behind a trait like the sessions: it counts what one
/// replica sees, and a guesser spread over N replicas gets N buckets, a bound that still
/// holds; sharing it would put a store round trip in front of every key check.
///
/// 1. Each address has a bucket of [`FAILURES_PER_MINUTE`] wrong keys, refilled at that rate.
///    A right key never touches it, and only an address that failed is remembered.
/// 2. A key check from an address whose bucket holds less than one failure is refused (429
///    with `retry-after`) before the key is looked at, right or wrong.
/// 3. Each failure costs one, even past zero: a burst of concurrent guesses pays for every
///    guess in the time it waits.
/// 4. At most [`MAX_CLIENTS`] addresses are kept: one whose bucket refilled is forgotten
///    first, else the one with the fullest bucket, so many addresses cannot grow memory and
///    the most throttled are remembered longest. IPv6 addresses count by their /64, the
///    block one machine gets.
///
/// The address is the TCP peer's. `x-forwarded-for` is not read: the gateway has no list of
/// trusted proxies, and a header any client can set would give it a fresh address per guess.
/// Behind a proxy, every client shares the proxy's bucket.
#[derive(Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<IpAddr, switchyard_resilience::TokenBucket>>,
}

impl SignInThrottle {
    /// Whether `client` may have a key checked now, else how long until it may.
    pub(crate) fn admit(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(bucket) = failures.get_mut(&client) else {
            return Ok(());
        };
        let level = bucket.level(now);
        if level >= 1.0 {
            return Ok(());
        }
        let per_sec = f64::from(FAILURES_PER_MINUTE) / 60.0;
        Err(Duration::from_secs_f64((1.0 - level) / per_sec))
    }

    /// `client` presented a wrong key. True when this failure is the one that throttles it.
    pub(crate) fn failed(&self, client: IpAddr, now: Instant) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !failures.contains_key(&client) && failures.len() >= MAX_CLIENTS {
            let full = f64::from(FAILURES_PER_MINUTE);
            failures.retain(|_, b| b.level(now) < full);
            if failures.len() >= MAX_CLIENTS {
                let least = failures
                    .iter_mut()
                    .map(|(addr, b)| (*addr, b.level(now)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(addr, _)| addr);
                if let Some(addr) = least {
                    failures.remove(&addr);
                }
            }
        }
        let bucket = failures.entry(client).or_insert_with(|| {
            switchyard_resilience::TokenBucket::per_minute(FAILURES_PER_MINUTE, now)
        });
        let before = bucket.level(now);
        bucket.settle(0.0, 1.0, now);
        before >= 1.0 && bucket.level(now) < 1.0
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.failures.lock().map_or(0, |f| f.len())
    }
}

/// The address a request came from, as the throttle counts it: the TCP peer's (the serve loop
/// puts it in the request as `ConnectInfo<SocketAddr>`), an IPv6 one cut to its /64. Without
/// one, every request counts as one unknown address, so the throttle still holds.
pub(crate) fn client_address(request: &Request) -> IpAddr {
    let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() else {
        return IpAddr::V6(Ipv6Addr::UNSPECIFIED);
    };
    match peer.ip() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub(crate) fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_session_lasts_its_ttl_for_its_admin_key_only() {
        let sessions = MemorySessions::default();
        let t0 = Instant::now();
        let (admin, other) = ([1; 32], [2; 32]);
        let token = sessions.open_at(admin, t0);
        assert_eq!(token.len(), 64);
        assert!(sessions.check_at(&token, Some(admin), t0).is_some());
        assert!(sessions.check_at(&token, Some(other), t0).is_none());
        assert!(sessions.check_at(&token, None, t0).is_none());
        assert!(sessions.check_at("forged", Some(admin), t0).is_none());
        let late = t0 + SESSION_TTL + Duration::from_secs(1);
        assert!(sessions.check_at(&token, Some(admin), late).is_none());
        sessions.remove(&token);
        assert!(sessions.check_at(&token, Some(admin), t0).is_none());
    }

    #[test]
    fn sign_ins_beyond_the_cap_end_the_oldest_session() {
        let sessions = MemorySessions::default();
        let t0 = Instant::now();
        let first = sessions.open_at([1; 32], t0);
        for i in 1..MAX_SESSIONS {
            sessions.open_at([1; 32], t0 + Duration::from_millis(i as u64));
        }
        assert!(sessions.check_at(&first, Some([1; 32]), t0).is_some());
        let newest = sessions.open_at([1; 32], t0 + Duration::from_secs(5));
        assert!(sessions.check_at(&first, Some([1; 32]), t0).is_none());
        assert!(sessions.check_at(&newest, Some([1; 32]), t0).is_some());
        assert_eq!(sessions.open.lock().unwrap().len(), MAX_SESSIONS);
    }

    /// A session opened through the trait is checked and closed through it.
    async fn through_the_trait(sessions: Box<dyn SessionStore>) {
        let token = sessions.open([1; 32]).await.unwrap();
        let left = sessions.check(&token, Some([1; 32])).await.unwrap();
        assert!(left.is_some_and(|d| d <= SESSION_TTL));
        assert_eq!(sessions.check(&token, Some([2; 32])).await.unwrap(), None);
        sessions.close(&token).await.unwrap();
        assert_eq!(sessions.check(&token, Some([1; 32])).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_session_opened_through_the_trait_is_checked_and_closed_through_it() {
        through_the_trait(Box::new(MemorySessions::default())).await;
    }

    fn stored(dir: &tempfile::TempDir) -> StoredSessions {
        let store = switchyard_store::SqliteStore::open_in(dir.path()).unwrap();
        StoredSessions::new(Arc::new(store))
    }

    #[tokio::test]
    async fn a_stored_session_lasts_its_ttl_for_its_admin_key_and_every_replica_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let (one, two) = (stored(&dir), stored(&dir));
        let (admin, other) = ([1; 32], [2; 32]);
        let t0 = 1_700_000_000_000;
        let token = one.open_at(admin, t0).await.unwrap();
        assert_eq!(token.len(), 64);
        let left = two.check_at(&token, Some(admin), t0 + 1_000).await.unwrap();
        assert_eq!(left, Some(SESSION_TTL - Duration::from_secs(1)));
        assert_eq!(two.check_at(&token, Some(other), t0).await.unwrap(), None);
        assert_eq!(two.check_at(&token, None, t0).await.unwrap(), None);
        assert_eq!(two.check_at("forged", Some(admin), t0).await.unwrap(), None);
        let ttl = i64::try_from(SESSION_TTL.as_millis()).unwrap();
        assert_eq!(
            two.check_at(&token, Some(admin), t0 + ttl).await.unwrap(),
            None
        );
        two.close(&token).await.unwrap();
        assert_eq!(one.check_at(&token, Some(admin), t0).await.unwrap(), None);
    }

    #[tokio::test]
    async fn stored_sign_ins_beyond_the_cap_end_the_oldest_session() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = stored(&dir);
        let t0 = 1_700_000_000_000;
        let first = sessions.open_at([1; 32], t0).await.unwrap();
        for i in 1..MAX_SESSIONS {
            sessions.open_at([1; 32], t0 + i as i64).await.unwrap();
        }
        let check = |token: String| {
            let sessions = &sessions;
            async move { sessions.check_at(&token, Some([1; 32]), t0).await.unwrap() }
        };
        assert!(check(first.clone()).await.is_some());
        let newest = sessions.open_at([1; 32], t0 + 5_000).await.unwrap();
        assert!(check(first).await.is_none());
        assert!(check(newest).await.is_some());
        assert_eq!(sessions.store.session_count().unwrap(), MAX_SESSIONS as u64);
    }

    #[tokio::test]
    async fn a_stored_session_opened_through_the_trait_is_checked_and_closed_through_it() {
        let dir = tempfile::tempdir().unwrap();
        through_the_trait(Box::new(stored(&dir))).await;
    }

    #[tokio::test]
    async fn stored_sessions_are_shared_through_postgresql() {
        let pg = match switchyard_testkit::servers::PostgresServer::start() {
            Ok(pg) => pg,
            Err(e) => return e.skip("stored_sessions_are_shared_through_postgresql"),
        };
        let url = pg.url();
        let connect = |url: String| async move {
            let store = crate::tasks::spawn_blocking(move || {
                switchyard_store::PostgresStore::connect(&url)
            })
            .await
            .unwrap()
            .unwrap();
            StoredSessions::new(Arc::new(store))
        };
        let (one, two) = (connect(url.clone()).await, connect(url).await);
        let token = one.open([7; 32]).await.unwrap();
        let left = two.check(&token, Some([7; 32])).await.unwrap();
        assert!(left.is_some_and(|d| d <= SESSION_TTL && d > SESSION_TTL / 2));
        two.close(&token).await.unwrap();
        assert_eq!(one.check(&token, Some([7; 32])).await.unwrap(), None);
    }

    #[test]
    fn wrong_keys_are_throttled_per_address_in_a_bounded_table() {
        let throttle = SignInThrottle::default();
        let t0 = Instant::now();
        let (guesser, other) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        for i in 1..=FAILURES_PER_MINUTE {
            assert!(throttle.admit(guesser, t0).is_ok());
            // The failure that throttles the address says so, once.
            assert_eq!(throttle.failed(guesser, t0), i == FAILURES_PER_MINUTE);
        }
        assert!(!throttle.failed(guesser, t0), "already throttled");
        let wait = throttle.admit(guesser, t0).unwrap_err();
        // Eleven failures: one past empty, so two refills of 6 s each.
        assert_eq!(wait, Duration::from_secs(12));
        assert!(throttle.admit(other, t0).is_ok());

        // Many addresses: the table keeps its size, and forgets the least throttled first.
        for i in 0..(2 * MAX_CLIENTS as u32) {
            throttle.failed(IpAddr::from((0xc0a8_0000 + i).to_be_bytes()), t0);
        }
        assert_eq!(throttle.remembered(), MAX_CLIENTS);
        assert!(
            throttle.admit(guesser, t0).is_err(),
            "the guesser was forgotten"
        );
        // One more wrong key may be tried once the bucket refilled by one.
        assert!(throttle.admit(guesser, t0 + wait).is_ok());
    }

    #[test]
    fn ipv6_clients_count_by_their_64_block() {
        let request = |peer: &str| {
            let mut r = Request::new(axum::body::Body::empty());
            r.extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            client_address(&r)
        };
        assert_eq!(
            request("[2001:db8:1:2:aaaa::1]:5000"),
            request("[2001:db8:1:2:bbbb::2]:6000")
        );
        assert_ne!(
            request("[2001:db8:1:2::1]:5000"),
            request("[2001:db8:1:3::1]:5000")
        );
        assert_eq!(request("[::ffff:10.1.2.3]:80"), IpAddr::from([10, 1, 2, 3]));
        assert_eq!(
            client_address(&Request::new(axum::body::Body::empty())),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; switchyard_dashboard=abc; b=2"),
        );
        assert_eq!(session_token(&h), Some("abc"));
        let mut empty = HeaderMap::new();
        empty.insert(
            header::COOKIE,
            HeaderValue::from_static("switchyard_dashboard="),
        );
        assert_eq!(session_token(&empty), None);
    }
}

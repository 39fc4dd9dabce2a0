//! The state a fleet of replicas shares through Redis: a key's limits ([`RedisCounters`]),
//! the cache's shared tier ([`SharedCache`]), and the link they are made from ([`Shared`]: the connection, the
//! settings, whether Redis answers, how many replicas are alive). The control plane's change
//! feed subscribes through the same link. The names of every key and channel and the Lua
//! scripts are in [`names`], the one place the fleet's shared format is written down.
//!
//! The embedded default uses none of this: `InProcessCounters` and the cache's
//! `InProcessEntries` count and keep in the process.

pub mod cache;
pub mod connection;
pub mod counters;
pub mod names;
pub mod pubsub;

pub use cache::SharedCache;
pub use connection::{AbortOnDrop, Link, RedisSettings, Shared, SharedError, WhenDown};
pub use counters::{RedisCounters, SharedCounters};

/// What a replica's pipelines take from the fleet's Redis: the link, and the counters made
/// over it (one set per link, so that every pipeline a replica builds, one per config
/// version, settles through the same queue).
pub struct SharedState {
    pub link: std::sync::Arc<Shared>,
    pub counters: SharedCounters,
}

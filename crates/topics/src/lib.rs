//! Topic and bias guards for Switchyard: the pure logic of two guards from issue 4.
//!
//! Owns the topic filter (`filter`: allowed and denied topics declared by a few example
//! phrases, an optional description and keywords; embedding similarity to examples and
//! centroids plus whole-word keyword rules; a [`TopicVerdict`] naming the topic and the
//! reason), keyword and word matching (`keywords`), and the answer bias detector (`bias`:
//! a group lexicon × generalisation constructions pattern tier, optionally combined with a
//! hashed n-gram classifier from `switchyard-textclass`).
//!
//! Must not: embed text itself (the caller passes an [`Embedder`], any `Fn(&str) ->
//! Vec<f32>`, so this crate does not depend on candle), read clocks, do I/O other than
//! loading a bias artifact from a path the caller gives, or know HTTP or config files. It
//! decides nothing about refusal wording or actions: the gateway's guard stage does.
//!
//! ```
//! use switchyard_topics::{Thresholds, TopicFilter, TopicKind, TopicSpec};
//! # fn main() -> Result<(), switchyard_topics::TopicError> {
//! // A toy embedder; the gateway passes its static embedder.
//! let embed = |t: &str| {
//!     let card = f32::from(u8::from(t.contains("card")));
//!     vec![card, 1.0 - card]
//! };
//! let topics = vec![TopicSpec {
//!     name: "cards".into(),
//!     examples: vec!["my card was declined".into()],
//!     description: None,
//!     keywords: vec!["credit limit".into()],
//!     kind: TopicKind::Allowed,
//! }];
//! let filter = TopicFilter::new(topics, embed, Thresholds::default())?;
//! assert!(filter.classify("What is my credit limit?").allowed);
//! assert!(!filter.classify("Write me a poem").allowed);
//! # Ok(())
//! # }
//! ```

pub mod bias;
pub mod filter;
pub mod keywords;

pub use bias::{scan_patterns, BiasDetector, BiasError, BiasVerdict, GroupKind, Pattern};
pub use filter::{
    Embedder, Reason, Scoring, Thresholds, TopicError, TopicFilter, TopicKind, TopicSpec,
    TopicVerdict,
};
pub use keywords::{words, Keywords};

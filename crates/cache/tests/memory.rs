//! The cache's byte budget against the heap it really holds, counted by an instrumented
//! global allocator: what `stats().bytes` says is what the entries take, so `[cache] max_mb`
//! bounds the process's memory as the operator expects. Entries as the gateway makes them:
//! a distinct question of a few dozen words, an answer of some hundred, an embedding of the
//! static model's 256 dimensions.
#![expect(clippy::unwrap_used, reason = "test code")]

use std::time::Instant;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse};
use switchyard_cache::{Cache, CacheConfig, CacheControl, Prepared, RoutePolicy};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// The counts are process-wide: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const WORDS: &[&str] = &[
    "what",
    "is",
    "the",
    "best",
    "way",
    "to",
    "convert",
    "a",
    "number",
    "into",
    "string",
    "python",
    "rust",
    "capital",
    "of",
    "country",
    "explain",
    "how",
    "works",
    "why",
    "does",
    "my",
    "code",
    "fail",
    "when",
    "compiling",
    "with",
    "release",
    "flags",
    "enabled",
];

/// The `i`th distinct question: about 30 words.
fn question(i: usize) -> String {
    let mut q = format!("Question {i}:");
    let mut x = i as u64 * 2_654_435_761 + 1;
    for _ in 0..30 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        q.push(' ');
        q.push_str(WORDS[(x % WORDS.len() as u64) as usize]);
    }
    q
}

fn request(i: usize) -> ChatCompletionRequest {
    serde_json::from_value(serde_json::json!({
        "model": "auto",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": question(i)}
        ]
    }))
    .unwrap()
}

/// An answer of about 600 bytes, as a model writes it.
fn response(i: usize) -> ChatCompletionResponse {
    serde_json::from_value(serde_json::json!({
        "id": format!("chatcmpl-{i:024}"),
        "object": "chat.completion",
        "created": 1_767_225_600,
        "model": "small",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": format!("Answer {i}. {}", "The short version is that it depends on the input, and here is why. ".repeat(8))},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 40, "completion_tokens": 120, "total_tokens": 160}
    }))
    .unwrap()
}

fn embedding(i: usize) -> Vec<f32> {
    (0..256)
        .map(|d| ((i * 31 + d * 7) % 97) as f32 - 48.0)
        .collect()
}

fn policy() -> RoutePolicy {
    RoutePolicy {
        threshold: 0.9,
        ..RoutePolicy::default()
    }
}

/// Inserts entries `range` (each made inside the call, so the heap change is what the cache
/// keeps) and returns the net heap change.
fn fill(cache: &Cache, range: std::ops::Range<usize>) -> isize {
    let region = Region::new(GLOBAL);
    let now = Instant::now();
    for i in range {
        let req = request(i);
        let prepared = Prepared::new("tenant-a", "auto", &req);
        cache
            .insert(
                &req,
                &prepared,
                Some(embedding(i)),
                response(i),
                &policy(),
                CacheControl::default(),
                now,
            )
            .unwrap();
    }
    let change = region.change();
    // A reallocation's growth is already in `bytes_allocated` (its shrinking in
    // `bytes_deallocated`); `bytes_reallocated` only reports it again.
    change.bytes_allocated as isize - change.bytes_deallocated as isize
}

#[test]
fn the_byte_count_is_the_heap_the_entries_hold() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let cache = Cache::new(CacheConfig {
        max_bytes: 1 << 30,
        top_k: 4,
    });
    let held = fill(&cache, 0..20_000);
    let counted = cache.stats().bytes as isize;
    assert_eq!(cache.stats().entries, 20_000);
    let ratio = counted as f64 / held as f64;
    assert!(
        (0.9..=1.5).contains(&ratio),
        "counted {counted} bytes for {held} bytes held (ratio {ratio:.2})"
    );
}

#[test]
fn a_full_cache_holds_no_more_heap_than_its_budget() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Budgets that leave the tables and the index at different points of their growth.
    for max_bytes in [1 << 20, 3 << 20, 4 << 20, 6 << 20] {
        let cache = Cache::new(CacheConfig {
            max_bytes,
            top_k: 4,
        });
        // About four times what fits: most entries are evicted on the way.
        let held = fill(&cache, 0..max_bytes / 500);
        assert!(cache.stats().evicted > 0);
        assert!(
            held as f64 <= max_bytes as f64 * 1.1,
            "{held} bytes held under a budget of {max_bytes}"
        );
    }
}

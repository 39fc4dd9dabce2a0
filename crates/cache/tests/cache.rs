//! Behaviour of the cache through its public API: keys, scopes, TTL, the byte budget, the
//! guard and stream replay, with a deterministic bag-of-words embedder.
#![expect(clippy::unwrap_used, reason = "test code")]

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;
use switchyard_api::{
    ChatCompletionRequest, ChatCompletionResponse, ChatMessage, Choice, Role, Stop, Usage,
};
use switchyard_cache::{
    check_texts, replay_chunks, word_pieces, Cache, CacheConfig, CacheControl, Embedder, ExactKey,
    GuardReason, HitKind, InsertError, Lookup, Miss, NotCacheable, Prepared, RoutePolicy,
};

/// Hashes each lower-cased word into one of 64 buckets: paraphrases that share words are
/// close, and the result depends on nothing but the text.
struct Bow;

impl Embedder for Bow {
    fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0f32; 64];
        for w in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            let h = w
                .to_lowercase()
                .bytes()
                .fold(0xcbf29ce484222325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
                });
            v[(h % 64) as usize] += 1.0;
        }
        v
    }
}

fn req(user: &str) -> ChatCompletionRequest {
    serde_json::from_value(json!({
        "model": "m",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": user}
        ]
    }))
    .unwrap()
}

fn resp(text: &str) -> ChatCompletionResponse {
    ChatCompletionResponse {
        id: "chatcmpl-1".into(),
        object: "chat.completion".into(),
        created: 1,
        model: "m".into(),
        choices: vec![Choice {
            index: 0,
            message: ChatMessage::new(Role::Assistant, text),
            finish_reason: Some("stop".into()),
            logprobs: None,
            stop_reason: None,
        }],
        usage: Some(Usage::new(10, 5)),
        system_fingerprint: None,
        extra: Default::default(),
    }
}

/// One change to a request.
type Edit = Box<dyn Fn(&mut ChatCompletionRequest)>;

fn policy() -> RoutePolicy {
    RoutePolicy {
        threshold: 0.8,
        ..RoutePolicy::default()
    }
}

/// Stores `answer` for `question` under `tenant`, with its embedding.
fn put(cache: &Cache, tenant: &str, question: &str, answer: &str, now: Instant) {
    put_request(cache, tenant, &req(question), answer, now);
}

fn put_request(cache: &Cache, tenant: &str, r: &ChatCompletionRequest, answer: &str, now: Instant) {
    let p = Prepared::new(tenant, "auto", r);
    let v = p.embed(&Bow);
    cache
        .insert(
            r,
            &p,
            Some(v),
            resp(answer),
            &policy(),
            CacheControl::Normal,
            now,
        )
        .unwrap();
}

fn get(cache: &Cache, tenant: &str, question: &str, now: Instant) -> Lookup {
    get_request(cache, tenant, &req(question), now)
}

fn get_request(cache: &Cache, tenant: &str, r: &ChatCompletionRequest, now: Instant) -> Lookup {
    let p = Prepared::new(tenant, "auto", r);
    cache.lookup(r, &p, &policy(), CacheControl::Normal, &Bow, now)
}

fn answer(l: &Lookup) -> Option<String> {
    match l {
        Lookup::Hit(h) => Some(h.response.text()),
        Lookup::Miss(_) => None,
    }
}

#[test]
fn exact_key_ignores_whitespace_and_transport_fields() {
    let a = req("How do I  reset\nmy password?  ");
    let mut b = req("How do I reset my password?");
    b.stream = Some(true);
    b.user = Some("someone".into());
    assert_eq!(ExactKey::of(&a), ExactKey::of(&b));
    assert_eq!(ExactKey::of(&a).to_hex().len(), 64);
}

#[test]
fn exact_key_changes_with_every_output_parameter() {
    let base = req("hello");
    let k = ExactKey::of(&base);
    let variants: Vec<Edit> = vec![
        Box::new(|r| r.model = "other".into()),
        Box::new(|r| r.temperature = Some(0.5)),
        Box::new(|r| r.temperature = None),
        Box::new(|r| r.top_p = Some(0.9)),
        Box::new(|r| r.seed = Some(7)),
        Box::new(|r| r.max_tokens = Some(10)),
        Box::new(|r| r.max_completion_tokens = Some(10)),
        Box::new(|r| r.n = Some(2)),
        Box::new(|r| r.stop = Some(Stop::One("\n".into()))),
        Box::new(|r| r.messages[1] = ChatMessage::new(Role::User, "hello!")),
        Box::new(|r| r.messages[0] = ChatMessage::new(Role::System, "Be terse.")),
        Box::new(|r| r.messages[1].role = Role::Assistant),
        Box::new(|r| {
            *r = serde_json::from_value(json!({
                "model": "m", "temperature": 0, "messages": r.messages,
                "tools": [{"type": "function", "function": {"name": "f"}}]
            }))
            .unwrap()
        }),
        Box::new(|r| {
            *r = serde_json::from_value(json!({
                "model": "m", "temperature": 0, "messages": r.messages, "tool_choice": "required"
            }))
            .unwrap()
        }),
        Box::new(|r| {
            *r = serde_json::from_value(json!({
                "model": "m", "temperature": 0, "messages": r.messages,
                "response_format": {"type": "json_object"}
            }))
            .unwrap()
        }),
    ];
    for (i, f) in variants.iter().enumerate() {
        let mut r = base.clone();
        f(&mut r);
        assert_ne!(ExactKey::of(&r), k, "variant {i} kept the key");
    }
}

#[test]
fn exact_key_reads_tool_call_arguments_as_json() {
    let with_args = |args: &str| -> ChatCompletionRequest {
        serde_json::from_value(json!({
            "model": "m", "temperature": 0,
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_random", "type": "function",
                     "function": {"name": "weather", "arguments": args}}]}
            ]
        }))
        .unwrap()
    };
    // Same arguments in another key order and spacing: same key.
    assert_eq!(
        ExactKey::of(&with_args(r#"{"city":"Oslo","unit":"c"}"#)),
        ExactKey::of(&with_args(r#"{ "unit": "c", "city": "Oslo" }"#))
    );
    assert_ne!(
        ExactKey::of(&with_args(r#"{"city":"Oslo"}"#)),
        ExactKey::of(&with_args(r#"{"city":"Bergen"}"#))
    );
}

#[test]
fn exact_then_semantic_hit() {
    let cache = Cache::new(CacheConfig::default());
    let now = Instant::now();
    put(
        &cache,
        "t1",
        "how do I reset my password",
        "Click 'forgot'.",
        now,
    );
    let l = get(&cache, "t1", "how do I reset my password", now);
    assert!(matches!(&l, Lookup::Hit(h) if h.kind == HitKind::Exact));
    let l = get(&cache, "t1", "how do I reset my password please", now);
    match &l {
        Lookup::Hit(h) => {
            assert!(matches!(h.kind, HitKind::Semantic { similarity } if similarity > 0.8))
        }
        other => panic!("expected a semantic hit, got {other:?}"),
    }
    assert_eq!(answer(&l).as_deref(), Some("Click 'forgot'."));
}

#[test]
fn a_hit_carries_the_cached_question_for_the_verifier() {
    let cache = Cache::new(CacheConfig::default());
    let now = Instant::now();
    put(
        &cache,
        "t1",
        "how  do I reset my password",
        "Click 'forgot'.",
        now,
    );
    // Exact and semantic hits both name the stored question, whitespace-normalised.
    for query in [
        "how do I reset my password",
        "how do I reset my password please",
    ] {
        match get(&cache, "t1", query, now) {
            Lookup::Hit(h) => assert_eq!(&*h.question, "how do I reset my password"),
            other => panic!("expected a hit, got {other:?}"),
        }
    }
    // The verifier's part (it refuses a negation of that question) is tested with the
    // verifier, in examples/eval/verify.rs.
}

#[test]
fn another_tenant_route_or_system_prompt_never_hits() {
    let cache = Cache::new(CacheConfig::default());
    let now = Instant::now();
    put(
        &cache,
        "t1",
        "how do I reset my password",
        "secret answer",
        now,
    );
    assert!(matches!(
        get(&cache, "t2", "how do I reset my password", now),
        Lookup::Miss(Miss::Empty)
    ));
    let r = req("how do I reset my password");
    let p = Prepared::new("t1", "other-route", &r);
    assert!(matches!(
        cache.lookup(&r, &p, &policy(), CacheControl::Normal, &Bow, now),
        Lookup::Miss(Miss::Empty)
    ));
    let mut r2 = r.clone();
    r2.messages[0] = ChatMessage::new(Role::System, "You are a pirate.");
    let p2 = Prepared::new("t1", "auto", &r2);
    assert!(matches!(
        cache.lookup(&r2, &p2, &policy(), CacheControl::Normal, &Bow, now),
        Lookup::Miss(Miss::Empty)
    ));
}

#[test]
fn entries_expire_after_ttl() {
    let cache = Cache::new(CacheConfig::default());
    let t0 = Instant::now();
    put(&cache, "t1", "what is the capital of France", "Paris", t0);
    let ttl = policy().ttl;
    assert!(answer(&get(
        &cache,
        "t1",
        "what is the capital of France",
        t0 + ttl - Duration::from_secs(1)
    ))
    .is_some());
    assert!(answer(&get(
        &cache,
        "t1",
        "what is the capital of France",
        t0 + ttl
    ))
    .is_none());
    assert_eq!(cache.stats().entries, 0, "the expired entry was removed");
    put(&cache, "t1", "what is the capital of Spain", "Madrid", t0);
    assert_eq!(cache.purge_expired(t0 + ttl), 1);
    assert_eq!(cache.stats().bytes, 0);
}

#[test]
fn byte_budget_evicts_least_recently_used() {
    let one = {
        let c = Cache::new(CacheConfig::default());
        put(&c, "t", "question zero", &"x".repeat(1000), Instant::now());
        c.stats().bytes
    };
    let cache = Cache::new(CacheConfig {
        max_bytes: one * 3 + one / 2,
        top_k: 4,
    });
    let now = Instant::now();
    put(&cache, "t", "question alpha", &"a".repeat(1000), now);
    put(&cache, "t", "question bravo", &"b".repeat(1000), now);
    put(&cache, "t", "question charlie", &"c".repeat(1000), now);
    // Use alpha, so bravo is now the least recently used.
    assert!(answer(&get(&cache, "t", "question alpha", now)).is_some());
    put(&cache, "t", "question delta", &"d".repeat(1000), now);
    let s = cache.stats();
    assert_eq!((s.entries, s.evicted), (3, 1));
    assert!(s.bytes <= one * 3 + one / 2);
    let r = req("question bravo");
    let p = Prepared::new("t", "auto", &r);
    assert!(cache.lookup_exact(&p, now).is_none(), "bravo was evicted");
    for q in ["question alpha", "question charlie", "question delta"] {
        let r = req(q);
        assert!(
            cache
                .lookup_exact(&Prepared::new("t", "auto", &r), now)
                .is_some(),
            "{q}"
        );
    }
    // An entry bigger than the budget is refused, not stored after evicting everything.
    let r = req("huge");
    let p = Prepared::new("t", "auto", &r);
    let err = cache
        .insert(
            &r,
            &p,
            None,
            resp(&"z".repeat(one * 4)),
            &policy(),
            CacheControl::Normal,
            now,
        )
        .unwrap_err();
    assert!(matches!(err, InsertError::TooLarge { .. }));
    assert_eq!(cache.stats().entries, 3);
}

#[test]
fn guard_refuses_opposites_numbers_and_entities() {
    let cache = Cache::new(CacheConfig::default());
    let now = Instant::now();
    put(
        &cache,
        "t",
        "how do I enable dark mode in settings",
        "enable it",
        now,
    );
    let l = get(&cache, "t", "how do I disable dark mode in settings", now);
    match l {
        Lookup::Miss(Miss::Guarded {
            reason: GuardReason::Polarity { .. },
            ..
        }) => {}
        other => panic!("enable served for disable: {other:?}"),
    }
    // The same test with the guard off shows the threshold alone would have served it.
    let r = req("how do I disable dark mode in settings");
    let p = Prepared::new("t", "auto", &r);
    let off = RoutePolicy {
        guard: false,
        ..policy()
    };
    assert!(matches!(
        cache.lookup(&r, &p, &off, CacheControl::Normal, &Bow, now),
        Lookup::Hit(_)
    ));

    for (a, b) in [
        ("how do I enable X", "how do I disable X"),
        ("can I run it on Windows", "can't I run it on Windows"),
        ("is it safe to eat eggs", "is it not safe to eat eggs"),
        ("things to do with kids", "things to do without kids"),
        ("what is 12 times 4", "what is 12 times 5"),
        ("flights to Paris in 2 days", "flights to Paris in two days"),
        (
            "how do I install Python on Ubuntu",
            "how do I install Python on Fedora",
        ),
        (
            "what does snake_case mean in my_var",
            "what does snake_case mean in other_var",
        ),
        (
            "Translate 'good morning' into Spanish.",
            "Translate 'good night' into Spanish.",
        ),
        (
            "how long should I boil rice",
            "how long should I boil pasta",
        ),
    ] {
        let got = check_texts(a, b);
        let same = a.contains("2 days");
        assert_eq!(got.is_ok(), same, "{a} / {b}: {got:?}");
    }
    // Paraphrases pass.
    for (a, b) in [
        (
            "How do I learn Python quickly?",
            "What is the fastest way to learn Python?",
        ),
        (
            "What are a wolverine's predators?",
            "Do wolverines have any predators?",
        ),
        ("How do I turn on dark mode", "How can I enable dark mode"),
        (
            "How do I reset my password?",
            "How can I reset my password?",
        ),
        (
            "how do I reset my password",
            "how do I resetting my password",
        ),
        (
            "Please translate this into Spanish",
            "Kindly translate this into Spanish",
        ),
    ] {
        assert_eq!(check_texts(a, b), Ok(()), "{a} / {b}");
    }
}

#[test]
fn policy_controls_lookup_and_store() {
    let cache = Cache::new(CacheConfig::default());
    let now = Instant::now();
    let mut hot = req("tell me a story");
    hot.temperature = Some(0.7);
    let p = Prepared::new("t", "auto", &hot);
    assert_eq!(
        cache.insert(
            &hot,
            &p,
            None,
            resp("once"),
            &policy(),
            CacheControl::Normal,
            now
        ),
        Err(InsertError::NotCacheable(NotCacheable::Temperature))
    );
    let allow = RoutePolicy {
        allow_temperature: true,
        ..policy()
    };
    cache
        .insert(
            &hot,
            &p,
            None,
            resp("once"),
            &allow,
            CacheControl::Normal,
            now,
        )
        .unwrap();
    assert!(matches!(
        cache.lookup(&hot, &p, &policy(), CacheControl::Normal, &Bow, now),
        Lookup::Miss(Miss::NotCacheable(NotCacheable::Temperature))
    ));
    assert!(matches!(
        cache.lookup(&hot, &p, &allow, CacheControl::Bypass, &Bow, now),
        Lookup::Miss(Miss::Control(CacheControl::Bypass))
    ));
    // Refresh does not look up, but replaces the stored answer.
    assert!(matches!(
        cache.lookup(&hot, &p, &allow, CacheControl::Refresh, &Bow, now),
        Lookup::Miss(Miss::Control(CacheControl::Refresh))
    ));
    cache
        .insert(
            &hot,
            &p,
            None,
            resp("twice"),
            &allow,
            CacheControl::Refresh,
            now,
        )
        .unwrap();
    assert_eq!(cache.stats().entries, 1);
    let l = cache.lookup(&hot, &p, &allow, CacheControl::Normal, &Bow, now);
    assert_eq!(answer(&l).as_deref(), Some("twice"));
    // Bypass stores nothing; a filtered answer is never stored.
    assert!(cache
        .insert(&hot, &p, None, resp("x"), &allow, CacheControl::Bypass, now)
        .is_err());
    let mut bad = resp("partial");
    bad.choices[0].finish_reason = Some("content_filter".into());
    assert_eq!(
        cache.insert(&hot, &p, None, bad, &allow, CacheControl::Normal, now),
        Err(InsertError::NotCacheable(NotCacheable::Unfinished))
    );
    assert_eq!(
        CacheControl::parse(" Refresh "),
        Some(CacheControl::Refresh)
    );
    assert_eq!(CacheControl::parse("sometimes"), None);
}

#[test]
fn conversation_context_changes_the_embedding() {
    let follow = |topic: &str| -> ChatCompletionRequest {
        serde_json::from_value(json!({
            "model": "m", "temperature": 0,
            "messages": [
                {"role": "user", "content": format!("tell me about {topic}")},
                {"role": "assistant", "content": "sure"},
                {"role": "user", "content": "how old is it"}
            ]
        }))
        .unwrap()
    };
    let a = Prepared::new("t", "auto", &follow("the Eiffel tower"));
    let b = Prepared::new("t", "auto", &follow("the Colosseum"));
    assert_eq!(a.question, b.question);
    assert_ne!(a.embed(&Bow), b.embed(&Bow));
}

#[test]
fn stream_replay_reassembles_the_response() {
    let text = "  Hello there,\nworld!  Two  spaces.";
    let mut r = resp(text);
    r.choices[0].message.tool_calls = Some(vec![serde_json::from_value(json!({
        "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}
    }))
    .unwrap()]);
    let chunks = replay_chunks(&r, true);
    let content: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|c| c.delta.content.clone())
        .collect();
    assert_eq!(content, text);
    assert_eq!(chunks[0].choices[0].delta.role, Some(Role::Assistant));
    assert!(chunks.len() > 5, "split into word pieces");
    let finish: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.finish_reason.clone())
        .collect();
    assert_eq!(finish, vec!["stop".to_owned()]);
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(last.usage, r.usage);
    let calls: Vec<_> = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.tool_calls.clone())
        .collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0][0].function.as_ref().unwrap().arguments.as_deref(),
        Some("{\"a\":1}")
    );
    assert!(chunks
        .iter()
        .all(|c| c.object == "chat.completion.chunk" && c.id == r.id));
}

proptest! {
    #[test]
    fn word_pieces_concatenate_to_the_text(text in "\\PC{0,80}") {
        let pieces = word_pieces(&text);
        prop_assert_eq!(pieces.concat(), text.clone());
        prop_assert!(pieces.iter().all(|p| !p.is_empty()));
    }

    #[test]
    fn guard_passes_a_text_against_itself_and_is_symmetric(
        a in "[A-Za-z0-9 ,.?'_]{0,60}", b in "[A-Za-z0-9 ,.?'_]{0,60}"
    ) {
        prop_assert_eq!(check_texts(&a, &a), Ok(()));
        prop_assert_eq!(check_texts(&a, &b).is_ok(), check_texts(&b, &a).is_ok());
    }

    #[test]
    fn exact_key_is_whitespace_insensitive(words in proptest::collection::vec("[a-z]{1,8}", 1..8), gaps in proptest::collection::vec("[ \\t\\n]{1,3}", 8)) {
        let tight = words.join(" ");
        let loose: String = words.iter().zip(&gaps).map(|(w, g)| format!("{g}{w}")).collect();
        prop_assert_eq!(ExactKey::of(&req(&tight)), ExactKey::of(&req(&loose)));
    }
}

// The shape of a request: every field that changes what kind of answer comes back must keep
// two requests apart in both tiers, whatever their words; only the words are compared by
// embedding.

/// Top-level fields that shape the answer, each with two different values. Unknown fields
/// (`x_vendor_knob`, `verbosity`) pass through to the provider, so they shape it too.
fn shaping_fields() -> Vec<(&'static str, serde_json::Value, serde_json::Value)> {
    let tool = |schema: serde_json::Value| json!([{"type": "function", "function": {"name": "get_weather", "parameters": schema}}]);
    vec![
        (
            "tools",
            tool(json!({"type": "object", "properties": {"city": {"type": "string"}}})),
            tool(json!({"type": "object", "properties": {"zip": {"type": "string"}}})),
        ),
        (
            "tool_choice",
            json!("required"),
            json!({"type": "function", "function": {"name": "get_weather"}}),
        ),
        (
            "response_format",
            json!({"type": "json_object"}),
            json!({"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}),
        ),
        (
            "functions",
            json!([{"name": "f", "parameters": {}}]),
            json!([{"name": "g"}]),
        ),
        ("function_call", json!("auto"), json!({"name": "f"})),
        ("stop", json!("\n"), json!(["END"])),
        ("max_tokens", json!(10), json!(20)),
        ("max_completion_tokens", json!(10), json!(20)),
        ("logit_bias", json!({"50256": -100}), json!({"50256": 100})),
        ("seed", json!(1), json!(2)),
        ("n", json!(1), json!(2)),
        ("modalities", json!(["text"]), json!(["text", "audio"])),
        (
            "audio",
            json!({"voice": "alloy", "format": "wav"}),
            json!({"voice": "echo", "format": "wav"}),
        ),
        ("logprobs", json!(true), json!(false)),
        ("top_logprobs", json!(2), json!(5)),
        (
            "prediction",
            json!({"type": "content", "content": "a"}),
            json!({"type": "content", "content": "b"}),
        ),
        ("reasoning_effort", json!("low"), json!("high")),
        ("parallel_tool_calls", json!(true), json!(false)),
        ("presence_penalty", json!(0.5), json!(1.0)),
        ("frequency_penalty", json!(0.5), json!(1.0)),
        ("temperature", json!(0.2), json!(0.7)),
        ("top_p", json!(0.5), json!(0.9)),
        ("verbosity", json!("low"), json!("high")),
        ("x_vendor_knob", json!(1), json!(2)),
    ]
}

/// Fields that do not change the answer, with a value each.
fn neutral_fields() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("stream", json!(true)),
        ("stream_options", json!({"include_usage": true})),
        ("user", json!("end-user-42")),
        ("metadata", json!({"team": "a"})),
        ("store", json!(true)),
        ("service_tier", json!("flex")),
        ("safety_identifier", json!("u-hash")),
        ("prompt_cache_key", json!("k1")),
    ]
}

fn request_with(user: &str, fields: &[(&str, serde_json::Value)]) -> ChatCompletionRequest {
    let mut body = json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": user}
        ]
    });
    for (k, v) in fields {
        body[*k] = v.clone();
    }
    serde_json::from_value(body).unwrap()
}

proptest! {
    /// Two requests that differ in any one shaping field (set, unset, or another value) never
    /// share a scope or an exact key, whatever else they carry; fields that do not shape the
    /// answer change neither.
    #[test]
    fn shaping_fields_separate_scopes_and_neutral_ones_do_not(
        present in proptest::collection::vec(any::<bool>(), 24),
        changed in 0usize..24,
        neutral in proptest::collection::vec(any::<bool>(), 8),
        words in "[a-z]{1,8}( [a-z]{1,8}){0,5}",
    ) {
        let fields = shaping_fields();
        prop_assert_eq!(fields.len(), present.len());
        let base: Vec<(&str, serde_json::Value)> = fields
            .iter()
            .zip(&present)
            .filter(|(_, on)| **on)
            .map(|((k, a, _), _)| (*k, a.clone()))
            .collect();
        let (name, a, b) = &fields[changed];
        let mut other: Vec<(&str, serde_json::Value)> =
            base.iter().filter(|(k, _)| k != name).cloned().collect();
        if !present[changed] {
            other.push((name, a.clone()));
        } else if neutral[0] {
            other.push((name, b.clone()));
        }
        let (x, y) = (request_with(&words, &base), request_with(&words, &other));
        let (px, py) = (Prepared::new("t", "auto", &x), Prepared::new("t", "auto", &y));
        prop_assert_ne!(&px.scope, &py.scope, "{} did not change the scope", name);
        prop_assert_ne!(px.key, py.key, "{} did not change the key", name);

        let mut with_neutral = base.clone();
        for ((k, v), on) in neutral_fields().into_iter().zip(&neutral) {
            if *on {
                with_neutral.push((k, v));
            }
        }
        let z = request_with(&words, &with_neutral);
        let pz = Prepared::new("t", "auto", &z);
        prop_assert_eq!(&px.scope, &pz.scope);
        prop_assert_eq!(px.key, pz.key);
        // Other words, same shape: the same scope (compared by embedding), another key.
        let w = request_with(&format!("{words} please"), &base);
        let pw = Prepared::new("t", "auto", &w);
        prop_assert_eq!(&px.scope, &pw.scope);
        prop_assert_ne!(px.key, pw.key);
    }
}

/// One change to a request's JSON.
type JsonEdit = Box<dyn Fn(&mut serde_json::Value)>;

/// A conversation about the weather, with a tool call and its result, as JSON to edit.
fn tool_conversation() -> serde_json::Value {
    json!({
        "model": "m", "temperature": 0,
        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is the weather in Oslo?"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 18}"},
            {"role": "user", "content": "And should I take an umbrella?"}
        ]
    })
}

#[test]
fn the_conversations_structure_and_data_are_matched_exactly() {
    let base: ChatCompletionRequest = serde_json::from_value(tool_conversation()).unwrap();
    let p = Prepared::new("t", "auto", &base);
    let edits: Vec<(&str, JsonEdit)> = vec![
        (
            "tool result",
            Box::new(|b| b["messages"][3]["content"] = json!("{\"temp_c\": -3}")),
        ),
        (
            "tool call arguments",
            Box::new(|b| {
                b["messages"][2]["tool_calls"][0]["function"]["arguments"] =
                    json!("{\"city\":\"Bergen\"}")
            }),
        ),
        (
            "tool call name",
            Box::new(|b| {
                b["messages"][2]["tool_calls"][0]["function"]["name"] = json!("get_forecast")
            }),
        ),
        (
            "which call a result answers",
            Box::new(|b| b["messages"][3]["tool_call_id"] = json!("call_2")),
        ),
        (
            "image",
            Box::new(|b| {
                b["messages"][1]["content"][1]["image_url"]["url"] = json!("https://x.test/b.png")
            }),
        ),
        (
            "image removed",
            Box::new(|b| {
                b["messages"][1]["content"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "a name",
            Box::new(|b| b["messages"][4]["name"] = json!("alice")),
        ),
        (
            "a message-level extra",
            Box::new(|b| b["messages"][4]["x_tag"] = json!("v")),
        ),
        (
            "a part-level extra",
            Box::new(|b| {
                b["messages"][1]["content"][0]["cache_control"] = json!({"type": "ephemeral"})
            }),
        ),
        (
            "the role sequence",
            Box::new(|b| {
                b["messages"]
                    .as_array_mut()
                    .unwrap()
                    .insert(4, json!({"role": "assistant", "content": "It is 18C."}))
            }),
        ),
        (
            "the system prompt",
            Box::new(|b| b["messages"][0]["content"] = json!("You are terse.")),
        ),
    ];
    for (what, edit) in &edits {
        let mut body = tool_conversation();
        edit(&mut body);
        let r: ChatCompletionRequest = serde_json::from_value(body).unwrap();
        let q = Prepared::new("t", "auto", &r);
        assert_ne!(q.scope, p.scope, "{what} kept the scope");
        assert_ne!(q.key, p.key, "{what} kept the key");
    }
    // Tool call ids are handles the provider made up: the same structure with other ids is
    // the same request.
    let mut body = tool_conversation();
    body["messages"][2]["tool_calls"][0]["id"] = json!("call_zz9");
    body["messages"][3]["tool_call_id"] = json!("call_zz9");
    let r: ChatCompletionRequest = serde_json::from_value(body).unwrap();
    let q = Prepared::new("t", "auto", &r);
    assert_eq!((q.scope, q.key), (p.scope.clone(), p.key));
    // Only the words of user and assistant turns are compared by embedding.
    assert_eq!(q.question, "And should I take an umbrella?");
    assert!(!q.context.contains("temp_c"), "{}", q.context);
}

#[test]
fn a_semantic_hit_never_changes_the_kind_of_answer() {
    let cache = Cache::new(CacheConfig::default());
    let now = Instant::now();
    let forced = vec![
        (
            "tools",
            json!([{"type": "function", "function": {"name": "reset_password"}}]),
        ),
        ("tool_choice", json!("required")),
    ];
    let schema = vec![(
        "response_format",
        json!({"type": "json_schema", "json_schema": {"name": "steps", "schema": {"type": "object"}}}),
    )];
    let with = |fields: &[(&str, serde_json::Value)], question: &str| {
        let mut r = request_with(question, fields);
        r.temperature = Some(0.0);
        r
    };
    let store = |fields: &[(&str, serde_json::Value)], question: &str, answer: &str| {
        put_request(&cache, "t", &with(fields, question), answer, now);
    };
    let find = |fields: &[(&str, serde_json::Value)], question: &str| {
        answer(&get_request(&cache, "t", &with(fields, question), now))
    };
    store(&[], "how do I reset my password", "Click 'forgot'.");
    let paraphrase = "how do I reset my password please";
    assert_eq!(find(&[], paraphrase).as_deref(), Some("Click 'forgot'."));
    assert_eq!(
        find(&forced, paraphrase),
        None,
        "plain text for a forced tool call"
    );
    assert_eq!(
        find(&schema, paraphrase),
        None,
        "plain text for a JSON schema"
    );
    // And the other way: a tool-calling answer is not served to a request without tools.
    store(
        &forced,
        "how can I change my email address",
        "(a tool call)",
    );
    assert_eq!(find(&[], "how can I change my email address please"), None);
    assert_eq!(
        find(&forced, "how can I change my email address please").as_deref(),
        Some("(a tool call)")
    );
}

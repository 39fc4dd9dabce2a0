//! MiniLM and the distilled static model on the real files. They come from
//! `scripts/fetch-models.sh`, which `scripts/test.sh` runs first; without them these tests
//! fail and say so.
#![expect(clippy::panic, reason = "test code")]

use std::path::PathBuf;
use std::sync::OnceLock;

use switchyard_embed::{EmbedError, MiniLm, StaticEmbedder, MINILM_DIR, STATIC_DIR};
use switchyard_textclass::cosine;

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn minilm() -> &'static MiniLm {
    static MODEL: OnceLock<MiniLm> = OnceLock::new();
    MODEL.get_or_init(|| match MiniLm::load(repo_path(MINILM_DIR)) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    })
}

const SENTENCES: [&str; 4] = [
    "How do I reset my password?",
    "What is the procedure to change my login password?",
    "The weather in Lisbon is sunny today.",
    "A man is playing a guitar on the stage.",
];

#[test]
fn vectors_are_unit_length_and_384_wide() {
    let vs = minilm().embed(&SENTENCES).unwrap();
    assert_eq!(vs.len(), 4);
    for v in vs {
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
}

/// Pinned from `tests/reference/minilm_numpy.py`: BERT written out in numpy (float64) from the
/// Hugging Face equations, independent of candle, on the same files. sentence-transformers
/// itself needs torch, which the project does not install.
#[test]
fn matches_an_independent_reference_implementation() {
    let vs = minilm().embed(&SENTENCES).unwrap();
    let first4: [[f32; 4]; 4] = [
        [0.006_903_1, -0.063_023_4, -0.072_044, -0.032_496_1],
        [0.054_077_9, 0.017_469_9, -0.081_672_5, -0.118_437_8],
        [0.007_984, 0.098_864_9, 0.095_909_8, 0.084_771_1],
        [0.020_047_3, 0.036_182_9, -0.020_583_9, -0.079_203_2],
    ];
    for (v, want) in vs.iter().zip(first4) {
        for (got, want) in v.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }
    let pairs = [
        ((0, 1), 0.754_439_1),
        ((0, 2), -0.038_260_3),
        ((2, 3), -0.012_343_3),
    ];
    for ((i, j), want) in pairs {
        let got = cosine(&vs[i], &vs[j]);
        assert!(
            (got - want).abs() < 1e-6,
            "cos({i},{j}) = {got}, want {want}"
        );
    }
}

#[test]
fn a_paraphrase_is_closer_than_an_unrelated_sentence() {
    let m = minilm();
    let q = m.embed_one("How can I cancel my subscription?").unwrap();
    let para = m
        .embed_one("What are the steps to end my subscription plan?")
        .unwrap();
    let other = m
        .embed_one("Recommend a good recipe for banana bread.")
        .unwrap();
    assert!(cosine(&q, &para) > cosine(&q, &other) + 0.3);
}

#[test]
fn batching_and_padding_do_not_change_vectors() {
    let m = minilm();
    let texts = [
        "short",
        "a somewhat longer sentence that needs padding partners in its batch",
        "How do I reset my password?",
    ];
    let batch = m.embed(&texts).unwrap();
    for (t, b) in texts.iter().zip(&batch) {
        let alone = m.embed_one(t).unwrap();
        let worst = alone
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{t:?} differs by {worst}");
    }
}

#[test]
fn tokenizer_pads_to_the_batch_and_truncates_at_256_not_128() {
    let tok = minilm().tokenizer();
    let short = tok.encode("hello world", true).unwrap();
    assert_eq!(short.len(), 4, "no padding to 128 for a lone input");
    let long = "word ".repeat(400);
    assert_eq!(tok.encode(long.as_str(), true).unwrap().len(), 256);
    // A 200-token input is embedded whole: its vector differs from its first 120 tokens'.
    let words: Vec<String> = (0..200).map(|i| format!("w{}", i % 37)).collect();
    let head = words[..60].join(" ");
    let whole = words.join(" ") + " astronomy telescopes galaxies";
    let (a, b) = (
        minilm().embed_one(&head).unwrap(),
        minilm().embed_one(&whole).unwrap(),
    );
    assert!(cosine(&a, &b) < 0.999);
}

#[test]
fn a_missing_folder_says_how_to_get_the_files() {
    let err = MiniLm::load("/nonexistent/models/all-MiniLM-L6-v2").unwrap_err();
    assert!(matches!(err, EmbedError::ModelMissing { .. }));
    let msg = err.to_string();
    assert!(msg.contains("scripts/fetch-models.sh"), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");
}

#[test]
fn the_distilled_static_model_ranks_a_paraphrase_first() {
    let m = StaticEmbedder::load(repo_path(STATIC_DIR)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.dim(), 256);
    let q = m.embed("How can I cancel my subscription?").unwrap();
    let para = m.embed("cancel subscription plan steps").unwrap();
    let other = m
        .embed("Recommend a good recipe for banana bread.")
        .unwrap();
    let norm: f32 = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    assert!(cosine(&q, &para) > cosine(&q, &other) + 0.2);
}

/// The static model's ASCII fast tokenizer gives the full tokenizer's ids on every text of
/// the semantic-cache data and on a few awkward strings. Without the data (see
/// `switchyard_testkit::data`) it checks the awkward strings only, and says so.
#[test]
fn the_fast_tokenizer_agrees_with_the_full_one() {
    let m = StaticEmbedder::load(repo_path(STATIC_DIR)).unwrap_or_else(|e| panic!("{e}"));
    let data = switchyard_testkit::data::path("semantic_cache/semantic_cache.dev.jsonl");
    let data = match switchyard_testkit::data::require(data) {
        Ok(path) => std::fs::read_to_string(path).unwrap(),
        Err(missing) => {
            eprintln!("skipping the data's texts, checking the awkward strings only: {missing}");
            String::new()
        }
    };
    let mut texts: Vec<String> = vec![
        "Hello, World! It's 3.14 -- isn't it?".into(),
        "tabs\tand\nnewlines\r\n and   spaces".into(),
        "pneumonoultramicroscopicsilicovolcanoconiosis xyzzyqwv".into(),
        "x".repeat(150),
        "naïve café".into(),
        "see [SEP] here".into(),
    ];
    for line in data.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        texts.push(v["text_a"].as_str().unwrap().to_owned());
        texts.push(v["text_b"].as_str().unwrap().to_owned());
    }
    for t in &texts {
        assert_eq!(
            m.token_ids(t).unwrap(),
            m.token_ids_reference(t).unwrap(),
            "{t:?}"
        );
    }
}

/// The token vectors' pooled vector is the sentence vector `embed` gives, and there is one
/// unit-length vector per token between `[CLS]` and `[SEP]`, whatever shares the batch.
#[test]
fn token_vectors_pool_to_the_sentence_vector() {
    let m = minilm();
    let tv = m.tokens(&SENTENCES).unwrap();
    let pooled = m.embed(&SENTENCES).unwrap();
    for ((t, p), text) in tv.iter().zip(&pooled).zip(SENTENCES) {
        assert!(cosine(&t.pooled, p) > 0.9999, "{text}");
        let ids = m.tokenizer().encode(text, false).unwrap();
        assert_eq!(t.ids, ids.get_ids(), "{text}");
        assert_eq!(t.tokens.len(), t.ids.len());
        for v in &t.tokens {
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{text}: norm {norm}");
        }
    }
    let alone = m.tokens(&[SENTENCES[0]]).unwrap();
    assert!(cosine(&alone[0].tokens[2], &tv[0].tokens[2]) > 0.9999);
}

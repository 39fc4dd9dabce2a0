//! The simulator's `logprobs`: made up, cheap and plausible, so clients that read them can be
//! tried against it. Each piece (the simulator's token) gets a probability drawn from a
//! stable hash of the piece and its position (0.35 to 0.99, mostly high); `top_logprobs` lists
//! the piece itself first, then common words sharing what probability is left, each half the
//! one before, so a position's probabilities never add up to more than one.

use serde_json::{json, Value};

use super::plan::{Output, Plan};
use super::text::{Pieces, StableHasher};

/// The runners-up offered in `top_logprobs` (OpenAI allows up to 20 in all).
const ALTERNATIVES: [&str; 20] = [
    " the", " a", " and", " of", " to", " in", " is", " it", " that", " for", " on", " with",
    " as", " was", " this", " be", " by", " at", " or", " an",
];

/// The `logprobs` of pieces `from..to` of a plan, with `top` entries in each `top_logprobs`.
/// A tool call has none (`content` null), as at OpenAI.
pub(crate) fn of(plan: &Plan, from: usize, to: usize, top: u32) -> Value {
    let Output::Text(pieces) = &plan.output else {
        return json!({"content": null, "refusal": null});
    };
    json!({"content": entries(pieces, from, to, top), "refusal": null})
}

fn entries(pieces: &Pieces, from: usize, to: usize, top: u32) -> Vec<Value> {
    (from..to.min(pieces.len()))
        .map(|k| entry(pieces.span(k, k + 1), k, top))
        .collect()
}

fn entry(token: &str, position: usize, top: u32) -> Value {
    let h = StableHasher::new(position as u64).str(token).finish();
    let p = 0.35 + 0.64 * ((h % 10_000) as f64 / 10_000.0).sqrt();
    let mut runners_up = Vec::new();
    let mut left = 1.0 - p;
    let start = (h % ALTERNATIVES.len() as u64) as usize;
    let others = (0..ALTERNATIVES.len())
        .map(|j| ALTERNATIVES[(start + j) % ALTERNATIVES.len()])
        .filter(|alt| *alt != token);
    for alt in others.take(top.saturating_sub(1) as usize) {
        left /= 2.0;
        runners_up.push(item(alt, left.ln()));
    }
    let mut top_logprobs = Vec::with_capacity(runners_up.len() + 1);
    if top > 0 {
        top_logprobs.push(item(token, p.ln()));
    }
    top_logprobs.append(&mut runners_up);
    let mut e = item(token, p.ln());
    e["top_logprobs"] = Value::Array(top_logprobs);
    e
}

fn item(token: &str, logprob: f64) -> Value {
    json!({"token": token, "logprob": logprob, "bytes": token.as_bytes()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_piece_gets_a_plausible_entry_and_its_runners_up() {
        let pieces = Pieces::words("Paris is the capital.".to_owned());
        let all = entries(&pieces, 0, usize::MAX, 3);
        let tokens: Vec<&str> = all.iter().map(|e| e["token"].as_str().unwrap()).collect();
        assert_eq!(tokens, ["Paris", " is", " the", " capital."]);
        for e in &all {
            let top = e["top_logprobs"].as_array().unwrap();
            assert_eq!(top.len(), 3);
            assert_eq!(top[0]["token"], e["token"]);
            let total: f64 = top
                .iter()
                .map(|t| t["logprob"].as_f64().unwrap().exp())
                .sum();
            assert!(total <= 1.0, "{e}");
            assert!(top[1..].iter().all(|t| t["token"] != e["token"]));
        }
        assert_eq!(all, entries(&pieces, 0, 4, 3), "the same every time");
        assert_eq!(entries(&pieces, 1, 2, 0)[0]["top_logprobs"], json!([]));
    }
}

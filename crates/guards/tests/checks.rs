//! The output checks and the stream's window, case by case: what is released, what stops a
//! stream, what a whole answer's review says. Compliance rules need no model, so every case
//! here runs on rules alone.
#![expect(clippy::unwrap_used, reason = "test code")]

use std::sync::Arc;

use regex::Regex;
use switchyard_api::{ChatCompletionRequest, ChatCompletionResponse};
use switchyard_control::{ComplianceGuardSpec, OutputAction};
use switchyard_guards::output::{json_problem, sentence_cut};
use switchyard_guards::{GuardVerdict, Outcome, OutputCheck, OutputChecks, OutputWindow};

fn request(json: serde_json::Value) -> ChatCompletionRequest {
    serde_json::from_value(json).unwrap()
}

fn ask(question: &str) -> ChatCompletionRequest {
    request(serde_json::json!({"model": "m", "messages": [{"role": "user", "content": question}]}))
}

fn rules(
    action: OutputAction,
    forbidden: &[&str],
    disclaimers: &[(&str, &str)],
    max_chars: Option<usize>,
    json: bool,
) -> Arc<OutputChecks> {
    let rules = ComplianceGuardSpec {
        action,
        forbidden: forbidden.iter().map(|f| Regex::new(f).unwrap()).collect(),
        disclaimers: disclaimers
            .iter()
            .map(|(w, d)| (Regex::new(w).unwrap(), (*d).to_owned()))
            .collect(),
        max_chars,
        json,
    };
    Arc::new(OutputChecks::new(vec![OutputCheck::Compliance(rules)]).unwrap())
}

fn answer(text: &str) -> ChatCompletionResponse {
    serde_json::from_value(serde_json::json!({
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}]
    }))
    .unwrap()
}

#[test]
fn a_sentence_ends_at_punctuation_before_whitespace_or_at_a_newline() {
    let cases: &[(&str, Option<usize>)] = &[
        ("", None),
        ("no end yet", None),
        ("One. Two", Some(4)),
        ("One. Two. Thr", Some(9)),
        ("3.14 is pi", None),
        ("Really?! ok", Some(8)),
        ("line\nnext", Some(5)),
        ("ends with a dot.", None),
        ("Done. ", Some(5)),
    ];
    for (text, cut) in cases {
        assert_eq!(sentence_cut(text), *cut, "{text:?}");
    }
}

#[test]
fn json_is_checked_only_when_the_request_asks_for_it() {
    let plain = ask("q");
    let object = request(serde_json::json!({"model": "m", "messages": [],
        "response_format": {"type": "json_object"}}));
    let schema = request(serde_json::json!({"model": "m", "messages": [],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s",
            "schema": {"type": "object", "required": ["name", "age"]}}}}));
    let cases: &[(&ChatCompletionRequest, &str, Option<&str>)] = &[
        (&plain, "not json at all", None),
        (&object, "{\"a\": 1}", None),
        (&object, "  {\"a\": 1}\n", None),
        (
            &object,
            "Sure! {\"a\": 1}",
            Some("not JSON, but response_format asks for JSON"),
        ),
        (&schema, "{\"name\": \"x\", \"age\": 3}", None),
        (
            &schema,
            "{\"name\": \"x\"}",
            Some("JSON without the required field `age`"),
        ),
    ];
    for (req, text, problem) in cases {
        assert_eq!(json_problem(req, text).as_deref(), *problem, "{text:?}");
    }
}

/// Pushes `pieces` through a window; returns what was released, and the stopping verdict.
fn stream(
    checks: &Arc<OutputChecks>,
    question: &str,
    pieces: &[&str],
) -> (String, Option<GuardVerdict>, Vec<GuardVerdict>) {
    let mut window = OutputWindow::over(checks, &ask(question));
    let mut sent = String::new();
    for piece in pieces {
        match window.push(piece) {
            Ok(out) => sent.push_str(&out),
            Err(stop) => return (sent, Some(stop), window.verdicts.clone()),
        }
    }
    match window.finish() {
        Ok(out) => sent.push_str(&out),
        Err(stop) => return (sent, Some(stop), window.verdicts.clone()),
    }
    (sent, None, window.verdicts.clone())
}

#[test]
fn a_stream_is_released_sentence_by_sentence_and_stopped_before_a_forbidden_one() {
    let blocking = rules(OutputAction::Block, &["(?i)secret plan"], &[], None, false);
    let cases: &[(&[&str], &str, Option<Outcome>)] = &[
        // Nothing forbidden: everything is released, in order.
        (
            &["Hello ", "there. How", " are you?"],
            "Hello there. How are you?",
            None,
        ),
        // The forbidden phrase arrives split over two pieces: the sentence that holds it is
        // never sent, the one before it was.
        // The space after a sentence is held with the next one.
        (
            &["Fine. The secret", " plan is ready. More."],
            "Fine.",
            Some(Outcome::Stopped),
        ),
        // A phrase cut at a sentence boundary is seen with the sentence before it.
        (
            &["All good. ", "Secret plan."],
            "All good.",
            Some(Outcome::Stopped),
        ),
    ];
    for (pieces, released, stop) in cases {
        let (sent, stopped, _) = stream(&blocking, "q", pieces);
        assert_eq!(sent, *released, "{pieces:?}");
        assert_eq!(stopped.map(|v| v.outcome), *stop, "{pieces:?}");
    }
}

#[test]
fn a_flagging_rule_records_once_and_stops_nothing() {
    let flagging = rules(OutputAction::Flag, &["(?i)maybe"], &[], None, false);
    let (sent, stopped, verdicts) = stream(&flagging, "q", &["Maybe. ", "Maybe again."]);
    assert_eq!(sent, "Maybe. Maybe again.");
    assert!(stopped.is_none());
    assert!(verdicts.iter().all(|v| v.outcome == Outcome::Flagged));
    assert!(!verdicts.is_empty());
}

#[test]
fn a_disclaimer_is_appended_at_the_end_of_a_stream_once() {
    let checks = rules(
        OutputAction::Block,
        &[],
        &[("(?i)invest", "Not financial advice.")],
        None,
        false,
    );
    let (sent, stopped, verdicts) = stream(&checks, "Should I invest?", &["Buy bonds."]);
    assert_eq!(sent, "Buy bonds.\n\nNot financial advice.");
    assert!(stopped.is_none());
    assert_eq!(verdicts[0].outcome, Outcome::Fixed);
    // Already there: nothing is added.
    let (sent, _, verdicts) = stream(&checks, "Invest?", &["Not financial advice. Bonds."]);
    assert_eq!(sent, "Not financial advice. Bonds.");
    assert!(verdicts.is_empty());
}

#[test]
fn a_stream_longer_than_the_limit_is_stopped_where_it_passes_it() {
    let checks = rules(OutputAction::Block, &[], &[], Some(12), false);
    let (sent, stopped, _) = stream(&checks, "q", &["Short one. ", "Then a long second one."]);
    assert_eq!(sent, "Short one.");
    assert_eq!(stopped.unwrap().detail, "more than 12 characters");
}

#[test]
fn a_whole_answer_is_reviewed_by_every_rule_with_the_first_failure_returned() {
    let table: &[(Arc<OutputChecks>, &str, &str, Outcome, bool)] = &[
        // (checks, question, answer, compliance outcome, fails)
        (
            rules(OutputAction::Retry, &["(?i)password"], &[], None, false),
            "q",
            "Your password is x.",
            Outcome::Failed,
            true,
        ),
        (
            rules(OutputAction::Flag, &["(?i)password"], &[], None, false),
            "q",
            "Your password is x.",
            Outcome::Flagged,
            false,
        ),
        (
            rules(OutputAction::Block, &[], &[], Some(5), false),
            "q",
            "Too long an answer.",
            Outcome::Failed,
            true,
        ),
        (
            rules(
                OutputAction::Block,
                &[],
                &[("(?i)dose", "Ask a doctor.")],
                None,
                false,
            ),
            "What dose?",
            "Two pills.",
            Outcome::Fixed,
            false,
        ),
        (
            rules(OutputAction::Block, &[], &[], None, false),
            "q",
            "Fine.",
            Outcome::Pass,
            false,
        ),
    ];
    for (checks, question, text, outcome, fails) in table {
        let mut response = answer(text);
        let mut verdicts = Vec::new();
        let failure = checks.review(&ask(question), &mut response, &mut verdicts);
        assert_eq!(verdicts.len(), 1, "{text}");
        assert_eq!(verdicts[0].outcome, *outcome, "{text}");
        assert_eq!(failure.is_some(), *fails, "{text}");
        if *outcome == Outcome::Fixed {
            assert!(response.text().ends_with("\n\nAsk a doctor."));
        }
    }
}

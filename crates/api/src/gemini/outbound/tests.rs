use super::*;
use serde_json::json;

fn check_request(input: Value, expected: Value) {
    let req: ChatCompletionRequest = serde_json::from_value(input.clone()).unwrap();
    let out = to_gemini(req).unwrap();
    assert_eq!(serde_json::to_value(out).unwrap(), expected, "for {input}");
}

#[test]
fn requests() {
    let cases = [
        // System and developer messages become the system instruction; roles; no config.
        (
            json!({"model": "gemini", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": [{"type": "text", "text": "Look:"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}}]}]}),
            json!({"contents": [
                    {"role": "user", "parts": [{"text": "Hi"}]},
                    {"role": "model", "parts": [{"text": "Hello."}]},
                    {"role": "user", "parts": [{"text": "Look:"},
                        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}}]}],
                   "systemInstruction": {"parts": [{"text": "Be brief.\n\nNo emoji."}]}}),
        ),
        // Generation settings, stop sequences, n, structured output with a schema.
        (
            json!({"model": "g", "messages": [{"role": "user", "content": "Hi"}],
                   "temperature": 0.5, "top_p": 0.9, "stop": ["END"], "max_tokens": 10,
                   "max_completion_tokens": 20, "n": 2, "seed": 7, "top_k": 40,
                   "presence_penalty": 0.5, "logit_bias": {}, "user": "u",
                   "response_format": {"type": "json_schema", "json_schema": {"name": "x",
                       "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}}),
            json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
                   "generationConfig": {"stopSequences": ["END"], "candidateCount": 2,
                       "maxOutputTokens": 20, "temperature": 0.5, "topP": 0.9, "topK": 40,
                       "seed": 7, "presencePenalty": 0.5, "responseMimeType": "application/json",
                       "responseJsonSchema": {"type": "object", "properties": {"a": {"type": "integer"}}}}}),
        ),
        (
            json!({"model": "g", "messages": [{"role": "user", "content": "Hi"}], "n": 1,
                   "response_format": {"type": "json_object"}}),
            json!({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
                   "generationConfig": {"responseMimeType": "application/json"}}),
        ),
        // Tools, a named tool choice, a call and its results matched by name; parallel
        // results merge into one user turn; a non-object result is wrapped.
        (
            json!({"model": "g", "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 20}"},
                {"role": "tool", "tool_call_id": "call_2", "content": "noon"}],
                "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather",
                    "parameters": {"type": "object", "additionalProperties": false}}}],
                "tool_choice": {"type": "function", "function": {"name": "weather"}}}),
            json!({"contents": [
                    {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
                    {"role": "model", "parts": [
                        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"name": "time", "args": {}}}]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "weather", "response": {"temp": 20}}},
                        {"functionResponse": {"name": "time", "response": {"content": "noon"}}}]}],
                   "tools": [{"functionDeclarations": [{"name": "weather", "description": "Weather",
                       "parametersJsonSchema": {"type": "object", "additionalProperties": false}}]}],
                   "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                       "allowedFunctionNames": ["weather"]}}}),
        ),
        // Tool choice modes; a tool choice without tools is dropped.
        (
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}],
                   "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"}),
            json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
                   "tools": [{"functionDeclarations": [{"name": "f"}]}],
                   "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}),
        ),
        (
            json!({"model": "g", "messages": [{"role": "user", "content": "x"}], "tool_choice": "none"}),
            json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}]}),
        ),
    ];
    for (input, expected) in cases {
        check_request(input, expected);
    }
}

#[test]
fn refusals_name_the_field() {
    let cases = [
        (
            json!([{"role": "user", "content": [{"type": "text", "text": "a"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]),
            "messages[0].content[1].image_url.url",
        ),
        (
            json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
            "messages[0].content[0].type",
        ),
        (
            json!([{"role": "user", "content": "x"},
                   {"role": "tool", "tool_call_id": "nobody", "content": "r"}]),
            "messages[1].tool_call_id",
        ),
        (
            json!([{"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": "[1]"}}]}]),
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            json!([{"role": "function", "name": "f", "content": "x"}]),
            "messages[0].role",
        ),
    ];
    for (messages, param) in cases {
        let req: ChatCompletionRequest =
            serde_json::from_value(json!({"model": "g", "messages": messages})).unwrap();
        let err = to_gemini(req).unwrap_err();
        assert_eq!(err.param.as_deref(), Some(param), "{err}");
    }
}

fn check_response(input: Value, expected: Value) {
    let reply: GenerateContentResponse = serde_json::from_value(input.clone()).unwrap();
    let out = to_chat_response(reply, "gemini-asked", 7);
    assert_eq!(serde_json::to_value(out).unwrap(), expected, "for {input}");
}

#[test]
fn responses() {
    let message = |content: Value| json!({"role": "assistant", "content": content});
    let choice = |index: u32, message: Value, finish: &str| json!({"index": index, "message": message, "logprobs": null, "finish_reason": finish});
    let answer = |choices: Value, usage: Value| {
        let mut v = json!({"id": "r1", "object": "chat.completion", "created": 7,
            "model": "gemini-2.5-flash", "choices": choices});
        if !usage.is_null() {
            v["usage"] = usage;
        }
        v
    };
    let call = FunctionCall {
        name: "weather".into(),
        arguments: "{\"city\":\"Paris\"}".into(),
    };
    let id = tool_call_id(
        &GeminiCall {
            id: None,
            name: "weather".into(),
            args: json!({"city": "Paris"}),
        },
        0,
        0,
    );
    let cases = [
        // Text in parts, thinking skipped; usage with cached and thinking tokens.
        (
            json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"text": "Let me think", "thought": true}, {"text": "Hel"}, {"text": "lo"}]},
                    "finishReason": "STOP", "index": 0}],
                   "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 5,
                       "cachedContentTokenCount": 80, "thoughtsTokenCount": 30, "totalTokenCount": 135},
                   "modelVersion": "gemini-2.5-flash", "responseId": "r1"}),
            answer(
                json!([choice(0, message(json!("Hello")), "stop")]),
                json!({"prompt_tokens": 100, "completion_tokens": 35, "total_tokens": 135,
                       "prompt_tokens_details": {"cached_tokens": 80},
                       "completion_tokens_details": {"reasoning_tokens": 30}}),
            ),
        ),
        // A function call: finish `tool_calls`, a stable id, arguments as JSON text.
        (
            json!({"candidates": [{"content": {"role": "model", "parts": [
                    {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]},
                    "finishReason": "STOP"}],
                   "modelVersion": "gemini-2.5-flash", "responseId": "r1"}),
            answer(
                json!([{"index": 0, "message": {"role": "assistant", "content": null,
                    "tool_calls": [{"id": id, "type": "function", "function": call}]},
                    "logprobs": null, "finish_reason": "tool_calls"}]),
                Value::Null,
            ),
        ),
        // Two candidates; MAX_TOKENS and SAFETY.
        (
            json!({"candidates": [
                    {"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS", "index": 0},
                    {"content": {"parts": [{"text": "b"}]}, "finishReason": "SAFETY", "index": 1}],
                   "modelVersion": "gemini-2.5-flash", "responseId": "r1"}),
            answer(
                json!([
                    choice(0, message(json!("a")), "length"),
                    choice(1, message(json!("b")), "content_filter")
                ]),
                Value::Null,
            ),
        ),
        // A prompt refused outright.
        (
            json!({"promptFeedback": {"blockReason": "SAFETY"},
                   "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
                   "modelVersion": "gemini-2.5-flash", "responseId": "r1"}),
            answer(
                json!([choice(0, message(json!("")), "content_filter")]),
                json!({"prompt_tokens": 4, "completion_tokens": 0, "total_tokens": 4}),
            ),
        ),
    ];
    for (input, expected) in cases {
        check_response(input, expected);
    }
}

#[test]
fn tool_call_ids_are_stable_and_given_ids_kept() {
    let call = |id: Option<&str>, city: &str| GeminiCall {
        id: id.map(str::to_owned),
        name: "weather".into(),
        args: json!({"city": city}),
    };
    assert_eq!(
        tool_call_id(&call(None, "Paris"), 0, 0),
        tool_call_id(&call(None, "Paris"), 0, 0)
    );
    assert_ne!(
        tool_call_id(&call(None, "Paris"), 0, 0),
        tool_call_id(&call(None, "Paris"), 0, 1)
    );
    assert_ne!(
        tool_call_id(&call(None, "Paris"), 0, 0),
        tool_call_id(&call(None, "Rome"), 0, 0)
    );
    assert_eq!(tool_call_id(&call(Some("fc_1"), "Paris"), 0, 0), "fc_1");
}

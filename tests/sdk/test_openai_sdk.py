"""The official OpenAI Python SDK, unchanged, against a running Switchyard gateway.

Started by crates/switchyard/tests/openai_sdk.rs, which passes the gateway's address in
SWITCHYARD_BASE_URL. Errors must surface as the SDK's own exception types.
"""

import json
import os

import openai
import pytest

BASE_URL = os.environ["SWITCHYARD_BASE_URL"]


@pytest.fixture
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-sdk-test", max_retries=0)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}


def test_plain_completion(client):
    raw = client.chat.completions.with_raw_response.create(
        model="small",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )
    assert raw.headers["x-switchyard-request-id"]
    assert raw.headers["x-switchyard-model"].startswith("small;")
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Paris."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_streaming_with_usage(client):
    stream = client.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "Tell me something."}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=50,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish in (["stop"], ["length"])
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0


def test_tool_call(client):
    completion = client.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "What's the weather in Lisbon?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert isinstance(args["city"], str)
    assert args["unit"] in ("celsius", "fahrenheit")


def test_tool_call_streamed(client):
    stream = client.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    name, arguments = "", ""
    for chunk in stream:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name += call.function.name or ""
            arguments += call.function.arguments or ""
    assert name == "get_weather"
    assert "city" in json.loads(arguments)


def test_tool_result_round_trip(client):
    completion = client.chat.completions.create(
        model="small",
        messages=[
            {"role": "user", "content": "What's the weather in Lisbon?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Lisbon", "unit": "celsius"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        ],
        tools=[WEATHER_TOOL],
    )
    assert completion.choices[0].message is not None


def test_json_response_format(client):
    completion = client.chat.completions.create(
        model="small",
        messages=[{"role": "user", "content": "Give me a user record."}],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "user",
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                    "required": ["name", "age"],
                },
            },
        },
    )
    data = json.loads(completion.choices[0].message.content)
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


def test_parameters_pass(client):
    completion = client.chat.completions.create(
        model="small",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        temperature=0.2,
        top_p=0.9,
        seed=7,
        stop=["\n\n"],
        max_completion_tokens=8,
        user="user-42",
    )
    assert completion.usage.completion_tokens <= 8


def test_n_choices_whole_and_streamed(client):
    # The simulator answers one choice per call: the gateway fans out and merges.
    question = [{"role": "user", "content": "What is the capital of France?"}]
    one = client.chat.completions.create(model="small", messages=question)
    completion = client.chat.completions.create(model="small", messages=question, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert all(c.message.content == "Paris." for c in completion.choices)
    assert all(c.finish_reason == "stop" for c in completion.choices)
    # Usage counts every choice, the prompt of each call included.
    assert completion.usage.completion_tokens == 3 * one.usage.completion_tokens
    assert completion.usage.prompt_tokens == 3 * one.usage.prompt_tokens

    stream = client.chat.completions.create(
        model="small", messages=question, n=2, stream=True, stream_options={"include_usage": True}
    )
    texts = {}
    usage = []
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
        if chunk.usage is not None:
            usage.append(chunk.usage)
    assert texts == {0: "Paris.", 1: "Paris."}
    assert len(usage) == 1 and usage[0].completion_tokens == 2 * one.usage.completion_tokens


def test_logprobs_whole_and_streamed(client):
    # The simulator makes up plausible logprobs; the gateway returns them as the provider sent them.
    question = [{"role": "user", "content": "What is the capital of France?"}]
    completion = client.chat.completions.create(model="small", messages=question, logprobs=True, top_logprobs=2)
    content = completion.choices[0].logprobs.content
    assert "".join(t.token for t in content) == "Paris."
    for t in content:
        assert t.logprob <= 0
        assert len(t.top_logprobs) == 2 and t.top_logprobs[0].token == t.token
    stream = client.chat.completions.create(model="small", messages=question, logprobs=True, stream=True)
    tokens = [t.token for chunk in stream for c in chunk.choices if c.logprobs for t in c.logprobs.content]
    assert "".join(tokens) == "Paris."
    # Malformed: a clear 400 naming the field.
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="small", messages=question, top_logprobs=2)
    assert e.value.param == "top_logprobs"


def test_models_and_embeddings(client):
    ids = sorted(m.id for m in client.models.list())
    assert ids == ["broken", "small"]
    # `models.retrieve`: the model as the list shows it; one that does not exist is NotFound.
    model = client.models.retrieve("small")
    assert (model.id, model.object, model.owned_by) == ("small", "model", "switchyard")
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("gpt-99")
    assert e.value.code == "model_not_found"
    # The SDK asks for base64 by default and decodes it.
    result = client.embeddings.create(model="small", input=["a cat sat", "a dog ran"])
    assert len(result.data) == 2
    assert len(result.data[0].embedding) > 8
    result = client.embeddings.create(model="small", input="a cat sat", encoding_format="float")
    assert isinstance(result.data[0].embedding[0], float)


def test_bad_key_is_authentication_error():
    bad = openai.OpenAI(base_url=BASE_URL, api_key="sk-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "invalid_api_key"


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-99", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"
    assert e.value.param == "model"


def test_model_not_allowed_is_permission_denied(client):
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="private", messages=[{"role": "user", "content": "x"}])


def test_invalid_request_is_bad_request(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}], n=9)
    assert e.value.param == "n"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="small", messages=[])


def test_rate_limit_is_rate_limit_error():
    limited = openai.OpenAI(base_url=BASE_URL, api_key="sk-sdk-limited", max_retries=0)
    limited.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as e:
        limited.chat.completions.create(model="small", messages=[{"role": "user", "content": "x"}])
    assert e.value.response.headers["retry-after"]


def test_provider_failure_is_server_error(client):
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 502
    with pytest.raises(openai.InternalServerError):
        stream = client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "x"}], stream=True)
        list(stream)

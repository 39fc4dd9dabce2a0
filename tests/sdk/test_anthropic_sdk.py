"""The official Anthropic Python SDK, unchanged, against a running Switchyard gateway.

Started by crates/switchyard/tests/openai_sdk.rs with the OpenAI SDK's tests (the same
gateway, tests/sdk/gateway.toml), which passes the gateway's address in SWITCHYARD_BASE_URL.
The SDK sends its key as `x-api-key`; the simulator answers behind `/v1/messages`. Errors must
surface as the SDK's own exception types.
"""

import os

import anthropic
import pytest

# The Anthropic SDK appends /v1/messages itself.
BASE_URL = os.environ["SWITCHYARD_BASE_URL"].removesuffix("/v1")

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "unit"],
    },
}


@pytest.fixture
def client():
    return anthropic.Anthropic(base_url=BASE_URL, api_key="sk-sdk-test", max_retries=0)


def test_create(client):
    raw = client.messages.with_raw_response.create(
        model="small",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        metadata={"user_id": "user-42"},
        # This SDK version no longer takes sampling parameters; older ones (and Claude Code)
        # send them, so they are sent as extra fields.
        extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 40},
    )
    assert raw.headers["x-switchyard-model"].startswith("small;")
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.model == "small"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Paris."
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_max_tokens_stop_reason(client):
    message = client.messages.create(
        model="small",
        max_tokens=2,
        messages=[{"role": "user", "content": "Tell me a long story."}],
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens <= 2


def test_stop_sequence(client):
    message = client.messages.create(
        model="small",
        max_tokens=50,
        stop_sequences=["ri"],
        messages=[{"role": "user", "content": "What is the capital of France?"}],
    )
    assert message.content[0].text == "Pa"
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "ri")


def test_stream(client):
    with client.messages.stream(
        model="small",
        max_tokens=100,
        messages=[{"role": "user", "content": "Tell me something."}],
    ) as stream:
        kinds = [event.type for event in stream]
        text = stream.get_final_text()
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "message_delta" in kinds
    assert text
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_raw_stream_events(client):
    stream = client.messages.create(
        model="small",
        max_tokens=100,
        stream=True,
        messages=[{"role": "user", "content": "Tell me something."}],
    )
    events = list(stream)
    assert events[0].type == "message_start"
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert deltas and all(e.delta.type == "text_delta" for e in deltas)
    assert events[-2].type == "message_delta" and events[-2].usage.output_tokens > 0


def test_tools(client):
    message = client.messages.create(
        model="small",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[{"role": "user", "content": "What's the weather in Lisbon?"}],
    )
    assert message.stop_reason == "tool_use"
    call = next(b for b in message.content if b.type == "tool_use")
    assert call.name == "get_weather"
    assert isinstance(call.input["city"], str)
    assert call.input["unit"] in ("celsius", "fahrenheit")

    # The result goes back as a tool_result block.
    answer = client.messages.create(
        model="small",
        max_tokens=50,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "What's the weather in Lisbon?"},
            {"role": "assistant", "content": message.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "21C"},
                    {"type": "text", "text": "Thanks, summarise that."},
                ],
            },
        ],
    )
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].type == "text" and answer.content[0].text


def test_tools_streamed(client):
    with client.messages.stream(
        model="small",
        max_tokens=200,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "weather in Oslo?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    call = next(b for b in final.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input["city"], str)


def test_count_tokens(client):
    short = client.messages.count_tokens(
        model="small", messages=[{"role": "user", "content": "Hi"}]
    )
    longer = client.messages.count_tokens(
        model="small",
        system="You are a helpful assistant.",
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "Hi"}],
    )
    assert 0 < short.input_tokens < longer.input_tokens


def test_bad_key_is_authentication_error():
    bad = anthropic.Anthropic(base_url=BASE_URL, api_key="sk-nope", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        bad.messages.create(model="small", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "authentication_error"


def test_unknown_model_is_not_found(client):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="claude-99", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "not_found_error"


def test_model_not_allowed_is_permission_denied(client):
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.create(model="private", max_tokens=5, messages=[{"role": "user", "content": "x"}])


def test_invalid_request_is_bad_request(client):
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model="small", max_tokens=5, messages=[])
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "messages" in e.value.body["error"]["message"]


def test_provider_failure_is_server_error(client):
    with pytest.raises(anthropic.InternalServerError) as e:
        client.messages.create(model="broken", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 502
    assert e.value.body["error"]["type"] == "api_error"

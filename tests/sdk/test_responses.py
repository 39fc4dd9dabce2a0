"""The official OpenAI Python SDK's Responses API (`client.responses`), unchanged, against a
running Switchyard gateway: plain and streamed, function tools and their outputs,
previous_response_id, structured output, retrieve and delete, errors.

Started by crates/switchyard/tests/openai_sdk.rs with the rest of tests/sdk/, which passes the
gateway's address in SWITCHYARD_BASE_URL.
"""

import json
import os

import openai
import pydantic
import pytest

BASE_URL = os.environ["SWITCHYARD_BASE_URL"]

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@pytest.fixture
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-sdk-test", max_retries=0)


def test_create_and_retrieve(client):
    raw = client.responses.with_raw_response.create(
        model="small",
        instructions="Answer in one word.",
        input="What is the capital of France?",
        metadata={"case": "sdk"},
    )
    assert raw.headers["x-switchyard-model"].startswith("small;")
    response = raw.parse()
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "Paris."
    assert response.output[0].type == "message"
    assert response.metadata == {"case": "sdk"}
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    again = client.responses.retrieve(response.id)
    assert again.id == response.id
    assert again.output_text == "Paris."


def test_streamed_events(client):
    stream = client.responses.create(model="small", input="Tell me something.", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text
    assert events[-1].response.output_text == text
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_stream_helper_gives_the_final_response(client):
    with client.responses.stream(model="small", input="What is the capital of France?") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == "Paris."
    assert client.responses.retrieve(final.id).status == "completed"


def test_function_call_and_its_output_with_previous_response_id(client):
    first = client.responses.create(
        model="small", input="What is the weather in Paris?", tools=[WEATHER_TOOL]
    )
    call = first.output[0]
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert "city" in json.loads(call.arguments)
    second = client.responses.create(
        model="small",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"}],
    )
    assert second.status == "completed"
    assert second.previous_response_id == first.id
    assert second.output_text


def test_streamed_function_call(client):
    stream = client.responses.create(
        model="small", input="Weather in Oslo?", tools=[WEATHER_TOOL], stream=True
    )
    events = list(stream)
    kinds = [e.type for e in events]
    assert "response.function_call_arguments.delta" in kinds
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert "city" in json.loads(done.arguments)
    final = events[-1].response
    assert final.output[0].type == "function_call"
    assert final.output[0].arguments == done.arguments


def test_previous_response_id_continues_the_conversation(client):
    first = client.responses.create(model="small", input="Remember the number 7.")
    second = client.responses.create(
        model="small", previous_response_id=first.id, input="What is the capital of France?"
    )
    assert second.output_text == "Paris."
    assert second.previous_response_id == first.id
    items = client.responses.input_items.list(second.id, order="asc")
    texts = [item.content[0].text for item in items.data]
    assert texts == ["Remember the number 7.", first.output_text, "What is the capital of France?"]


class City(pydantic.BaseModel):
    name: str
    population: int


def test_structured_output_parses(client):
    parsed = client.responses.parse(model="small", input="Describe a city.", text_format=City)
    assert isinstance(parsed.output_parsed, City)


def test_delete_then_not_found(client):
    response = client.responses.create(model="small", input="hi", store=True)
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_store_false_is_not_retrievable(client):
    response = client.responses.create(model="small", input="hi", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_errors_are_the_sdks_own(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="small", input="hi", tools=[{"type": "web_search"}])
    assert e.value.param == "tools[0].type"
    with pytest.raises(openai.NotFoundError) as e:
        client.responses.create(model="small", input="hi", previous_response_id="resp_missing")
    assert e.value.param == "previous_response_id"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=BASE_URL, api_key="sk-wrong", max_retries=0).responses.create(
            model="small", input="hi"
        )

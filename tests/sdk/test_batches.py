"""The Batch API through the official OpenAI Python SDK, unchanged: files.create,
batches.create, retrieve (polled), files.content, batches.list, batches.cancel.

Started by crates/switchyard/tests/openai_sdk.rs with tests/sdk/gateway.toml.
"""

import io
import json
import os
import time

import openai
import pytest

BASE_URL = os.environ["SWITCHYARD_BASE_URL"]
# A deadline for a slow machine, not a measurement: polling stops as soon as the batch ends.
DEADLINE_S = 120


@pytest.fixture
def client():
    return openai.OpenAI(base_url=BASE_URL, api_key="sk-sdk-test", max_retries=0)


def jsonl(lines):
    return io.BytesIO("\n".join(json.dumps(line) for line in lines).encode())


def chat_line(custom_id, model="small", text="What is the capital of France?"):
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}]},
    }


def wait_for(client, batch_id, statuses):
    deadline = time.monotonic() + DEADLINE_S
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in statuses:
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} is still {batch.status}"
        time.sleep(0.1)


def test_a_batch_completes_and_its_files_parse(client):
    lines = [chat_line(f"q{i}") for i in range(3)]
    # A model this key may not use: the line fails, the others do not.
    lines.append(chat_line("not-allowed", model="private"))
    uploaded = client.files.create(file=("questions.jsonl", jsonl(lines)), purpose="batch")
    assert uploaded.id.startswith("file-")
    assert uploaded.object == "file"
    assert uploaded.purpose == "batch"
    assert uploaded.filename == "questions.jsonl"
    assert uploaded.bytes > 0
    assert client.files.retrieve(uploaded.id).id == uploaded.id
    assert uploaded.id in [f.id for f in client.files.list(purpose="batch").data]

    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "sdk"},
    )
    assert batch.object == "batch"
    assert batch.status == "validating"
    assert batch.metadata == {"job": "sdk"}
    assert batch.request_counts.total == 4

    done = wait_for(client, batch.id, {"completed", "failed", "expired", "cancelled"})
    assert done.status == "completed"
    assert done.request_counts.total == 4
    assert done.request_counts.completed == 3
    assert done.request_counts.failed == 1
    assert done.in_progress_at and done.finalizing_at and done.completed_at

    output = [json.loads(l) for l in client.files.content(done.output_file_id).text.splitlines()]
    assert [l["custom_id"] for l in output] == ["q0", "q1", "q2"]
    for line in output:
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        completion = openai.types.chat.ChatCompletion.model_validate(line["response"]["body"])
        assert completion.choices[0].message.content == "Paris."
    errors = [json.loads(l) for l in client.files.content(done.error_file_id).text.splitlines()]
    assert [l["custom_id"] for l in errors] == ["not-allowed"]
    assert errors[0]["response"]["status_code"] in (403, 404)
    assert errors[0]["response"]["body"]["error"]["message"]
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"

    listed = client.batches.list(limit=100)
    assert done.id in [b.id for b in listed.data]
    assert all(b.object == "batch" for b in listed.data)


def test_a_cancelled_batch_runs_no_more_lines(client):
    slow = openai.OpenAI(base_url=BASE_URL, api_key="sk-sdk-batch-slow", max_retries=0)
    # One request a minute: the first line may pass, the others wait for their retry.
    lines = [chat_line(f"c{i}") for i in range(5)]
    uploaded = slow.files.create(file=("slow.jsonl", jsonl(lines)), purpose="batch")
    batch = slow.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_for(slow, batch.id, {"in_progress"})
    cancelling = slow.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    assert cancelling.cancelling_at
    done = wait_for(slow, batch.id, {"cancelled"})
    assert done.cancelled_at
    assert done.request_counts.total == 5
    assert done.request_counts.completed <= 1
    assert done.request_counts.failed == 0
    # A batch that has ended cannot be cancelled.
    with pytest.raises(openai.BadRequestError):
        slow.batches.cancel(batch.id)


def test_unknown_batches_and_files_are_not_found(client):
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-missing")
    with pytest.raises(openai.BadRequestError):
        client.batches.create(
            input_file_id="file-missing", endpoint="/v1/completions", completion_window="24h"
        )

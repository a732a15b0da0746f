"""The official `openai` package against `aegis serve`: chat (plain and streamed, with
usage), the model list, embeddings, and a policy refusal raised as the right exception.
The upstream is a loopback OpenAI-compatible server in this file."""

import json
import os
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import psycopg
import pytest

WORDS = ["Hello", " from", " the", " loopback", " upstream."]


class Upstream(BaseHTTPRequestHandler):
    received = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        Upstream.received.append(body)
        if body.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            base = {"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": body["model"]}
            for i, word in enumerate(WORDS):
                delta = {"content": word}
                if i == 0:
                    delta["role"] = "assistant"
                chunk = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": None}])
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            done = dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
            self.wfile.write(f"data: {json.dumps(done)}\n\n".encode())
            if body.get("stream_options", {}).get("include_usage"):
                usage = dict(base, choices=[], usage={"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12})
                self.wfile.write(f"data: {json.dumps(usage)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        answer = {
            "id": "up-2", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(WORDS)}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def served(tmp_path):
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    base = os.environ["AEGIS_TEST_DATABASE_URL"]
    name = "py_" + uuid.uuid4().hex[:16]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = base.rsplit("/", 1)[0] + "/" + name
    config = tmp_path / "aegis.toml"
    config.write_text(f"""
[models.providers.up]
type = "openai"
base_url = "http://127.0.0.1:{upstream.server_address[1]}/v1"
api_key = "upstream-key"
timeout_secs = 10

[models.models."up/m1"]
provider = "up"
name = "loop-1"
input_price_per_mtok = 1.0
output_price_per_mtok = 2.0

[models.aliases.up-fast]
models = ["up/m1"]

[models.policy.pro]
chat = ["up-fast"]
code = ["up-fast"]

[models.policy.free]
chat = ["up-fast"]
""")
    aegis = os.environ["AEGIS_BIN"]

    def cli(*args):
        return subprocess.run([aegis, "--config", str(config), "--database-url", url, *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    cli("tenant", "create", "acme", "--tier", "pro")
    cli("tenant", "create", "tiny", "--tier", "free")
    keys = {"acme": cli("apikey", "create", "acme"), "tiny": cli("apikey", "create", "tiny")}
    port = free_port()
    server = subprocess.Popen([aegis, "--config", str(config), "--database-url", url, "serve", "--bind", f"127.0.0.1:{port}"])
    try:
        for _ in range(200):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/v1", keys
    finally:
        server.terminate()
        server.wait(timeout=15)
        upstream.shutdown()


def test_chat_plain_and_streamed(served):
    base_url, keys = served
    client = openai.OpenAI(base_url=base_url, api_key=keys["acme"])
    answer = client.chat.completions.create(model="up-fast", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "".join(WORDS)
    assert answer.usage.total_tokens == 12
    assert Upstream.received[-1]["model"] == "loop-1"

    stream = client.chat.completions.create(
        model="intent:chat", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces) == "".join(WORDS)
    assert usage.total_tokens == 12
    assert Upstream.received[-1]["stream_options"] == {"include_usage": True}

    plain = client.chat.completions.create(model="up-fast", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in plain if c.choices) == "".join(WORDS)


def test_models_embeddings_and_refusals(served):
    base_url, keys = served
    client = openai.OpenAI(base_url=base_url, api_key=keys["acme"])
    ids = {m.id for m in client.models.list()}
    assert "up-fast" in ids and "embed" in ids
    vectors = client.embeddings.create(model="embed", input=["refund policy", "shipping"])
    assert len(vectors.data) == 2 and len(vectors.data[0].embedding) == 768

    free = openai.OpenAI(base_url=base_url, api_key=keys["tiny"])
    with pytest.raises(openai.PermissionDeniedError) as denied:
        free.chat.completions.create(model="openrouter-gpt4o", messages=[{"role": "user", "content": "hi"}])
    assert "may not use" in str(denied.value)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base_url, api_key="aegis_wrong").models.list()

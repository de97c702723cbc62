"""A small OpenAI-compatible chat server on 127.0.0.1 for tests (the shape Ollama and vLLM serve).

It answers ``GET /v1/models`` (``models``) and ``POST /v1/chat/completions`` (plain and ``stream: true``
Server-Sent Events) with a fixed reply, optionally one word every ``delay`` seconds, and records the requests it
received; ``reply`` may be a function of the request body, to script each answer, and a scripted answer may be
tool calls (``[ToolCall(name, arguments), …]``) instead of text, as a model driving an agent sends. With
``echo_auth_error`` it answers 401 quoting the request's ``Authorization`` header instead, as a careless
server (or a proxy) might: what a client does with a secret in an error message. With ``redirect_to`` it
answers every POST with a 307 to that base URL, as a hostile public server might.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One function call a scripted reply makes; ``arguments`` is sent as the JSON text OpenAI sends (a ``str``
    is sent as it is, to script malformed arguments)."""

    name: str
    arguments: dict[str, Any] | str


Reply = str | list[ToolCall]


def tool_results(body: dict) -> list[str]:
    """The tool results the model has been sent so far, oldest first."""
    return [m["content"] for m in body["messages"] if m["role"] == "tool"]


def tool_steps(*steps: list[ToolCall]) -> Callable[[dict], Reply]:
    """A scripted model driving an agent: with n tool results in, it makes the calls of ``steps[n]``; after the last
    step it answers "From the tools: " and every result, joined by " | "."""
    def reply(body: dict) -> Reply:
        done = tool_results(body)
        return steps[len(done)] if len(done) < len(steps) else "From the tools: " + " | ".join(done)

    return reply


def _wire_calls(calls: list[ToolCall], turn: int) -> list[dict[str, Any]]:
    return [{"id": f"call_{turn}_{index}", "type": "function",
             "function": {"name": call.name, "arguments": call.arguments if isinstance(call.arguments, str)
                          else json.dumps(call.arguments)}} for index, call in enumerate(calls)]


class ChatServer:
    def __init__(self, reply: str | Callable[[dict], Reply] = "hello from the server", *, port: int = 0, delay: float = 0.0,
                 echo_auth_error: bool = False, models: tuple[str, ...] = ("local-model",),
                 redirect_to: str | None = None) -> None:
        self.reply, self.delay, self.echo_auth_error, self.models = reply, delay, echo_auth_error, models
        self.redirect_to = redirect_to
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append(body)
                server.authorizations.append(self.headers.get("Authorization"))
                if server.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", server.redirect_to + self.path.removeprefix("/v1"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif server.echo_auth_error:
                    self._json({"error": {"message": f"Incorrect API key provided: {self.headers.get('Authorization')}",
                                          "type": "invalid_request_error", "code": "invalid_api_key"}}, status=401)
                elif body.get("stream"):
                    self._stream(body)
                else:
                    self._json(server._completion(body))

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.rstrip("/") == "/v1/models":
                    self._json({"object": "list", "data": [{"id": name, "object": "model"} for name in server.models]})
                else:
                    self._json({"error": {"message": "not found"}}, status=404)

            def _json(self, payload: dict, status: int = 200) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                reply = server.answer(body)
                if isinstance(reply, list):
                    self._stream_calls(body, reply)
                    return
                words = reply.split(" ")
                for index, word in enumerate(words):
                    if server.delay:
                        time.sleep(server.delay)
                    piece = word if index == 0 else " " + word
                    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body.get("model", "m"),
                             "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                end = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body.get("model", "m"),
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": len(words), "total_tokens": 3 + len(words)}}
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()

            def _stream_calls(self, body: dict, calls: list[ToolCall]) -> None:
                head = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body.get("model", "m")}
                chunks = [{"index": 0, "delta": {"role": "assistant", "content": None}, "finish_reason": None}]
                for index, call in enumerate(_wire_calls(calls, len(server.requests))):
                    text = call["function"]["arguments"]
                    first = {**call, "index": index, "function": {"name": call["function"]["name"], "arguments": ""}}
                    chunks.append({"index": 0, "delta": {"tool_calls": [first]}, "finish_reason": None})
                    for start in range(0, len(text), 16):      # arguments arrive in pieces, as OpenAI sends them
                        piece = {"index": index, "function": {"arguments": text[start:start + 16]}}
                        chunks.append({"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None})
                chunks.append({"index": 0, "delta": {}, "finish_reason": "tool_calls"})
                for choice in chunks:
                    self.wfile.write(f"data: {json.dumps({**head, 'choices': [choice]})}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def answer(self, body: dict) -> Reply:
        """The reply to ``body``: the fixed one, or what the scripted ``reply(body)`` says (text or tool calls)."""
        return self.reply(body) if callable(self.reply) else self.reply

    def _completion(self, body: dict) -> dict:
        reply = self.answer(body)
        if isinstance(reply, list):
            message = {"role": "assistant", "content": None, "tool_calls": _wire_calls(reply, len(self.requests))}
            return {"id": "c1", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                    "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        if self.delay:
            time.sleep(self.delay * len(reply.split(" ")))
        return {"id": "c1", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": len(reply.split()), "total_tokens": 3 + len(reply.split())}}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

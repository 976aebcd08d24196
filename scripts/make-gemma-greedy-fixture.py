#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/gemma3-llama-cpp-greedy.json: llama.cpp's prompt tokens and
greedy continuations for a few Gemma chats on Gemma 3 270M Q4_K_M. crates/infer's
tests/greedy_gemma_llama_cpp.rs checks that mycel's forward pass picks the same tokens.

Uses llama.cpp's own C++ tools (no Python bindings): one llama-server (1 thread, one slot, no
prompt cache) renders each chat with its built-in `gemma` template (/apply-template), tokenizes it
with BOS and special tokens (/tokenize), then decodes greedily from those ids (/completion with
`"prompt": [ids]`, temperature 0, top_k 1, end-of-generation ignored so that every case has the
same length): the whole prompt in one batch, then one token at a time, as mycel's schedule does.
The top-2 log-probabilities of every step are kept, so a divergence can be told from a near-tie.

Run from the repository root:
    python3 scripts/make-gemma-greedy-fixture.py [PATH_TO_GGUF]
Without a path: $MYCEL_MODEL_CACHE/gemma-3-270m-q4_k_m.gguf, else ~/.cache/mycel/models/...
(mycel fetches it there: `mycel_tokenizer::ensure_model(&GEMMA3_270M, ..)`). The tools are looked
for in $LLAMA_CPP_BIN, else ~/.cache/mycel/llama.cpp/build/bin.
"""
import hashlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
FILE_NAME = "gemma-3-270m-q4_k_m.gguf"
OUT = pathlib.Path("tests/fixtures/tokenizer/gemma3-llama-cpp-greedy.json")
MAX_TOKENS = 32

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write one sentence about dogs."}],
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Explain in two sentences why the sky is blue."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name three colors."}],
    [{"role": "user", "content": "Translate 'good morning' into German."}],
    [{"role": "user", "content": "Write a haiku about mushrooms."}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a short joke."},
    ],
]


def model_path() -> pathlib.Path:
    if len(sys.argv) > 1:
        return pathlib.Path(sys.argv[1])
    cache = os.environ.get("MYCEL_MODEL_CACHE") or str(pathlib.Path.home() / ".cache/mycel/models")
    return pathlib.Path(cache) / FILE_NAME


def tools_dir() -> pathlib.Path:
    return pathlib.Path(
        os.environ.get("LLAMA_CPP_BIN")
        or str(pathlib.Path.home() / ".cache/mycel/llama.cpp/build/bin")
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=300) as r:
        return json.loads(r.read())


def build_info() -> str:
    out = subprocess.run(
        [str(tools_dir() / "llama-server"), "--version"], capture_output=True, text=True
    )
    return " ".join((out.stdout + out.stderr).split())


def main() -> None:
    path = model_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        sys.exit(f"{path} has sha256 {digest}, expected {SHA256}")
    port = free_port()
    server = subprocess.Popen(
        [
            str(tools_dir() / "llama-server"), "-m", str(path), "--port", str(port),
            "--host", "127.0.0.1", "--no-jinja", "--chat-template", "gemma", "-c", "2048",
            "-np", "1", "-t", "1", "-tb", "1", "--log-disable",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                time.sleep(0.5)
        else:
            sys.exit("llama-server did not become healthy")
        cases = []
        for messages in CHATS:
            prompt = post(base, "/apply-template", {"messages": messages})["prompt"]
            ids = post(
                base, "/tokenize", {"content": prompt, "add_special": True, "parse_special": True}
            )["tokens"]
            answer = post(
                base,
                "/completion",
                {
                    "prompt": ids,
                    "n_predict": MAX_TOKENS,
                    "temperature": 0.0,
                    "top_k": 1,
                    "ignore_eos": True,
                    "cache_prompt": False,
                    "return_tokens": True,
                    "n_probs": 2,
                    "post_sampling_probs": False,
                },
            )
            top2 = [
                [[p["id"], round(p["logprob"], 4)] for p in step["top_logprobs"][:2]]
                for step in answer.get("completion_probabilities", [])
            ]
            cases.append(
                {
                    "messages": messages,
                    "prompt_ids": ids,
                    "greedy_ids": answer["tokens"],
                    "text": answer["content"],
                    "top2_logprobs": top2,
                }
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    head = {
        "about": "llama.cpp greedy decoding made by scripts/make-gemma-greedy-fixture.py "
        "(llama-server, 1 thread, built-in gemma template, temperature 0, top_k 1, "
        "end-of-generation ignored)",
        "model_sha256": SHA256,
        "llama_cpp": build_info(),
    }
    body = json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n'
    body += ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]}\n"
    json.loads(body)
    OUT.write_text(body, encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()

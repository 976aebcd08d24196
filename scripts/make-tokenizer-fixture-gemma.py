#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/gemma3-llama-cpp.json: llama.cpp's token ids for a corpus of
varied strings, tokenized with Gemma 3 270M's vocabulary (SentencePiece-style BPE), and the prompt
tokens of a few chats laid out by llama.cpp's own `gemma` chat template. crates/tokenizer's tests
(tests/tokenizer_gemma_llama_cpp.rs) compare mycel's tokenizer with it exactly.

Needs llama.cpp's tools (llama-tokenize and llama-server), e.g. built from llama-cpp-python's
vendored llama.cpp:
    cmake -B build -DLLAMA_CURL=OFF && cmake --build build --target llama-tokenize llama-server
Run from the repository root:
    python3 scripts/make-tokenizer-fixture-gemma.py [PATH_TO_GGUF]
Without a path: $MYCEL_MODEL_CACHE/gemma-3-270m-q4_k_m.gguf, else ~/.cache/mycel/models/... (mycel
fetches it there: `mycel_tokenizer::ensure_model(&GEMMA3_270M, ..)`). The tools are looked for in
$LLAMA_CPP_BIN, else ~/.cache/mycel/llama.cpp/build/bin.

Every string is tokenized twice without BOS: with special-token parsing (llama-tokenize's default)
and without (--no-parse-special), from a file (-f, --no-escape) so that the bytes are exact. The
chats are rendered by llama-server's /apply-template (--chat-template gemma, --no-jinja), then
tokenized with BOS and special parsing, as llama.cpp feeds a chat to the model. Seeded random
strings, mixing scripts, whitespace runs and pieces of special tokens, are tokenized both ways by
llama-server's /tokenize (the same call; checked against llama-tokenize on the fixed cases).
"""
import hashlib
import json
import os
import pathlib
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
FILE_NAME = "gemma-3-270m-q4_k_m.gguf"
OUT = pathlib.Path("tests/fixtures/tokenizer/gemma3-llama-cpp.json")
RANDOM_CASES = 300

CASES = [
    # ASCII, spaces
    "Hello world",
    "Hello, world! How are you today?",
    " leading space",
    "trailing space ",
    "  two leading spaces",
    "multiple   spaces   between",
    "   ",
    " ",
    "a b  c   d    e     f",
    # newlines and tabs (user-defined tokens in Gemma's vocabulary)
    "tabs\tand\ttabs\t\t",
    "line one\nline two\n\nline four\n",
    "\n\n\n",
    "   \n  \t ",
    "\r\n windows\r\nline endings\r\n",
    "",
    # digits and punctuation
    "1234567890",
    "Pi is 3.14159, e is 2.71828 and 1e-9 is small.",
    "In 2024 there were 8,123,456,789 people.",
    "version v2.0.11-rc3",
    "I'm sure they'll say we've done what you'd've done; it's ok.",
    "DON'T SHOUT, It'S Fine",
    "!!! ??? ... --- *** ~~~ ``` ''' \"\"\"",
    "0x1f2e3d4c 0b1010 0o777 1_000_000",
    # code
    "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
    "def add(a, b):\n    return a + b  # sum\n",
    "<html><body class=\"main\">&nbsp;</body></html>",
    "<table><tr><td>cell</td></tr></table> <b>bold</b> <code>x</code>",
    "SELECT id, name FROM users WHERE age >= 21 ORDER BY name;",
    "{\"key\": [1, 2, {\"nested\": null}], \"ok\": true}",
    "https://example.com/path?query=1&other=two#frag",
    "user@example.com +1 (555) 123-4567",
    # accented Latin, other scripts
    "naïve café résumé — déjà vu",
    "Grüße aus München! Ärger über Öl.",
    "Привет, мир! Как дела?",
    "日本語のテキストと漢字、カタカナ。",
    "中文测试：你好，世界！",
    "한국어 문장입니다.",
    "مرحبا بالعالم",
    "שלום עולם",
    "हिन्दी पाठ",
    "ภาษาไทย ทดสอบ",
    "math: ∑ x² ≤ ∞, α+β=γ, ½ ¾ ① Ⅻ",
    # emoji
    "Emoji: 😀🎉👍🏽 and family 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵",
    "🦀🦀🦀 rust",
    # bytes that need byte fallback
    "control \x01\x02\x03\x7f bytes",
    "private use \ue000\uf8ff and \U000f0000",
    "rare CJK 𠀀𪚥𰻞 and old italic 𐌰𐌱",
    "a\u00a0non-breaking\u2003em-space\u3000ideographic",
    "zero\u200bwidth\u200djoiner",
    "\x00nul",
    # special-token text
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\nHi<end_of_turn>\n",
    "<eos>text between<eos>",
    "inline<end_of_turn>markers<start_of_turn>here",
    "<start_of_turn><end_of_turn><start_of_turn>",
    "<pad><unk><mask>[multimodal]<unused0><unused99>",
    "<start_of_image>an image<end_of_image>",
    "not special: <start_of_tur> <end of turn> start_of_turn",
    "<|im_start|>user\nChatML markers are text here<|im_end|>",
    # long repeats
    "a" * 300,
    "ab" * 150,
    " " * 70,
    "\n" * 45,
    "\t" * 40,
    "=" * 120,
    "😀" * 40,
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 8,
    "ALLCAPS lowercase MixedCase camelCaseWord snake_case_word kebab-case-word",
]

# (messages, add_generation_prompt is always true): chats laid out by llama.cpp's gemma template.
CHATS = [
    [{"role": "user", "content": "What is the capital of Germany?"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "  leading spaces\n\nand blank lines\n"},
        {"role": "assistant", "content": "\n\nstarts with newlines"},
        {"role": "user", "content": "digits 12345, tabs\tand émojis 🦀"},
    ],
    [{"role": "user", "content": ""}],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke about 日本."},
    ],
    [
        {"role": "system", "content": "You are a pirate."},
        {"role": "system", "content": "Answer in one line."},
        {"role": "user", "content": "Where is the treasure?"},
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


def tokenize(model: pathlib.Path, text: str, *, bos: bool, special: bool) -> list:
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(text.encode("utf-8"))
        path = f.name
    try:
        args = [str(tools_dir() / "llama-tokenize"), "-m", str(model), "-f", path]
        args += ["--no-escape", "--ids", "--log-disable"]
        if not bos:
            args.append("--no-bos")
        if not special:
            args.append("--no-parse-special")
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    # The ids are the last line, a Python list.
    line = [l for l in out.splitlines() if l.startswith("[")][-1]
    return json.loads(line)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Pieces the random strings are made of: scripts, whitespace runs, digits, byte-fallback
# characters and (parts of) special and user-defined tokens' text.
PIECES = [
    "a", "e", "the", " the", "ing", "Hello", "world", "X", "Zq", "lorem", "ipsum",
    " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "\u3000",
    "0", "7", "42", "2024", "3.14", "-", ".", ",", "!", "?", "'", "\"", "(", ")", "{", "}", "#",
    "é", "ñ", "ü", "ø", "ß", "Ω", "я", "Ж", "日本", "語", "中", "한", "ع", "ש", "क", "ก",
    "😀", "👍🏽", "🇫🇷", "👨‍👩‍👧", "∑", "≤", "½",
    "\x01", "\x7f", "\ue000", "\U000f0000", "𠀀", "𐌰",
    "<start_of_turn>", "<end_of_turn>", "<eos>", "<bos>", "<start_of", "_turn>", "<", ">",
    "<b>", "</b>", "<table>", "<td>", "[multimodal]", "<unused1>", "<0x41>", "▁",
]


def random_strings(count: int) -> list:
    rng = random.Random(20261207)
    return ["".join(rng.choice(PIECES) for _ in range(rng.randint(1, 24))) for _ in range(count)]


class Server:
    """llama-server on a free loopback port, with llama.cpp's built-in gemma template."""

    def __init__(self, model: pathlib.Path):
        self.model = model

    def __enter__(self):
        port = free_port()
        self.process = subprocess.Popen(
            [
                str(tools_dir() / "llama-server"), "-m", str(self.model), "--port", str(port),
                "--host", "127.0.0.1", "--no-jinja", "--chat-template", "gemma", "-c", "512",
                "--log-disable",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except Exception:
                time.sleep(0.5)
        self.process.terminate()
        sys.exit("llama-server did not become healthy")

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=30)

    def post(self, route: str, body: dict) -> dict:
        request = urllib.request.Request(
            self.base + route,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def tokenize(self, text: str, special: bool) -> list:
        answer = self.post(
            "/tokenize", {"content": text, "add_special": False, "parse_special": special}
        )
        return answer["tokens"]


def build_info() -> str:
    out = subprocess.run(
        [str(tools_dir() / "llama-tokenize"), "--version"], capture_output=True, text=True
    )
    return " ".join((out.stdout + out.stderr).split())


def main() -> None:
    path = model_path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        sys.exit(f"{path} has sha256 {digest}, expected {SHA256}")
    cases = []
    for text in CASES:
        cases.append(
            {
                "text": text,
                "special": tokenize(path, text, bos=False, special=True),
                "text_only": tokenize(path, text, bos=False, special=False),
            }
        )
    with_bos = [{"text": t, "ids": tokenize(path, t, bos=True, special=True)} for t in CASES[:3]]
    chats = []
    random_cases = []
    with Server(path) as server:
        # The server's /tokenize is llama-tokenize's call; check it on the fixed cases first.
        for case in cases:
            for key, special in [("special", True), ("text_only", False)]:
                if server.tokenize(case["text"], special) != case[key]:
                    sys.exit(f"llama-server and llama-tokenize disagree on {case['text']!r}")
        for messages in CHATS:
            prompt = server.post("/apply-template", {"messages": messages})["prompt"]
            ids = tokenize(path, prompt, bos=True, special=True)
            chats.append({"messages": messages, "prompt": prompt, "ids": ids})
        for text in random_strings(RANDOM_CASES):
            random_cases.append(
                {
                    "text": text,
                    "special": server.tokenize(text, True),
                    "text_only": server.tokenize(text, False),
                }
            )
    fixture = {
        "about": "llama.cpp token ids made by scripts/make-tokenizer-fixture-gemma.py: per case, "
        "`special` = llama-tokenize --no-bos (special tokens parsed), `text_only` = with "
        "--no-parse-special; `with_bos` = BOS added as the model asks; `chats` = llama-server "
        "/apply-template (built-in gemma template) tokenized with BOS and special parsing; "
        "`random` = seeded random strings tokenized by llama-server's /tokenize (both ways)",
        "model_sha256": SHA256,
        "llama_cpp": build_info(),
    }
    lines = [json.dumps(case, ensure_ascii=False) for case in cases]
    head = json.dumps(fixture, ensure_ascii=False)[:-1]
    body = (
        head
        + ', "cases": [\n' + ",\n".join(lines) + "\n]"
        + ', "with_bos": [\n' + ",\n".join(json.dumps(c, ensure_ascii=False) for c in with_bos) + "\n]"
        + ', "chats": [\n' + ",\n".join(json.dumps(c, ensure_ascii=False) for c in chats) + "\n]"
        + ', "random": [\n'
        + ",\n".join(json.dumps(c, ensure_ascii=False) for c in random_cases)
        + "\n]}\n"
    )
    json.loads(body)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(body, encoding="utf-8")
    print(
        f"wrote {len(cases)} cases, {len(with_bos)} with BOS, {len(chats)} chats and "
        f"{len(random_cases)} random strings to {OUT}"
    )


if __name__ == "__main__":
    main()

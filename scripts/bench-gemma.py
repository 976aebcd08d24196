#!/usr/bin/env python3
"""mycel against llama.cpp on Gemma 3 270M Q4_K_M: prefill of 251 tokens (pp251) and 128 decode
steps (tg128) at 1 and 2 threads, runs alternating between the engines, medians printed as a table
and written as JSON (target/bench-gemma.json).

    cargo bench -p mycel-infer --bench decode --no-run   # builds the decode bench
    python3 scripts/bench-gemma.py [RUNS]

mycel: crates/infer/benches/decode.rs `--model gemma3 --prompt-tokens 251 --tokens 129` (251
prompt tokens in one pass, then 128 single-token steps). llama.cpp: `llama-bench -p 251 -n 128
-t T -r 1 -o json` (from $LLAMA_CPP_BIN, else ~/.cache/mycel/llama.cpp/build/bin). Peak RSS:
mycel's own VmHWM; llama.cpp's from /usr/bin/time -v around llama-bench.
"""
import glob
import json
import os
import pathlib
import statistics
import subprocess
import sys

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
MODEL = pathlib.Path(os.environ.get("MYCEL_MODEL_CACHE") or pathlib.Path.home() / ".cache/mycel/models") / "gemma-3-270m-q4_k_m.gguf"
TOOLS = pathlib.Path(os.environ.get("LLAMA_CPP_BIN") or pathlib.Path.home() / ".cache/mycel/llama.cpp/build/bin")
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or "target")


def decode_bench() -> str:
    found = [p for p in glob.glob(str(TARGET / "release/deps/decode-*")) if not p.endswith(".d")]
    if not found:
        sys.exit("build it first: cargo bench -p mycel-infer --bench decode --no-run")
    return max(found, key=os.path.getmtime)


def mycel(threads: int) -> dict:
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        [decode_bench(), "--model", "gemma3", "--prompt-tokens", "251", "--tokens", "129", "--bench"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    d = json.loads(out.strip().splitlines()[-1])
    return {"pp": 251 / (d["ttft_ms"] / 1e3), "tg": d["decode_tok_s"], "rss_mib": d["peak_rss_mib"]}


def llama_cpp(threads: int) -> dict:
    res = subprocess.run(
        ["/usr/bin/time", "-v", str(TOOLS / "llama-bench"), "-m", str(MODEL), "-p", "251", "-n", "128",
         "-t", str(threads), "-r", "1", "-o", "json"],
        check=True, capture_output=True, text=True,
    )
    rows = json.loads(res.stdout)
    rss = next(int(l.split(":")[1]) for l in res.stderr.splitlines() if "Maximum resident" in l)
    pp = next(r["avg_ts"] for r in rows if r["n_prompt"] > 0)
    tg = next(r["avg_ts"] for r in rows if r["n_gen"] > 0)
    return {"pp": pp, "tg": tg, "rss_mib": rss / 1024}


def main() -> None:
    results = {}
    for _ in range(RUNS):
        for threads in (1, 2):
            for name, run in (("mycel", mycel), ("llama.cpp", llama_cpp)):
                r = run(threads)
                for k, v in r.items():
                    results.setdefault((name, threads, k), []).append(v)
                print(f"  {name} t={threads}: pp251 {r['pp']:.1f} tok/s, tg128 {r['tg']:.1f} tok/s", file=sys.stderr)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    table = []
    print(f"Gemma 3 270M Q4_K_M on {cpu} ({os.cpu_count()} CPUs), medians of {RUNS} alternating runs")
    print(f"{'threads':>7} {'engine':>10} {'pp251 tok/s':>12} {'tg128 tok/s':>12} {'peak RSS MiB':>13}")
    for threads in (1, 2):
        for name in ("mycel", "llama.cpp"):
            m = {k: statistics.median(results[(name, threads, k)]) for k in ("pp", "tg", "rss_mib")}
            table.append({"engine": name, "threads": threads, **m})
            print(f"{threads:>7} {name:>10} {m['pp']:>12.1f} {m['tg']:>12.1f} {m['rss_mib']:>13.0f}")
    out = TARGET / "bench-gemma.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu": cpu, "runs": RUNS, "results": table}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

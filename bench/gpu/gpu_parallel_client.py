"""Sends GPIoT's CG requests to a llama-server, one after another and then several at once, and
prints the generated tokens per second of each way and their ratio.

    python3 gpu_parallel_client.py --url http://127.0.0.1:8080 --requests cg-requests.json \
        --parallel 4 --count 16 --max-tokens 256
"""

import argparse
import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def complete(url, body):
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = json.load(response)
    return answer["usage"]["completion_tokens"], answer.get("timings", {})


def run(url, bodies, workers):
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda body: complete(url, body), bodies))
    seconds = time.perf_counter() - started
    tokens = sum(count for count, _timings in results)
    return tokens, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", required=True, help="cg-requests.json: {schema, prompts: [{system, user}]}")
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--lora-id", type=int, default=0)
    args = parser.parse_args()
    with open(args.requests, encoding="utf-8") as file:
        spec = json.load(file)
    prompts = spec["prompts"]
    bodies = [
        {
            "model": "bench",
            "messages": [{"role": "system", "content": prompt["system"]}, {"role": "user", "content": prompt["user"]}],
            "max_tokens": args.max_tokens,
            "temperature": 0,
            "response_format": {"type": "json_schema", "json_schema": {"name": "gpiot_cg", "strict": True, "schema": spec["schema"]}},
            "lora": [{"id": args.lora_id, "scale": 1}],
        }
        for prompt in (prompts[i % len(prompts)] for i in range(args.count))
    ]
    run(args.url, bodies[: args.parallel], args.parallel)  # warm-up: every slot once
    sequential_tokens, sequential_seconds = run(args.url, bodies, 1)
    parallel_tokens, parallel_seconds = run(args.url, bodies, args.parallel)
    sequential_rate = sequential_tokens / sequential_seconds
    parallel_rate = parallel_tokens / parallel_seconds
    print(f"CG requests: {args.count} x up to {args.max_tokens} tokens, JSON-schema output, LoRA adapter")
    print(f"  one after another:  {sequential_tokens} tokens in {sequential_seconds:.2f} s = {sequential_rate:.0f} tokens/s")
    print(f"  {args.parallel} at once:        {parallel_tokens} tokens in {parallel_seconds:.2f} s = {parallel_rate:.0f} tokens/s")
    print(f"  ratio parallel / sequential: {parallel_rate / sequential_rate:.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()

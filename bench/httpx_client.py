#!/usr/bin/python3
"""(Debian's python3 with python3-httpx.) The same requests as `bench_runbox client`, sent with httpx (the HTTP client OpenHands uses).

usage: httpx_client.py URL KEY   -> "name median_ms p90_ms n" lines
"""
import statistics
import sys
import time

import httpx


def measure(name, n, f):
    ms = []
    for _ in range(n):
        start = time.perf_counter()
        f()
        ms.append((time.perf_counter() - start) * 1000.0)
    ms.sort()
    print(f"{name} {ms[len(ms) // 2]:.3f} {ms[len(ms) * 9 // 10]:.3f} {n}")


def main():
    url, key = sys.argv[1], sys.argv[2]
    action = {"action": {"action": "run", "args": {"command": "echo hi", "is_input": False, "thought": "",
                                                   "blocking": False, "is_static": False, "cwd": None,
                                                   "hidden": False, "confirmation_state": "confirmed",
                                                   "security_risk": -1}, "timeout": 30.0}}
    with httpx.Client(headers={"X-Session-API-Key": key}, timeout=35.0) as client:
        def alive():
            client.get(f"{url}/alive").raise_for_status()

        def run():
            response = client.post(f"{url}/execute_action", json=action)
            response.raise_for_status()
            body = response.json()
            assert body["content"] == "hi", body

        for _ in range(50):
            alive()
        measure("httpx_alive", 1000, alive)
        for _ in range(20):
            run()
        measure("httpx_run_echo", 300, run)
    return 0


if __name__ == "__main__":
    sys.exit(main())

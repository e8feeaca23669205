"""One load-generator process: async gRPC calls for a fixed time, then a report.

    python -m benchmarks.loadgen TARGET METHOD CONCURRENCY SECONDS INPUT OUTPUT START

METHOD is `validate` (INPUT: a file of keys, one a line, used round-robin),
`isblocked` or `createtoken` (INPUT: a file whose first line is the caller's
key) or `login` (INPUT: JSON lines of code, state and redirect_uri, each used
once). START is the UNIX time at which to begin, shared by the processes
of one cell. OUTPUT receives JSON: calls made, errors by status code, and the
latency of every call in seconds.
"""

import asyncio
import itertools
import json
import sys
import time

import grpc
from tecken_identity._generated import identity_pb2 as pb
from tecken_identity._generated import identity_pb2_grpc as pb_grpc


def requests_for(method: str, lines: list[str]):
    """Return (stub method name, metadata, an iterator of requests)."""
    if method == "validate":
        keys = itertools.cycle(lines)
        return "ValidateToken", (), (pb.ValidateTokenRequest(token=k) for k in keys)
    if method == "validate-once":
        return "ValidateToken", (), (pb.ValidateTokenRequest(token=k) for k in lines)

    if method == "login":
        logins = [json.loads(line) for line in lines]
        return "Login", (), (pb.LoginRequest(**entry) for entry in logins)

    metadata = (("authorization", f"Bearer {lines[0]}"),)
    if method == "isblocked":
        request = pb.IsBlockedRequest(email="someone@example.com")
        return "IsBlocked", metadata, itertools.repeat(request)
    if method == "createtoken":
        request = pb.CreateTokenRequest(permissions=["upload.upload_symbols"])
        return "CreateToken", metadata, itertools.repeat(request)
    raise SystemExit(f"unknown method {method}")


async def drive(
    target: str,
    method: str,
    concurrency: int,
    seconds: float,
    lines: list[str],
    start_at: float,
):
    """Call the method from concurrency tasks until the time is up."""
    name, metadata, requests = requests_for(method, lines)
    latencies: list[float] = []
    errors: dict[str, int] = {}

    # Several connections per process, so that with IDENTITY_WORKERS the
    # kernel can spread them over the workers (it balances connections).
    channels = [
        grpc.aio.insecure_channel(
            target, options=(("grpc.use_local_subchannel_pool", 1),)
        )
        for _ in range(min(concurrency, 4))
    ]
    try:
        calls = [getattr(pb_grpc.IdentityServiceStub(c), name) for c in channels]
        for channel in channels:
            await channel.channel_ready()

        # Every client process of a cell starts at the same wall-clock moment,
        # so their windows overlap and the cell's rate is calls / seconds.
        await asyncio.sleep(max(0.0, start_at - time.time()))
        stop = time.monotonic() + seconds

        async def worker(call) -> None:
            while time.monotonic() < stop:
                request = next(requests, None)
                if request is None:
                    return
                started = time.perf_counter()
                try:
                    await call(request, metadata=metadata, timeout=30)
                except grpc.aio.AioRpcError as error:
                    errors[error.code().name] = errors.get(error.code().name, 0) + 1
                latencies.append(time.perf_counter() - started)

        began = time.monotonic()
        await asyncio.gather(
            *(worker(calls[n % len(calls)]) for n in range(concurrency))
        )
        elapsed = time.monotonic() - began
    finally:
        for channel in channels:
            await channel.close()

    return {
        "calls": len(latencies),
        "elapsed": elapsed,
        "errors": errors,
        "latencies": latencies,
    }


def main() -> int:
    target, method, concurrency, seconds, source, output, start_at = sys.argv[1:8]
    with open(source, encoding="utf-8") as lines_file:
        lines = [line.strip() for line in lines_file if line.strip()]
    report = asyncio.run(
        drive(target, method, int(concurrency), float(seconds), lines, float(start_at))
    )
    with open(output, "w", encoding="utf-8") as out:
        json.dump(report, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The bank simulator for the term replay, in a process of its own (as a bank is), delivering its
notifications, results and statements to the service's processes in turn.

    python -m bench.term.bank --config sim.json --port 8990 --service-ports 8991,8992

The service runs as one process per port (`bench.term`, like `bench.notifications`), so there is
no single address to give the simulator: the transport here plays the load balancer in front of
them, sending each request to the next port. Everything else is `bank_simulator` unchanged.
"""

import argparse
import itertools

import httpx
import uvicorn

from bank_simulator.app import create_simulator
from bank_simulator.config import SimulatorConfig


class RoundRobin(httpx.AsyncBaseTransport):
    """Sends each request to the next of `ports` on the request's host, over one connection pool
    (an httpx pool keys its connections by origin, so each port keeps its own)."""

    def __init__(self, ports: list[int], connections: int) -> None:
        self._ports = itertools.cycle(ports)
        # Keep every connection: a bank bursting notifications would otherwise reconnect per call.
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._transport = httpx.AsyncHTTPTransport(limits=limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(port=next(self._ports))
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.term.bank", description=__doc__)
    parser.add_argument("--config", required=True, help="a SimulatorConfig as JSON")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--service-ports", required=True, help="comma-separated")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    ports = [int(port) for port in args.service_ports.split(",")]
    app = create_simulator(
        SimulatorConfig.from_file(args.config),
        transport=RoundRobin(ports, args.connections),
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=600,
    )


if __name__ == "__main__":
    main()

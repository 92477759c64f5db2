"""python -m bank_simulator --config sim.json --host 127.0.0.1 --port 9100"""

import argparse

import uvicorn

from bank_simulator.app import create_simulator
from bank_simulator.config import SimulatorConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bank_simulator", description=__doc__)
    parser.add_argument("--config", required=True, help="a SimulatorConfig as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args(argv)
    app = create_simulator(SimulatorConfig.from_file(args.config))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()

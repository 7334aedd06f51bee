"""A real Triton server (PyTriton) with a decoupled Python model that streams tokens on CPU.

Run with a Python 3.12 interpreter that has the ``triton-server`` extra
(nvidia-pytriton): ``python serve.py HTTP_PORT GRPC_PORT METRICS_PORT``. It
prints ``ready`` once the model is loaded. The model ``tiny`` reads the
request parameters ``max_tokens`` and ``seed`` (what conform's Triton adapter
sends) and streams one word per response: seeded, so the same request repeats.
This file imports nothing from conform: it runs in another interpreter.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

WORDS = (" the", " sea", " light", " keeper", " wave", " night", " ship", " storm", " rock", " beam", ".", ",")


def infer(requests: list[Any]) -> Iterator[list[dict[str, np.ndarray]]]:
    for request in requests:
        parameters = request.parameters or {}
        prompt = bytes(request["text_input"].reshape(-1)[0]).decode("utf-8", "replace")
        rng = random.Random(f"{parameters.get('seed', 0)}\x00{prompt}")
        for _ in range(int(parameters.get("max_tokens", 16))):
            yield [{"text_output": np.array([rng.choice(WORDS).encode()], dtype=object)}]


def main() -> None:
    http_port, grpc_port, metrics_port = (int(arg) for arg in sys.argv[1:4])
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=http_port,
        grpc_address="127.0.0.1",
        grpc_port=grpc_port,
        metrics_port=metrics_port,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name="tiny",
            infer_func=infer,
            inputs=[Tensor(name="text_input", dtype=bytes, shape=(1,))],
            outputs=[Tensor(name="text_output", dtype=bytes, shape=(1,))],
            config=ModelConfig(decoupled=True, batching=False),
            strict=False,
        )
        print("ready", flush=True)
        triton.serve()


if __name__ == "__main__":
    main()

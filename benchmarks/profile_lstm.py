"""Where an LSTM prediction's time goes: lstm_rows' batch cut into its pieces, beside PyTorch's whole call.

    python benchmarks/profile_lstm.py [--batch 128] [--rounds 5] [--threads 2]

A prediction of ``tinynet.models.lstm_rows()`` is the input's product for every step at once
(``x W_x + b``, ``(N*28, 28) @ (28, 4H)``), then 28 steps, each a product by the recurrent
weights (``h_{t-1} W_h``, ``(N, H) @ (H, 4H)``) and one compiled pass of the cell
(:func:`tinynet.kernels.lstm_cell_into`), then the classifier. This times each piece alone on
the whole batch (the fastest of several calls, the median of ``--rounds`` rounds), next to
``model.predict`` and PyTorch's ``nn.LSTM`` on the same weights, and gives the recurrent
product's rate in GFLOP/s. The steps are timed as a part of the batch runs them in a prediction:
on one thread, the BLAS held to one, the products in the engine's register tiles where the CPU
has AVX-512 (the BLAS's otherwise, with its kernel as the environment sets it). Not a test: the
speed goals are measured by ``pytest benchmarks``; this says why.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def _fastest(calls, function):
    best = float("inf")
    for _ in range(calls):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def profile(batch, rounds, seed=0):
    """``{piece: median seconds}`` for one prediction of ``batch`` images."""
    import torch

    import tinynet
    from tinynet.engine.recurrent import forward_last_state
    from tinynet.kernels import blas
    from tinynet.layers.recurrent import input_share

    model = tinynet.models.lstm_rows(rng=seed)
    net = tinynet.export.to_torch(model).eval()
    images = np.random.default_rng(seed).random((batch, 1, 28, 28), dtype=np.float32)
    rows = images.reshape(batch, 28, 28)
    params = model.layers[1].params
    shares = input_share(rows, params["W_x"], params["b"])  # (T, N, 4H)
    hidden = params["W_h"].shape[0]
    state, product = np.zeros((batch, hidden), np.float32), np.empty((batch, 4 * hidden), np.float32)
    c_prev, gates = np.zeros_like(state), np.empty_like(product)
    c_next, h_next = np.empty_like(state), np.empty_like(state)
    np.testing.assert_allclose(model.predict(images), torch.softmax(net(torch.from_numpy(images)), 1).detach().numpy(),
                               rtol=1e-3, atol=1e-5)
    calls = max(3, 2000 // batch)

    def with_torch():
        with torch.inference_mode():
            net(torch.from_numpy(images))

    def as_a_part(piece):
        """``piece`` as a part of the batch runs it in a prediction: the BLAS held to one thread, the engine's
        products on this one (register tiles where the CPU has AVX-512)."""
        def run():
            with blas.held_to_one_thread(), blas.single_thread_products():
                piece()
        return run

    def products():
        for _ in range(28):
            tinynet.kernels.matmul(state, params["W_h"], out=product)

    def cells():  # each step's product reset first (the loop writes a new one): 28 fills of (N, 4H) included
        for step in range(28):
            product[...] = 0
            tinynet.kernels.lstm_cell_into(product, shares[step], c_prev, gates, c_next, h_next)

    pieces = {
        "PyTorch, the whole prediction": with_torch,
        "tinynet, the whole prediction (model.predict)": lambda: model.predict(images, batch_size=batch),
        "input product x W_x + b, every step": lambda: input_share(rows, params["W_x"], params["b"]),
        "the 28 steps on one thread, as in a part": as_a_part(
            lambda: forward_last_state(shares, params["W_h"])),
        "  of which 28 recurrent products h W_h": as_a_part(products),
        "  of which 28 cells (compiled, products reset)": as_a_part(cells),
    }
    seconds = {name: [] for name in pieces}
    for _ in range(rounds):
        for name, piece in pieces.items():
            seconds[name].append(_fastest(calls, piece))
    return {name: statistics.median(values) for name, values in seconds.items()}, 2 * batch * hidden * 4 * hidden * 28


def main():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    from cli import whole_number

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=whole_number(8), default=128)
    parser.add_argument("--rounds", type=whole_number(1), default=5)
    parser.add_argument("--threads", type=whole_number(1), default=2, help="BLAS and PyTorch threads")
    args = parser.parse_args()
    import torch
    from frameworks import blas_description
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        medians, flops = profile(args.batch, args.rounds)
    forced = {name: value for name, value in os.environ.items() if name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"lstm_rows, batch {args.batch}, {args.threads} threads, BLAS {blas_description()}"
          f"{f' (forced by {forced})' if forced else ''}; median of {args.rounds} rounds")
    for name, seconds in medians.items():
        print(f"{name:<48} {seconds * 1e3:8.2f} ms")
    rate = flops / medians["  of which 28 recurrent products h W_h"] / 1e9
    print(f"{'recurrent products':<48} {rate:8.1f} GFLOP/s")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()

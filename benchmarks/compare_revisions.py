"""tinynet against another checkout of itself: training epoch and predict time, side by side.

    python benchmarks/compare_revisions.py OTHER_CHECKOUT [--models small_cnn,cnn] [--pairs 6] [--images 20000]

Each measurement is a fresh process of ``worker.py`` from one checkout (its own ``tinynet``
first on ``PYTHONPATH``): a 10-batch warm-up (JIT compilation stays out), one timed epoch of
``--images`` MNIST training images (scaled to the 60,000-image epoch), then ``predict`` on
the 10,000 test images at batch 128. The two checkouts alternate, this one first in even
pairs and second in odd ones, so a slow minute of a shared machine hits both; reported per
model: the ratio this/other of each pair and their median. Needs ``TINYNET_DATA``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def measure(checkout, model, seed, images):
    env = dict(os.environ, PYTHONPATH=str(checkout))
    requests = "".join(json.dumps(r) + "\n" for r in (
        {"task": "train", "seed": seed, "images": images}, {"task": "predict", "seed": seed, "batch": 128}))
    done = subprocess.run([sys.executable, str(checkout / "benchmarks" / "worker.py"), "tinynet", model],
                          input=requests, capture_output=True, text=True, cwd=checkout / "benchmarks", env=env,
                          check=True)
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return answers[1]["seconds"], answers[2]["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="another checkout of tinynet (e.g. a git worktree of a revision)")
    parser.add_argument("--models", default="small_cnn,keras_convnet,cnn")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    from cli import whole_number

    parser.add_argument("--pairs", type=whole_number(1), default=6)
    parser.add_argument("--images", type=whole_number(2), default=20000)
    args = parser.parse_args()
    if not (args.other / "tinynet" / "__init__.py").is_file():
        parser.error(f"{args.other} is not a checkout of tinynet (no tinynet/__init__.py in it)")
    unknown = sorted(set(args.models.split(",")) - {"basic_mlp", "small_cnn", "keras_convnet", "cnn"})
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from basic_mlp, small_cnn, keras_convnet, cnn")
    checkouts = {"this": HERE, "other": args.other.resolve()}
    for model in args.models.split(","):
        pairs = []
        for pair in range(args.pairs):
            order = ("this", "other") if pair % 2 == 0 else ("other", "this")
            pairs.append({name: measure(checkouts[name], model, pair, args.images) for name in order})
        train = [p["this"][0] / p["other"][0] for p in pairs]
        predict = [p["this"][1] / p["other"][1] for p in pairs]
        print(json.dumps({
            "model": model, "pairs": args.pairs, "images": args.images,
            "train_epoch_ratio_median": round(statistics.median(train), 3),
            "train_epoch_ratios": [round(r, 3) for r in train],
            "predict_128_ratio_median": round(statistics.median(predict), 3),
            "predict_128_ratios": [round(r, 3) for r in predict],
        }), flush=True)


if __name__ == "__main__":
    main()

"""The results of one ``pytest benchmarks`` run: collected, tabulated, written and printed.

Every benchmark records plain measurements (one row each: section, model, framework, what
was measured, value, unit). At the end of the session the rows become a few readable
tables (training, inference, kernels, layers, start-up and memory, accuracy) with the
ratios against PyTorch and Keras, written as CSV and Markdown with a bar chart beside them.
"""

import datetime
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

FRAMEWORKS = ("tinynet", "pytorch", "keras", "onnxruntime")
RESULTS_DIR = Path(os.environ.get("TINYNET_BENCH_RESULTS", Path(__file__).parent / "results"))


@dataclass
class Row:
    section: str  # training, inference, kernels, layers, startup, page, accuracy, time_to_accuracy
    model: str  # model, kernel or layer name
    framework: str
    metric: str  # e.g. epoch_s, img_s
    value: float
    unit: str
    detail: str = ""  # shape, batch size or anything that qualifies the value


@dataclass
class Results:
    rows: list = field(default_factory=list)
    context: dict = field(default_factory=dict)  # threads, versions, machine

    def record(self, section, model, metric, value, unit, framework="tinynet", detail=""):
        self.rows.append(Row(section, model, framework, metric, float(value), unit, str(detail)))

    def frame(self):
        columns = list(Row.__dataclass_fields__)
        return pd.DataFrame([asdict(row) for row in self.rows], columns=columns)

    # -- the tables people read -------------------------------------------------------------
    def tables(self):
        """Readable tables, keyed by title; sections with no rows are left out."""
        frame = self.frame()
        builders = {
            "Training (epoch of 60,000 images, batch 128, Adam): median [interquartile range] of the rounds": (
                _training_table),
            "Inference (class probabilities; batch 1: one image a call), images/s: median [interquartile range]": (
                _inference_table),
            "Kernels: numba against the readable reference (batch 128)": _kernel_table,
            "Layers: forward + backward (batch 128)": _layer_table,
            "Start-up and memory": _startup_table,
            "The draw-a-digit page: one stroke's answer (forward, every layer's maps, backward)": _page_table,
            "Accuracy (examples' default runs, one process per seed)": _accuracy_table,
            "Time to accuracy, CNN recipe (training seconds; test accuracy after every epoch)": (
                _time_to_accuracy_table),
        }
        tables = {}
        for title, build in builders.items():
            table = build(frame)
            if table is not None and len(table):
                tables[title] = table
        return tables

    def context_lines(self):
        return [f"- {key}: {value}" for key, value in self.context.items()]

    def markdown(self):
        parts = ["# tinynet benchmarks", "", *self.context_lines(), ""]
        for title, table in self.tables().items():
            parts += [f"## {title}", "", to_markdown(table), ""]
        return "\n".join(parts)

    def text(self):
        parts = ["", "tinynet benchmarks", *self.context_lines()]
        for title, table in self.tables().items():
            parts += ["", title, table.to_string(index=False)]
        return "\n".join(parts)

    def write(self, directory=RESULTS_DIR):
        """CSV of every row, Markdown of the tables, and a bar chart; returns the paths written."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        written = []
        for name in (f"benchmarks-{stamp}", "latest"):
            csv_path, md_path = directory / f"{name}.csv", directory / f"{name}.md"
            self.frame().to_csv(csv_path, index=False)
            md_path.write_text(self.markdown() + "\n")
            written += [csv_path, md_path]
        chart = draw_chart(self.frame(), directory / "latest.png")
        if chart is not None:
            written.append(chart)
        return written


def _cpu_info():
    """(model name, flags) of the first processor in /proc/cpuinfo; ("", set()) elsewhere."""
    try:
        with open("/proc/cpuinfo") as info:
            fields = dict(line.split(":", 1) for line in info.read().split("\n\n")[0].splitlines() if ":" in line)
    except OSError:
        return platform.processor() or platform.machine(), set()
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    return fields.get("model name", platform.machine()), set(fields.get("flags", "").split())


def vector_extensions(flags):
    """The vector extensions that decide a CPU's matrix-product speed, as the kernel reports them."""
    named = [("AVX2", "avx2"), ("FMA", "fma"), ("AVX-512F", "avx512f"), ("AVX-512 VNNI", "avx512_vnni"),
             ("AVX-512 BF16", "avx512_bf16"), ("AMX", "amx_tile")]
    found = [name for name, flag in named if flag in flags]
    return ", ".join(found) or "none of AVX2/AVX-512/AMX"


def machine_description():
    cpu, flags = _cpu_info()
    smt = "SMT on" if "ht" in flags and os.cpu_count() and os.cpu_count() > 1 else "no SMT flag"
    return (f"{cpu}, {os.cpu_count()} logical cores ({smt}); vector extensions: {vector_extensions(flags)}; "
            f"Python {platform.python_version()}, {platform.system()}")


def code_revision():
    """The git revision benchmarked, marked ``+changes`` when the work tree differs from it."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                  text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return revision + (" +changes" if dirty else "")


def load_average():
    try:
        return ", ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1, 5, 15 min)"
    except OSError:
        return "unknown"


# -- table builders --------------------------------------------------------------------------
def _pick(frame, section, metric):
    return frame[(frame.section == section) & (frame.metric == metric)]


def _by_framework(part, index):
    return part.pivot_table(index=index, columns="framework", values="value", aggfunc="median", sort=False)


def _fmt(value, digits):
    return "" if pd.isna(value) else f"{value:,.{digits}f}"


def _spread(frame, section):
    """``{(model, detail): {framework: (q1, median, q3)}}`` of a section's timed rows."""
    part = frame[frame.section == section]
    spread = {}
    for (model, detail, name), rows in part.groupby(["model", "detail", "framework"], sort=False):
        values = dict(zip(rows.metric, rows.value, strict=True))
        if "seconds" in values:
            spread.setdefault((model, detail), {})[name] = (values.get("seconds_q1"), values["seconds"],
                                                            values.get("seconds_q3"))
    return spread


def compare(mine, other):
    """tinynet's median over the other's, or "no difference" when the interquartile ranges overlap."""
    if not mine or not other:
        return ""
    (q1, median, q3), (other_q1, other_median, other_q3) = mine, other
    ratio = median / other_median
    if q1 is not None and other_q1 is not None and q1 <= other_q3 and other_q1 <= q3:
        return f"no difference ({ratio:.2f})"
    return f"{ratio:.2f}"


def _iqr(spread, scale=1.0, digits=2):
    if not spread:
        return ""
    q1, median, q3 = (scale / value if scale != 1.0 else value for value in spread)
    low, high = sorted((q1, q3))
    return f"{median:,.{digits}f} [{low:,.{digits}f}-{high:,.{digits}f}]"


def _present(spread):
    """The frameworks with at least one figure in a section, in the order of FRAMEWORKS."""
    found = {name for sides in spread.values() for name in sides}
    return [name for name in FRAMEWORKS if name in found or name == "tinynet"]


def _training_table(frame):
    spread = _spread(frame, "training")
    if not spread:
        return None
    bounds = {metric: _pick(frame, "training", metric).set_index("model")["value"]
              for metric in ("flop_bound_s", "gemm_bound_s")}
    rows = []
    present = _present(spread)
    for (model, _), sides in spread.items():
        mine = sides.get("tinynet")
        row = {"model": model}
        for name in present:
            row[f"{name} epoch s [IQR]"] = _iqr(sides.get(name))
        for name in present[1:]:
            row[f"tinynet/{name}"] = compare(mine, sides.get(name))
        for metric, title in (("flop_bound_s", "FLOP bound s"), ("gemm_bound_s", "GEMM-shape bound s")):
            lower = bounds[metric].get(model)
            row[title] = _fmt(lower, 2) if lower is not None else ""
            if metric == "flop_bound_s":
                row["tinynet % of FLOP bound"] = _fmt(100 * lower / mine[1], 0) if lower is not None and mine else ""
        rows.append(row)
    return pd.DataFrame(rows)


def _inference_table(frame):
    spread = _spread(frame, "inference")
    if not spread:
        return None
    rows = []
    present = _present(spread)
    for (model, batch), sides in spread.items():
        row = {"model": model, "batch": batch}
        for name in present:
            row[f"{name} img/s [IQR]"] = _iqr(sides.get(name), scale=10_000.0, digits=0)
        for name in present[1:]:
            mine, other = sides.get("tinynet"), sides.get(name)
            # Throughput ratio: the other's time over tinynet's (above 1: tinynet is faster).
            row[f"tinynet/{name} img/s"] = compare(other, mine) if mine and other else ""
        rows.append(row)
    return pd.DataFrame(rows)


def _kernel_table(frame):
    part = frame[frame.section == "kernels"]
    if part.empty:
        return None
    table = part.pivot_table(index=["model", "detail"], columns="metric", values="value", sort=False)
    rows = []
    for (kernel, shape), values in table.iterrows():
        numba_ms, reference_ms = values.get("numba_ms"), values.get("reference_ms")
        rows.append({
            "kernel": kernel, "input": shape,
            "numba ms": _fmt(numba_ms, 3), "reference ms": _fmt(reference_ms, 3),
            "speed-up": _fmt(reference_ms / numba_ms, 1) if numba_ms and reference_ms else "",
        })
    return pd.DataFrame(rows)


def _layer_table(frame):
    part = _pick(frame, "layers", "forward_backward_ms")
    if part.empty:
        return None
    return pd.DataFrame({"layer": part.model, "input": part.detail, "forward+backward ms": part.value.map(
        lambda v: _fmt(v, 3))}).reset_index(drop=True)


def _startup_table(frame):
    part = frame[frame.section == "startup"]
    if part.empty:
        return None
    return pd.DataFrame({"measurement": part.metric, "model": part.model, "value": part.value.map(
        lambda v: _fmt(v, 2)), "unit": part.unit, "how": part.detail}).reset_index(drop=True)


def _page_table(frame):
    part = frame[frame.section == "page"]
    if part.empty:
        return None
    return pd.DataFrame({"measurement": part.metric, "model": part.model, "ms": part.value.map(
        lambda v: _fmt(v, 1)), "how": part.detail}).reset_index(drop=True)


def _accuracy_table(frame):
    """One row per model: mean ± sample standard deviation over the seeds, each seed, wall times."""
    part = frame[frame.section == "accuracy"]
    if part.empty:
        return None
    rows = []
    for model, group in part.groupby("model", sort=False):
        accuracy = group[group.metric == "test_accuracy"].value.to_numpy()
        walls = group[group.metric == "wall_s"].value.to_numpy()
        reference = group[group.metric == "reference_accuracy"].value
        spread = f" ± {accuracy.std(ddof=1):.2%}" if len(accuracy) > 1 else ""
        rows.append({
            "model": model,
            "tinynet test accuracy (mean ± std over the seeds)": f"{accuracy.mean():.2%}{spread}",
            "each seed": ", ".join(f"{value:.2%}" for value in accuracy),
            "wall s per run": ", ".join(f"{value:.0f}" for value in walls),
            "reference (Keras notebook)": f"{reference.iloc[0]:.2%}" if len(reference) else "",
        })
    return pd.DataFrame(rows)


def _time_to_accuracy_table(frame):
    """Training seconds until the test accuracy first reaches each threshold, per framework."""
    part = frame[frame.section == "time_to_accuracy"]
    if part.empty:
        return None
    rows = []
    for framework, group in part.groupby("framework", sort=False):
        row = {"framework": framework}
        for _, entry in group.iterrows():
            if entry.metric.startswith("seconds_to_"):
                threshold = entry.metric.removeprefix("seconds_to_")
                row[f"s to {threshold}"] = (f"{entry.value:.0f} ({entry.detail})" if entry.value == entry.value
                                            else entry.detail)
            else:
                row["final test accuracy"] = f"{entry.value:.2%} ({entry.detail})"
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table):
    """A pipe table (pandas' own ``to_markdown`` needs the extra ``tabulate`` package)."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(str(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def draw_chart(frame, path):
    """Epoch time and inference throughput per model, one bar per framework; None if no data."""
    epoch = _by_framework(_pick(frame, "training", "seconds"), "model")
    inference = _pick(frame, "inference", "seconds")
    inference = inference[inference.detail == "1000"].assign(value=lambda part: 10_000 / part.value)
    inference = _by_framework(inference, "model")
    if epoch.empty and inference.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Inference spans three orders of magnitude (MLP against CNNs): a log axis shows them all.
    panels = [(epoch, "training: seconds per 60,000-image epoch (lower is better)", "linear"),
              (inference, "inference: images per second at batch 1000 (higher is better)", "log")]
    panels = [panel for panel in panels if not panel[0].empty]
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 3.6 * len(panels)), squeeze=False)
    for axis, (data, title, scale) in zip(axes[:, 0], panels, strict=True):
        data = data[[name for name in FRAMEWORKS if name in data.columns]]
        data.plot.bar(ax=axis, rot=0)
        axis.set_yscale(scale)
        axis.set_title(title)
        axis.set_xlabel("")
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

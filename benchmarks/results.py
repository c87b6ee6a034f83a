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

FRAMEWORKS = ("tinynet", "pytorch", "keras")
RESULTS_DIR = Path(os.environ.get("TINYNET_BENCH_RESULTS", Path(__file__).parent / "results"))


@dataclass
class Row:
    section: str  # training, inference, kernels, layers, startup, accuracy
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
            "Training (60,000-image epoch, batch 128, Adam)": _training_table,
            "Inference (10,000 test images)": _inference_table,
            "Kernels: numba against the readable reference (batch 128)": _kernel_table,
            "Layers: forward + backward (batch 128)": _layer_table,
            "Start-up and memory": _startup_table,
            "Accuracy (examples' default settings)": _accuracy_table,
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


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, {platform.system()}"


# -- table builders --------------------------------------------------------------------------
def _pick(frame, section, metric):
    return frame[(frame.section == section) & (frame.metric == metric)]


def _by_framework(part, index):
    return part.pivot_table(index=index, columns="framework", values="value", aggfunc="median", sort=False)


def _fmt(value, digits):
    return "" if pd.isna(value) else f"{value:,.{digits}f}"


def _training_table(frame):
    epoch = _by_framework(_pick(frame, "training", "epoch_s"), "model")
    if epoch.empty:
        return None
    bound = _pick(frame, "training", "flop_bound_s").set_index("model")["value"]
    rows = []
    for model, times in epoch.iterrows():
        mine = times.get("tinynet")
        row = {"model": model}
        for name in FRAMEWORKS:
            row[f"{name} epoch s"] = _fmt(times.get(name), 2)
        for name in FRAMEWORKS[1:]:
            other = times.get(name)
            row[f"tinynet/{name}"] = _fmt(mine / other, 2) if mine and other and not pd.isna(other) else ""
        row["tinynet img/s"] = _fmt(60_000 / mine, 0) if mine else ""
        lower = bound.get(model)
        row["FLOP bound s"] = _fmt(lower, 2) if lower is not None else ""
        row["tinynet % of bound"] = _fmt(100 * lower / mine, 0) if lower is not None and mine else ""
        rows.append(row)
    return pd.DataFrame(rows)


def _inference_table(frame):
    part = _pick(frame, "inference", "img_s")
    if part.empty:
        return None
    table = part.pivot_table(index=["model", "detail"], columns="framework", values="value", sort=False)
    rows = []
    for (model, detail), speeds in table.iterrows():
        row = {"model": model, "batch": detail}
        for name in FRAMEWORKS:
            row[f"{name} img/s"] = _fmt(speeds.get(name), 0)
        for name in FRAMEWORKS[1:]:
            mine, other = speeds.get("tinynet"), speeds.get(name)
            row[f"tinynet/{name}"] = _fmt(mine / other, 2) if mine and other and not pd.isna(other) else ""
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


def _accuracy_table(frame):
    part = frame[frame.section == "accuracy"]
    if part.empty:
        return None
    table = part.pivot_table(index="model", columns="metric", values="value", sort=False)
    return pd.DataFrame({
        "model": table.index,
        "tinynet test accuracy": table["test_accuracy"].map(lambda v: f"{v:.2%}"),
        "reference (Keras notebook)": table["reference_accuracy"].map(lambda v: f"{v:.2%}"),
    }).reset_index(drop=True)


def to_markdown(table):
    """A pipe table (pandas' own ``to_markdown`` needs the extra ``tabulate`` package)."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(str(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def draw_chart(frame, path):
    """Epoch time and inference throughput per model, one bar per framework; None if no data."""
    epoch = _by_framework(_pick(frame, "training", "epoch_s"), "model")
    inference = _pick(frame, "inference", "img_s")
    inference = inference[inference.detail == "1000"]
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

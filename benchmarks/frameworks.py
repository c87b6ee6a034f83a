"""The same models, trained and run the same way, in tinynet, PyTorch and Keras (and served by ONNX Runtime).

Each framework gets one small adapter with four methods, so a benchmark is written once:

    data = fw.prepare(x, y)                  # float32 images in [0, 1], the framework's layout
    model = fw.build("small_cnn", seed)      # fresh weights, Adam(lr=1e-3), each at its fastest
    fw.train_epoch(model, data, batch_size)  # one shuffled pass over the data
    fw.predict(model, data, batch_size)      # class probabilities for every image, (N, 10) NumPy

Every side does the same work: the same batches, loss and optimizer (PyTorch's fused Adam,
its fastest), and at inference the softmax of the outputs (tinynet's ``predict`` returns
probabilities, so the others apply a softmax too). ``benchmarks/worker.py`` runs each
adapter in a process of its own.

The architectures are the ones in ``tinynet.models`` (``basic_mlp``, ``small_cnn``,
``keras_convnet``, ``cnn``), built layer for layer in each framework with its default
initialisers. The two sequence models (``lstm_rows``, ``vit``) reach PyTorch through
``tinynet.export.to_torch``: its own ``nn.LSTM``, ``nn.MultiheadAttention``, ``nn.LayerNorm``
and ``nn.GELU``, starting from tinynet's initial weights; Keras is not compared on them.
PyTorch and Keras are optional: :func:`framework` raises ``Unavailable`` with the reason when
one is not installed, and the benchmark is skipped with it.
"""

import os

import numpy as np

import tinynet
from tinynet.training.inputs import as_batch, training_batches

MODELS = ("basic_mlp", "small_cnn", "keras_convnet", "cnn")
SEQUENCE_MODELS = ("lstm_rows", "vit")  # the LSTM reading rows and the vision transformer
THREADS = int(os.environ.get("TINYNET_BENCH_THREADS", "2"))
LEARNING_RATE = 1e-3


class Unavailable(Exception):
    """The framework cannot be used here; the message says why and how to install it."""


class TinynetAdapter:
    name = "tinynet"

    def __init__(self):
        self.version = getattr(tinynet, "__version__", "dev")

    def threads(self):
        return f"numba kernels {tinynet.kernels.get_num_threads()}, BLAS {blas_threads()}"

    def details(self):
        return {"kernels": tinynet.kernels.BACKEND, "products": products_description(), "blas": blas_description()}

    def prepare(self, x, y):
        return np.ascontiguousarray(x, dtype=np.float32), y

    def build(self, name, seed):
        model = getattr(tinynet.models, name)(rng=seed)
        model.optimizer = tinynet.optim.Adam(lr=LEARNING_RATE)
        return model

    def train_epoch(self, model, data, batch_size, seed=0):
        x, y = data
        model.fit(x, y, epochs=1, batch_size=batch_size, optimizer=model.optimizer, seed=seed, verbose=0)

    def predict(self, model, data, batch_size):
        return model.predict(data[0], batch_size=batch_size)


class TorchAdapter:
    name = "pytorch"

    def __init__(self):
        try:
            import torch
        except ImportError as error:
            raise Unavailable(f"PyTorch is not installed ({error}); pip install torch to compare with it") from error
        self.torch = torch
        self.version = torch.__version__
        torch.set_num_threads(THREADS)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # may be set only once per process, before any parallel work
            pass

    def threads(self):
        return f"intra-op {self.torch.get_num_threads()}, inter-op {self.torch.get_num_interop_threads()}"

    def details(self):
        return {"cpu_capability": self.torch.backends.cpu.get_cpu_capability()}

    def prepare(self, x, y):
        torch = self.torch
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64))

    def build(self, name, seed):
        nn = self.torch.nn
        self.torch.manual_seed(seed)
        if name in SEQUENCE_MODELS:
            model = tinynet.export.to_torch(getattr(tinynet.models, name)(rng=seed))
            model.train()
            model.optimizer = self.torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, fused=True)
            return model
        conv_block = lambda c_in, c_out: [nn.Conv2d(c_in, c_out, 3), nn.ReLU(), nn.MaxPool2d(2)]  # noqa: E731
        layers = {
            "basic_mlp": [nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)],
            "small_cnn": [*conv_block(1, 32), nn.Flatten(), nn.Linear(5408, 128), nn.ReLU(), nn.Linear(128, 10)],
            "keras_convnet": [*conv_block(1, 32), *conv_block(32, 64), nn.Flatten(), nn.Dropout(0.5),
                              nn.Linear(1600, 10)],
            "cnn": [*conv_block(1, 32), nn.BatchNorm2d(32), *conv_block(32, 64), nn.BatchNorm2d(64),
                    nn.Conv2d(64, 128, 3), nn.BatchNorm2d(128), nn.ReLU(), nn.Flatten(), nn.Linear(1152, 128),
                    nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 10)],
        }[name]
        model = nn.Sequential(*layers)
        # fused=True: one kernel for every parameter's update, PyTorch's fastest Adam on the CPU
        # (its default loops over the tensors, several times slower for small models).
        model.optimizer = self.torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, fused=True)
        return model

    def train_epoch(self, model, data, batch_size, seed=0):
        torch = self.torch
        x, y = data
        model.train()
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        loss_fn = torch.nn.functional.cross_entropy
        for start in range(0, len(x), batch_size):
            index = order[start:start + batch_size]
            model.optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x[index]), y[index]).backward()
            model.optimizer.step()

    def predict(self, model, data, batch_size):
        torch = self.torch
        x = data[0]
        model.eval()
        with torch.inference_mode():
            outputs = [torch.softmax(model(x[start:start + batch_size]), dim=1)
                       for start in range(0, len(x), batch_size)]
        return torch.cat(outputs).numpy()


class KerasAdapter:
    name = "keras"

    def __init__(self):
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import tensorflow as tf
        except ImportError as error:
            raise Unavailable(
                f"TensorFlow is not installed ({error}); pip install tensorflow-cpu to compare with Keras"
            ) from error
        import keras

        self.tf, self.keras = tf, keras
        self.version = f"keras {keras.__version__} / tf {tf.__version__}"
        try:  # must happen before TensorFlow runs anything
            tf.config.threading.set_intra_op_parallelism_threads(THREADS)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass

    def threads(self):
        config = self.tf.config.threading
        intra, inter = config.get_intra_op_parallelism_threads(), config.get_inter_op_parallelism_threads()
        return f"intra-op {intra}, inter-op {inter}"

    def details(self):
        return {}

    def prepare(self, x, y):
        # Keras convolutions are channels-last: (N, 1, 28, 28) -> (N, 28, 28, 1).
        return np.ascontiguousarray(np.moveaxis(x, 1, -1), dtype=np.float32), y.astype(np.int64)

    def build(self, name, seed):
        if name in SEQUENCE_MODELS:
            raise Unavailable(f"{name} is not built in Keras here (only the four feed-forward models are)")
        layers = self.keras.layers
        self.keras.utils.set_random_seed(seed)
        conv_block = lambda filters: [layers.Conv2D(filters, 3, activation="relu"), layers.MaxPooling2D(2)]  # noqa: E731
        norm = lambda: layers.BatchNormalization(momentum=0.9, epsilon=1e-5)  # noqa: E731
        stack = {
            "basic_mlp": [layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)],
            "small_cnn": [*conv_block(32), layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)],
            "keras_convnet": [*conv_block(32), *conv_block(64), layers.Flatten(), layers.Dropout(0.5),
                              layers.Dense(10)],
            # BatchNormalization's momentum is PyTorch's 1 - momentum: 0.9 here is tinynet's 0.1.
            "cnn": [*conv_block(32), norm(), *conv_block(64), norm(), layers.Conv2D(128, 3), norm(),
                    layers.ReLU(), layers.Flatten(), layers.Dense(128), norm(), layers.ReLU(), layers.Dropout(0.3),
                    layers.Dense(10)],
        }[name]
        model = self.keras.Sequential([self.keras.Input((28, 28, 1)), *stack])
        model.compile(
            optimizer=self.keras.optimizers.Adam(LEARNING_RATE),
            loss=self.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        # Inference returns probabilities, as on the other sides: the same weights, plus a softmax.
        model.probabilities = self.keras.Sequential([model, layers.Softmax()])
        return model

    def train_epoch(self, model, data, batch_size, seed=0):
        x, y = data
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)

    def predict(self, model, data, batch_size):
        if len(data[0]) <= batch_size:  # one batch: a direct call, as Keras advises for small inputs
            return np.asarray(model.probabilities(data[0], training=False))
        return np.asarray(model.probabilities.predict(data[0], batch_size=batch_size, verbose=0))


class OnnxRuntimeAdapter:
    """ONNX Runtime serving tinynet's own model, exported with ``tinynet.export.to_onnx``, a Softmax appended.

    Inference only: what a user who takes the model to a runtime gets. The session is built
    with every graph optimisation (ORT's default) on ``THREADS`` intra-op threads.
    """

    name = "onnxruntime"

    def __init__(self):
        try:
            import onnx
            import onnxruntime
        except ImportError as error:
            raise Unavailable(f"ONNX Runtime is not installed ({error}); pip install onnx onnxruntime to compare "
                              f"with it") from error
        self.onnx, self.ort = onnx, onnxruntime
        self.version = f"onnxruntime {onnxruntime.__version__}"

    def threads(self):
        return f"intra-op {THREADS}, inter-op 1"

    def details(self):
        return {"providers": ",".join(self.ort.get_available_providers())}

    def prepare(self, x, y):
        return np.ascontiguousarray(x, dtype=np.float32), y

    def build(self, name, seed):
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.onnx"
            tinynet.export.to_onnx(getattr(tinynet.models, name)(rng=seed), path)
            graph = self.onnx.load(path)
        logits = graph.graph.output[0].name
        graph.graph.node.append(self.onnx.helper.make_node("Softmax", [logits], ["probabilities"], axis=1))
        graph.graph.output[0].name = "probabilities"
        options = self.ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
        return self.ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])

    def train_epoch(self, model, data, batch_size, seed=0):
        raise Unavailable("ONNX Runtime serves models; it does not train them here")

    def predict(self, model, data, batch_size):
        x = data[0]
        name = model.get_inputs()[0].name
        return np.concatenate([model.run(None, {name: x[start:start + batch_size]})[0]
                               for start in range(0, len(x), batch_size)])


ADAPTERS = {"tinynet": TinynetAdapter, "pytorch": TorchAdapter, "keras": KerasAdapter,
            "onnxruntime": OnnxRuntimeAdapter}
_made = {}


def framework(name):
    """The adapter for ``name``, made once per process; raises Unavailable with the reason."""
    if name not in _made:
        try:
            _made[name] = ADAPTERS[name]()
        except Unavailable as error:
            _made[name] = error
    made = _made[name]
    if isinstance(made, Unavailable):
        raise made
    return made


def made():
    """The adapters (or the reasons they are unavailable) this process has asked for so far."""
    return dict(_made)


def fit_generator(model, seed):
    """The generator tinynet's ``fit(model, seed=seed)`` draws its batches and augmentation from,
    after the draws ``fit`` makes first (one seed for each Dropout layer's masks), so another
    framework trained on :func:`fit_batches` of it sees the batches tinynet's fit sees."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.reseed(rng)
    return rng


def fit_batches(x, batch_size, rng, augment=None):
    """One epoch of the batches tinynet's ``fit`` makes: ``(index, images)``, the images uint8 ``x`` shuffled by
    ``rng``, scaled to [0, 1] in float32 and changed by ``augment`` (drawing from the same generator); a last
    batch of one sample joins the one before, as in ``fit``."""
    order = rng.permutation(len(x))
    for index in training_batches(len(x), batch_size, order):
        images = as_batch(x[index], np.dtype(np.float32))
        yield index, (images if augment is None else augment(images, rng))


def torch_epoch(net, optimizer, x, labels, batch_size, rng, schedule, augment, step=0, label_smoothing=0.0):
    """One epoch of PyTorch training on the batches tinynet's ``fit`` would make (:func:`fit_batches`);
    returns the step count after it.

    ``schedule(step)`` sets the learning rate before every step; ``labels`` is a tensor of int64
    classes; ``label_smoothing`` as in tinynet's ``SoftmaxCrossEntropy``.
    """
    import torch

    for index, batch in fit_batches(x, batch_size, rng, augment):
        for group in optimizer.param_groups:
            group["lr"] = schedule(step)
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(torch.from_numpy(batch)), labels[index],
                                          label_smoothing=label_smoothing).backward()
        optimizer.step()
        step += 1
    return step


def blas_threads():
    """Threads of the BLAS library NumPy uses (what its matrix products run on)."""
    from threadpoolctl import threadpool_info

    counts = {info["num_threads"] for info in threadpool_info() if info.get("user_api") == "blas"}
    return ", ".join(map(str, sorted(counts))) or "unknown"


def worker_environment(benchmarks_dir):
    """The environment of a benchmark subprocess: the same thread count for every library."""
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        env[variable] = str(THREADS)
    env.setdefault("TINYNET_KERNEL_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(benchmarks_dir), env.get("PYTHONPATH")]))
    return env


def blas_description():
    """NumPy's BLAS library, version and the kernel it chose for this CPU (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    libraries = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    # SciPy brings a BLAS of its own, listed first when SciPy loaded first: NumPy's does the products.
    libraries.sort(key=lambda info: "numpy" not in str(info.get("filepath", "")))
    if not libraries:
        return "unknown"
    info = libraries[0]
    return f"{info.get('internal_api')} {info.get('version')} ({info.get('architecture', '?')} kernels)"


#: Environment variables that pick a BLAS or NumPy kernel by hand instead of by the CPU's features.
#: Some machines set OPENBLAS_CORETYPE because older OpenBLAS builds crashed on their CPU; a current
#: one then runs an older kernel (Haswell's AVX2 code on an AVX-512 CPU: a third less GEMM throughput).
KERNEL_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE",
                    "NPY_DISABLE_CPU_FEATURES", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")


def kernel_warning(environ=None):
    """A warning naming every variable in ``environ`` that forces a kernel choice, or "" when none does."""
    environ = os.environ if environ is None else environ
    forced = [f"{name}={environ[name]}" for name in KERNEL_OVERRIDES if environ.get(name)]
    if not forced:
        return ""
    return (f"{', '.join(forced)} set: BLAS, NumPy or numba may run an older kernel than this CPU has, and the "
            f"figures are slower than the CPU's own; unset them for the benchmark command alone to measure it")


def products_description():
    """Where tinynet's matrix products run: in its register tiles (AVX-512: all of them; AVX2: a prediction's of a
    model that convolves), or on the BLAS."""
    kernels = tinynet.kernels
    if kernels.TILES_WIN_EVERYWHERE:
        return (f"AVX-512 register tiles for batches of {kernels.MIN_TILED_BATCH} or more (the BLAS held to one "
                f"thread meanwhile); for smaller ones the BLAS, but for convolutions at inference (tiles on the "
                f"calling thread)")
    if kernels.TILED_PRODUCTS:
        return (f"AVX2 register tiles for a prediction of a model that convolves, batches of "
                f"{kernels.MIN_TILED_BATCH} or more (the BLAS held to one thread meanwhile); the BLAS for training, "
                f"for models without convolutions and for smaller batches, but for their convolutions (tiles on "
                f"the calling thread)")
    if os.environ.get("TINYNET_TILED_PRODUCTS") == "0":
        return "the BLAS (tiles turned off by TINYNET_TILED_PRODUCTS=0)"
    why = ("the reference kernels run" if kernels.BACKEND != "numba"
           else "neither AVX-512 nor AVX2 with FMA, or numba compiles for another CPU")
    return f"the BLAS (no tiles here: {why})"


def numba_target():
    """The CPU that numba compiles tinynet's kernels for (LLVM's name for it) and numba's version."""
    try:
        import numba
        from llvmlite import binding
    except ImportError:
        return "numba not installed (reference kernels)"
    name = numba.config.CPU_NAME or binding.get_host_cpu_name()
    return f"numba {numba.__version__}, LLVM target {name}"


def forward_flops(model, input_shape=(1, 28, 28)):
    """Multiply-adds x 2 of one image's forward pass through the Dense and Conv2D layers.

    Dense: ``2 * in * out``; Conv2D: ``2 * C_in * kh * kw * C_out * out_h * out_w``. Bias,
    activations and pooling are left out (they are memory-bound, not FLOP-bound).
    """
    flops = 0
    shapes = model.output_shapes(input_shape)
    for layer, shape in zip(model.layers, shapes, strict=True):
        if isinstance(layer, tinynet.layers.Dense):
            flops += 2 * layer.params["W"].size
        elif isinstance(layer, tinynet.layers.Conv2D):
            out_channels, out_h, out_w = shape
            flops += 2 * layer.params["W"].size * out_h * out_w
    return flops


def training_gemms(model, batch=128, input_shape=(1, 28, 28)):
    """The matrix products ``(m, k, n)`` of one training batch: forward, weight and input gradients.

    Dense ``(in, out)``: ``(B, in) @ (in, out)``, ``(in, B) @ (B, out)``, ``(B, out) @ (out, in)``;
    Conv2D as im2col, with ``M = B * out_h * out_w`` rows and ``K = C * kh * kw``. The first
    layer with weights computes no input gradient (neither framework does), so it has two.
    """
    gemms = []
    shapes = model.output_shapes(input_shape)
    first = True
    for layer, shape in zip(model.layers, shapes, strict=True):
        if isinstance(layer, tinynet.layers.Dense):
            m, (k, n) = batch, layer.params["W"].shape
        elif isinstance(layer, tinynet.layers.Conv2D):
            out_channels, out_h, out_w = shape
            m, k, n = batch * out_h * out_w, layer.params["W"][0].size, out_channels
        else:
            continue
        gemms += [(m, k, n), (k, m, n)] + ([] if first else [(m, n, k)])
        first = False
    return gemms

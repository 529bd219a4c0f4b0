"""PyTorch modules: input gradients by autograd, in eager mode.

Imported only when the estimator (or the auto-encoder) is a ``torch.nn.Module``. The user's
module is left as it was: it runs in eval mode while skcem asks it something and gets its own
train/eval flags back after, its parameters' gradients are never touched
(``torch.autograd.grad`` differentiates with respect to the inputs only), and a ``device``
other than its parameters' runs a copy of it. Computations are in the dtype of the module's
parameters (float32 unless the module was converted). The loss terms are those of
:mod:`skcem.costs`, run on tensors through :class:`TorchNamespace`.
"""

import copy
import threading
import warnings
import weakref
from contextlib import ExitStack, contextmanager

import numpy as np
import torch
from torch import nn

from .._array_api import HOST, ArrayPlace, namespace
from .._warnings import catching_warnings
from ._base import Evaluation, check_input_shape, check_reconstruction
from ._outputs import check_scores_per_row, output_kind
from ._torch_layers import FasterLayers
from ._torch_threads import search_threads

MODEL_NAME = "PyTorch module"  # how messages name such a model

# The modules a classifier may end in, and what their outputs are.
_ACTIVATIONS = ((nn.Softmax, "softmax"), (nn.LogSoftmax, "log_softmax"),
                (nn.Sigmoid, "sigmoid"), (nn.Linear, "linear"))


# One lock per module: skcem's uses of a module change its state while they run (the
# train/eval flags, forward hooks, functional_call's swapped parameters), so two threads
# (joblib's threading backend, two explainers) take turns with it.
_MODULE_LOCKS = weakref.WeakKeyDictionary()
_MODULE_LOCKS_LOCK = threading.Lock()


def module_lock(module):
    """The re-entrant lock that serialises skcem's uses of ``module``."""
    with _MODULE_LOCKS_LOCK:
        lock = _MODULE_LOCKS.get(module)
        if lock is None:
            lock = _MODULE_LOCKS[module] = threading.RLock()
    return lock


def vmap_or_loop(function, in_dims):
    """``torch.func.vmap(function, in_dims=in_dims)``, one example at a time where vmap
    fails: an operation without a batching rule (``nn.GRU``, ``nn.RNN``, a float64
    ``nn.LSTM``; Keras's torch ``Conv2D``, which clones its input channels-last). A failure of
    the function itself fails again on the first example, and is raised from there."""
    batched = torch.func.vmap(function, in_dims=in_dims)

    def mapped(*args):
        try:
            with catching_warnings():
                # vmap's notes of operations it batches by a slow loop of its own
                warnings.filterwarnings("ignore", "There is a performance drop")
                return batched(*args)
        except RuntimeError:
            pass
        from torch.utils._pytree import tree_leaves, tree_map

        n = next(leaf.shape[0] for arg, axis in zip(args, in_dims) if axis == 0
                 for leaf in tree_leaves(arg))
        answers = [function(*[tree_map(lambda t, i=i: t[i], arg) if axis == 0 else arg
                              for arg, axis in zip(args, in_dims)]) for i in range(n)]
        return tree_map(lambda *parts: torch.stack(parts), *answers)
    return mapped


def share_lock(alias, module):
    """Serialise the uses of ``alias`` (a container of some of ``module``'s layers) with
    those of ``module``: one lock for both."""
    lock = module_lock(module)
    with _MODULE_LOCKS_LOCK:
        _MODULE_LOCKS[alias] = lock


@contextmanager
def evaluating(*modules):
    """The ``modules`` in eval mode, held by this thread (:func:`module_lock`); each
    submodule's own train/eval flag restored on exit. Out of a caller's
    ``torch.inference_mode`` (a server's), whose tensors autograd refuses: the search
    differentiates the modules."""
    modules = sorted({id(m): m for m in modules if m is not None}.values(), key=id)
    with ExitStack() as locks:
        locks.enter_context(torch.inference_mode(False))
        for module in modules:  # always in the same order: no two threads wait on each other
            locks.enter_context(module_lock(module))
        flags = [(m, m.training) for module in modules for m in module.modules()]
        if any(training for _, training in flags):  # setting a flag costs: once per step
            for module in modules:
                module.eval()
        try:
            yield
        finally:
            for m, training in flags:
                if m.training != training:
                    m.training = training


def module_device(module):
    """The device of the module's first parameter (or buffer); the CPU for neither."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def module_dtype(module):
    """The dtype of the module's first floating-point parameter; float32 for none."""
    for tensor in module.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def resolve_device(module, device):
    """``device`` as a ``torch.device``; where the module's parameters are when None."""
    if device is None:
        return module_device(module)
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"`device` must name a PyTorch device such as 'cpu' or 'cuda'; got "
                         f"{device!r}.") from exc
    if device.type == "meta":
        raise ValueError("`device` is 'meta', which holds no values to compute with: name a "
                         "device such as 'cpu' or 'cuda'.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {str(device)!r} but PyTorch sees no CUDA device here.")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    try:  # another kind this PyTorch has no support for (mps, xpu, hpu...)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, ImportError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"`device` is {str(device)!r}, which this PyTorch cannot use here "
                         f"({reason}); name a device it has, such as 'cpu'.") from None
    return device


def on_device(module, device):
    """``module`` itself when it is on ``device``, else a copy of it there."""
    if module_device(module) == device:
        return module
    return copy.deepcopy(module).to(device)


def _first_layer(module):
    """The first layer of nested ``nn.Sequential`` containers: its order is the call order."""
    while isinstance(module, nn.Sequential) and len(module):
        module = module[0]
    return module


def resolve_input_shape(module, input_shape, n_features, name="`estimator`"):
    """The shape of one instance as ``module`` takes it, checked against ``n_features``.

    A module cannot tell its input shape: ``input_shape`` when given, else flat rows
    ``(n_features,)``, checked against the ``in_features`` of a first ``nn.Linear``.
    """
    if input_shape is not None:
        shape = tuple(int(dim) for dim in input_shape)
        check_input_shape(shape, n_features, given=True)
        return shape
    first = _first_layer(module)
    if isinstance(first, nn.Linear) and first.in_features != n_features:
        raise ValueError(f"{name} starts with nn.Linear({first.in_features}, ...) but X has "
                         f"{n_features} columns.")
    return (n_features,)


def as_probabilities(outputs, kind):
    """Class probabilities (a tensor) from a classifier's outputs of the given ``kind``."""
    if kind == "probabilities":
        return outputs
    if kind == "logits":
        return torch.softmax(outputs, dim=1)
    s = outputs if kind == "sigmoid" else torch.sigmoid(outputs)
    return torch.cat([1 - s, s], dim=1)


class TorchNamespace:
    """The array functions of :mod:`skcem.costs`, on tensors of one device."""

    def __init__(self, device):
        self.device = device

    def sum(self, x, axis=None):
        return torch.sum(x) if axis is None else torch.sum(x, dim=axis)

    def argmax(self, x, axis=None):
        return torch.argmax(x, dim=axis)

    def take(self, x, index, axis=0):
        return torch.index_select(x, axis, index)

    def eye(self, n, dtype=None):
        return torch.eye(n, dtype=dtype, device=self.device)

    def asarray(self, x, dtype=None):
        return torch.as_tensor(x, dtype=dtype, device=self.device)

    def maximum(self, x, y):
        return torch.clamp(x, min=y) if isinstance(y, (int, float)) else torch.maximum(x, y)

    abs = staticmethod(torch.abs)
    sign = staticmethod(torch.sign)
    log = staticmethod(torch.log)


def channels_last(tensor):
    """A 4-D tensor copied to channels-last strides, even with one channel, whose layout
    ``contiguous`` leaves as it is (either layout's strides describe it)."""
    out = torch.empty(tensor.shape, dtype=tensor.dtype, device=tensor.device,
                      memory_format=torch.channels_last)
    return out.copy_(tensor)


class _OnRows:
    """A module behind flat rows: numpy rows in, reshaped tensors of its dtype and device."""

    role = "`estimator`"  # the parameter that gave the module, for messages

    def __init__(self, module, input_shape, device):
        self.module = module
        self.input_shape = tuple(input_shape)
        self.device = device
        self.dtype = module_dtype(module)
        # numpy has no bfloat16: such rows go through float32
        self._numpy_dtype = host_numpy(torch.empty((), dtype=self.dtype)).dtype
        self.convolutional = any(isinstance(layer, nn.Conv2d) for layer in module.modules())
        # a forward that writes into its input (``x[:, 0] = 0``, ``x.div_(16)``) is given a
        # copy of it once seen to: autograd keeps a leaf that requires grad from being
        # written, and a write bumps a tensor's version counter (a module run on fit's rows
        # would rewrite them, and see them twice rewritten when run on them again)
        self.writes_input = False

    def search_threads(self, n_numbers):
        """The PyTorch threads of a search over ``n_numbers`` numbers (see
        :mod:`._torch_threads`): a context manager."""
        return search_threads(n_numbers, self.device)

    def tensor(self, array):
        """``array`` (numpy rows, or a tensor of the search's place) in the module's dtype
        and on its device."""
        # a copy, never a view: a module that edits its input in place (``x.div_(16)``,
        # ``Normalize(inplace=True)``, under no_grad where autograd does not see it) would
        # otherwise rewrite the caller's rows (a fitted explainer's X_train_, the search's
        # iterates) before its write is noticed
        with torch.inference_mode(False):  # a tensor autograd takes (see evaluating)
            if isinstance(array, torch.Tensor):
                return array.to(device=self.device, dtype=self.dtype, copy=True)
            return torch.tensor(np.asarray(array, dtype=self._numpy_dtype),
                                device=self.device).to(self.dtype)

    def raw_forward(self, z, fast_layout=False):
        """The module's flattened outputs at the rows ``z``; with ``fast_layout``, on a CPU,
        in channels-last layout (see :meth:`channels_last_forward`)."""
        try:
            if fast_layout and self.convolutional and self.device.type == "cpu":
                # Gradients with respect to the input only: every parameter detached, so
                # that the one-channel convolutions may take their faster paths.
                return self.channels_last_forward(z, {
                    name: p.detach() for name, p in self.module.named_parameters()})
            x = z.reshape((-1,) + self.input_shape)
            version = x._version
            out = self.module(x.clone() if self.writes_input else x)
            self.writes_input = self.writes_input or x._version != version
        except RuntimeError as exc:
            if self.writes_input or "in-place operation" not in str(exc):
                raise
            self.writes_input = True
            return self.raw_forward(z, fast_layout)
        return rows_first(out, z.shape[0], self.role).reshape(z.shape[0], -1)

    def channels_last_forward(self, z, parameters):
        """The module's flattened outputs at the rows ``z``, with ``parameters`` (tensors
        that stand for the module's parameters of the same names) and the input, the 4-D ones
        (convolution kernels) in channels-last layout.

        oneDNN's convolutions then keep their activations channels-last, and the pooling and
        element-wise layers between them follow: up to several times faster, on a CPU, than
        the channels-first layout (PyTorch's max pooling with indices above all). The layout
        changes no value, and the module keeps its own: the copies are made at each call, so
        that weights changed since ``fit`` are used. Convolutions from or to a single channel
        take the faster paths of :mod:`skcem._gradients._torch_convolutions`, and a max
        pooling of a ReLU pools first (:mod:`skcem._gradients._torch_pooling`).
        """
        from torch.func import functional_call

        x = z.reshape((-1,) + self.input_shape)
        if x.dim() == 4:
            x = channels_last(x)
        if self.writes_input:
            x = x.clone(memory_format=torch.preserve_format)
        parameters = {name: channels_last(p) if p.dim() == 4 else p
                      for name, p in parameters.items()}
        version = x._version
        with FasterLayers():
            out = functional_call(self.module, parameters, (x,), strict=False)
        self.writes_input = self.writes_input or x._version != version
        return rows_first(out, z.shape[0], self.role).reshape(z.shape[0], -1)


def _input_gradient(outputs, z, cotangent=None):
    """The gradient of ``outputs`` (times ``cotangent``) with respect to the rows ``z``: zero
    where no path leads back to them (a module that bins its input, ``torch.bucketize``)."""
    if not outputs.requires_grad:
        return torch.zeros_like(z)
    (grad,) = torch.autograd.grad(outputs, z, cotangent, allow_unused=True)
    return torch.zeros_like(z) if grad is None else grad


def _forward_arguments(module):
    """The names of the arguments ``module.forward`` requires, or None where it does not say
    (``*args``, a TorchScript module)."""
    import inspect

    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return None
    return [p.name for p in parameters
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]


def check_rows_independent(module, name):
    """Refuse a module whose outputs for a row depend on the other rows of its batch in
    eval mode: a batch normalisation without running statistics. skcem asks about many rows
    at once, and would check answers on other rows than they were found with."""
    for path, layer in module.named_modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.running_mean is None:
            where = f" at {path!r}" if path else ""
            raise ValueError(
                f"{name} normalises each batch by its own statistics ({type(layer).__name__}"
                f"{where} with track_running_stats=False, which keeps none for eval mode): "
                "its outputs for a row depend on the other rows asked with it, and skcem "
                "asks about many rows at once. Give a module that keeps running statistics "
                "(track_running_stats=True, trained), or one without that layer.")


def call_on_rows(module, rows, input_shape, device, name):
    """``module``'s outputs (a tensor, as it returns them) on the flat ``rows``, in eval mode
    and without gradients; a failure names ``input_shape``. A module whose rows' outputs
    depend on each other is refused (:func:`check_rows_independent`)."""
    check_rows_independent(module, name)
    runner = _OnRows(module, input_shape, device)
    try:
        with torch.no_grad(), evaluating(module):
            outputs = module(runner.tensor(rows).reshape((-1,) + runner.input_shape))
    except Exception as exc:  # PyTorch raises many kinds; their first line says what it was
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        first = lines[0][:200] if lines else type(exc).__name__
        arguments = _forward_arguments(module)
        if arguments is not None and len(arguments) != 1:
            raise ValueError(f"{name} fails on a tensor of rows ({first}): its forward takes "
                             f"{len(arguments)} arguments {arguments}; skcem passes one tensor "
                             "(wrap it in a module whose forward takes one, and splits it "
                             "where it needs several).") from exc
        if isinstance(exc, (RuntimeError, TypeError)) and "Float" in str(exc) and any(
                isinstance(layer, (torch.nn.Embedding, torch.nn.EmbeddingBag))
                for layer in module.modules()):
            # token ids: an Embedding wants integers, and skcem's rows are floats (they are
            # what the search moves and differentiates)
            raise ValueError(f"{name} fails on rows of floats ({first}): its Embedding takes "
                             "integer ids, and skcem passes the rows as float tensors. Cast "
                             "them in forward (x.long()) for the similarity explainer; the "
                             "CEM and counterfactual searches cannot move token ids.") from exc
        if name == "`autoencoder`":  # its shape is the classifier's, or flat rows
            raise ValueError(f"{name} fails on rows reshaped to {tuple(input_shape)} "
                             f"({first}) and on flat rows: an auto-encoder takes rows of the "
                             "classifier's `input_shape`, or flat rows (wrap it as "
                             "nn.Sequential(nn.Flatten(), autoencoder) or reshape in its "
                             "forward).") from exc
        raise ValueError(f"{name} fails on rows reshaped to {tuple(input_shape)} ({first}); "
                         "pass the `input_shape` it takes (one instance's, without the batch "
                         "dimension: such as (1, 28, 28) for a Conv2d network on 28x28 "
                         "images), or a module whose forward takes one tensor.") from exc
    if not isinstance(outputs, torch.Tensor):
        raise TypeError(f"{name} must return one tensor of outputs per row (a classifier's "
                        f"logits or probabilities); its forward returns a "
                        f"{type(outputs).__name__}. Wrap it in a module that returns only "
                        "those outputs.")
    return rows_first(outputs, len(rows), name)


def rows_first(outputs, n_rows, name="`estimator`"):
    """``outputs``, whose first axis must be the ``n_rows`` rows: an output with the batch
    elsewhere (transposed logits, sequence-first layers) would be read as other rows'."""
    if outputs.dim() == 0 or outputs.shape[0] != n_rows:
        raise ValueError(f"{name} returned outputs of shape {tuple(outputs.shape)} for "
                         f"{n_rows} rows: their first axis must be the rows (the batch), as "
                         "for a module's input. Wrap it in a module that returns them so.")
    return outputs


def last_activation(module, rows, input_shape, device):
    """The module's flattened outputs on ``rows`` and what it ends in (see
    :data:`_ACTIVATIONS`), with the name of its last layer.

    The layer that produced the very tensor the module returned tells, when it is one of
    :data:`_ACTIVATIONS`; a function applied in ``forward`` after it hides it (None).
    """
    produced = []  # (output, layer): kept alive, so that no later tensor reuses its id

    def record(layer, inputs, output):
        produced.append((output, layer))

    # a torch.compile'd module's layers run in its compiled graph, without hooks: its
    # original module, the same layers and weights, tells
    module = getattr(module, "_orig_mod", module)
    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    scripted = isinstance(module, torch.jit.ScriptModule)
    if scripted:
        leaves = []  # TorchScript takes no hooks: its outputs on the rows tell what they are
    with module_lock(module):  # the hooks see this thread's call only
        handles = [leaf.register_forward_hook(record) for leaf in leaves]
        try:
            outputs = call_on_rows(module, rows, input_shape, device, "`estimator`")
        finally:
            for handle in handles:
                handle.remove()
    last = next((layer for output, layer in reversed(produced) if output is outputs), None)
    check_scores_per_row(outputs.shape)
    flat = host_numpy(outputs.reshape(len(outputs), -1))
    for layer_type, activation in _ACTIVATIONS:
        if isinstance(last, layer_type):
            return flat, activation, type(last).__name__
    if scripted and _ends_in_scripted_linear(module, flat):
        return flat, "linear", "Linear"
    return flat, None, type(last or module).__name__


def _ends_in_scripted_linear(module, outputs):
    """Whether a TorchScript module's outputs, several per row that are no distribution,
    come from a last layer that is an ``nn.Linear``: logits, as its outputs alone would be
    taken, without the warning that its last layer cannot be seen."""
    leaves = [m for m in module.modules() if next(m.children(), None) is None]
    if not leaves or getattr(leaves[-1], "original_name", None) != "Linear" or \
            outputs.shape[1] < 2:
        return False
    return not (outputs.min() >= 0 and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-4))


def detect_output_kind(model, sample, input_shape=None, device=None):
    """What the classifier ``model`` outputs (see :func:`skcem._gradients.detect_output_kind`):
    told by a final ``nn.Softmax``, ``nn.LogSoftmax``, ``nn.Sigmoid`` or ``nn.Linear``, else
    by its outputs on the ``sample`` rows."""
    device = resolve_device(model, device)
    shape = resolve_input_shape(model, input_shape, sample.shape[1])
    module = on_device(model, device)
    outputs, activation, last = last_activation(module, sample, shape, device)
    return output_kind(outputs, activation, last=last)


def make_backend(model, *, input_shape, n_features, output_kind, autoencoder, device=None):
    """The :class:`TorchBackend` of ``model`` (the framework contract of
    :func:`skcem._gradients.make_backend`); ``autoencoder(shape)`` makes the auto-encoder term
    for the model's input shape."""
    device = resolve_device(model, device)
    shape = resolve_input_shape(model, input_shape, n_features)
    module = on_device(model, device)
    call_on_rows(module, np.zeros((1, n_features)), shape, device, "`estimator`")
    return TorchBackend(module, shape, autoencoder(shape), output_kind, device)


def make_autoencoder(model, input_shape, n_features, device=None):
    """The :class:`TorchAutoencoder` term of ``model``: on rows of the classifier's
    ``input_shape`` unless it starts with an ``nn.Linear``, ``nn.Flatten`` or ``nn.Unflatten``
    (flat rows), on ``device`` (default: where its parameters are)."""
    device = resolve_device(model, device)
    first = _first_layer(model)
    # a first Linear, Flatten or Unflatten takes flat rows, whatever the classifier's shape
    flat = isinstance(first, (nn.Linear, nn.Flatten, nn.Unflatten))
    shape = (n_features,) if flat else input_shape
    shape = resolve_input_shape(model, shape, n_features, name="`autoencoder`")
    if isinstance(first, nn.Conv2d) and len(shape) == 3 and shape[-1] == first.in_channels \
            and shape[0] != first.in_channels:
        # a channels-last classifier's shape (a Keras CNN's): one channel is the same rows
        # channels first; several are laid out otherwise, which a reshape cannot mend
        if shape[-1] != 1:
            raise ValueError(
                f"`autoencoder` starts with nn.Conv2d({first.in_channels}, ...), channels "
                f"first, but the rows are images of shape {shape}, channels last (the "
                "classifier's): give an auto-encoder that takes them so (one that permutes "
                "them to channels first and back), or one of the classifier's framework.")
        shape = (1,) + shape[:-1]
    module = on_device(model, device)
    try:
        reconstruction = call_on_rows(module, np.zeros((1, n_features)), shape, device,
                                      "`autoencoder`")
    except ValueError:
        if shape == (n_features,):
            raise
        # a module of the user's own (not nn.Sequential) whose first layer takes flat rows
        try:
            reconstruction = call_on_rows(module, np.zeros((1, n_features)), (n_features,),
                                          device, "`autoencoder`")
        except ValueError:
            pass
        else:
            shape = (n_features,)
        if shape != (n_features,):
            raise
    check_reconstruction(host_numpy(reconstruction), n_features)
    return TorchAutoencoder(module, shape, device)


class TorchAutoencoder(_OnRows):
    """``||AE(z) - z||^2`` per row and its gradient, by autograd."""

    role = "`autoencoder`"

    def loss_tensor(self, z, fast_layout=True):
        z = self.tensor(z)  # in the auto-encoder's dtype, which may not be the classifier's
        # its own copy: z is subtracted after the call, which a module writing into its
        # input would have changed before its write is noticed
        return torch.sum((self.raw_forward(z.clone(), fast_layout) - z) ** 2, dim=1)

    def gradient_tensor(self, z):
        """``(loss, its gradient)`` at the rows ``z`` (a tensor), in the auto-encoder's
        dtype."""
        z = self.tensor(z).detach().requires_grad_()
        with torch.enable_grad():
            loss = self.loss_tensor(z)
            grad = _input_gradient(loss.sum(), z)
        return loss.detach(), grad

    def loss(self, Z):
        with torch.no_grad(), evaluating(self.module):
            return _numpy(self.loss_tensor(self.tensor(Z)))

    def __call__(self, Z):
        with evaluating(self.module):
            loss, grad = self.gradient_tensor(self.tensor(Z))
        return _numpy(loss), _numpy(grad)


def _numpy(tensor):
    return tensor.detach().cpu().to(torch.float64).numpy()


def host_numpy(tensor):
    """``tensor`` as a numpy array on the host, in its dtype (float32 for bfloat16, which
    numpy lacks)."""
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


class TorchBackend(_OnRows):
    """Answers the optimizer's questions for a PyTorch classifier.

    Each iteration is a forward pass at the iterates and a forward and backward pass at the
    slack points of the classifier (the hinge's gradient with respect to the probabilities,
    from :mod:`skcem.costs`, is the cotangent of the backward pass) and, with a PyTorch
    auto-encoder on the same device, of the auto-encoder. ``output_kind`` (see
    :func:`skcem._gradients._outputs.output_kind`) says how the module's outputs become class
    probabilities.
    """

    def __init__(self, module, input_shape, autoencoder=None, output_kind="probabilities",
                 device=None):
        super().__init__(module, input_shape, device or module_device(module))
        self.autoencoder = autoencoder
        self.output_kind = output_kind
        self.n_model_rows = 0
        self.xp = TorchNamespace(self.device)
        self._fused_ae = isinstance(autoencoder, TorchAutoencoder) and \
            autoencoder.device == self.device

    def array_place(self):
        """Where the optimizer's batch lives (:mod:`skcem._array_api`): on the module's
        device, as float64 tensors (float32 where the device has no float64), when this
        backend answers every question there; else (an auto-encoder of another kind) on
        the host."""
        if self.autoencoder is not None and not self._fused_ae:
            return HOST
        float_dtype = torch.float32 if self.device.type == "mps" else torch.float64
        return ArrayPlace(namespace(torch.empty(0, device=self.device)), self.device,
                          float_dtype)

    def forward(self, z, fast_layout=False):
        outputs = self.raw_forward(z, fast_layout)
        if outputs.dtype in (torch.float16, torch.bfloat16):
            # probabilities of a half-precision module's outputs in float32: bfloat16's sum
            # to 1 only within 1e-2
            outputs = outputs.float()
        return as_probabilities(outputs, self.output_kind)

    def predict_proba(self, Z):
        self.n_model_rows += Z.shape[0]
        with torch.no_grad(), evaluating(self.module), self.search_threads(Z.size):
            return _numpy(self.forward(self.tensor(Z)))

    def predict(self, Z):
        """Class indices: a classifier module predicts the most probable class."""
        return self.predict_proba(Z).argmax(axis=1)

    def evaluate(self, Z_adv, Z_s, target_onehot, loss, *, with_attack_grad=True,
                 with_ae_grad=False, with_ae_loss_at_adv=False):
        """Probabilities at ``Z_adv``; gradients of ``loss`` (and AE) at ``Z_s``."""
        fused_ae = with_ae_grad and self._fused_ae
        ae = self.autoencoder if fused_ae else None
        answer = {}
        with ExitStack() as stack:
            stack.enter_context(evaluating(self.module, None if ae is None else ae.module))
            z_adv = self.tensor(Z_adv)
            z_s = self.tensor(Z_s) if with_attack_grad or fused_ae else None
            # Without momentum the slack points are the iterates: the forward passes at the
            # slack points then answer for the iterates too (the same values).
            same = z_s is not None and z_s.shape == z_adv.shape and torch.equal(z_s, z_adv)
            if with_attack_grad:
                z = z_s.detach().requires_grad_()
                with torch.enable_grad():
                    proba = self.forward(z, fast_layout=True)
                    cotangent = loss.gradient(proba.detach(), self.tensor(target_onehot),
                                              xp=self.xp)
                    answer["attack_grad"] = _input_gradient(proba, z, cotangent)
                if same:
                    answer["proba_adv"] = proba.detach()
            if fused_ae:
                ae_loss, answer["ae_grad"] = ae.gradient_tensor(z_s)
                if with_ae_loss_at_adv and same:
                    answer["ae_loss_adv"] = ae_loss
            with torch.no_grad():
                if "proba_adv" not in answer:
                    answer["proba_adv"] = self.forward(z_adv, fast_layout=True)
                if fused_ae and with_ae_loss_at_adv and "ae_loss_adv" not in answer:
                    answer["ae_loss_adv"] = ae.loss_tensor(z_adv)
        self.n_model_rows += Z_adv.shape[0] + (Z_s.shape[0] if with_attack_grad else 0)
        if isinstance(Z_adv, torch.Tensor):  # the search runs here: its arrays stay here
            return Evaluation(**{name: value.detach().to(Z_adv.dtype)
                                 for name, value in answer.items()})
        evaluation = Evaluation(**{name: _numpy(value) for name, value in answer.items()})
        if with_ae_grad and not fused_ae:
            _, evaluation.ae_grad = self.autoencoder(Z_s)
            if with_ae_loss_at_adv:
                evaluation.ae_loss_adv = self.autoencoder.loss(Z_adv)
        return evaluation

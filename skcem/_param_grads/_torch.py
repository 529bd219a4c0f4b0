"""Per-example gradients of the loss with respect to a PyTorch module's trainable parameters.

The reference, :meth:`TorchGradients.__call__`: ``torch.func`` (``vmap`` of ``grad`` of one
example's loss through ``functional_call``). :meth:`TorchGradients.factors` is faster: one
batched forward and backward pass, with hooks recording, for each ``nn.Linear`` and
``nn.Conv2d`` layer, its input ``a`` and the gradient ``δ`` of the summed loss with respect to
its output. ``δ`` of the summed loss is each example's own ``δ`` because the examples of a
batch do not interact in eval mode. ``nn.Linear`` gradients stay factorised (``[a, 1] ⊗ δ``,
see :mod:`._factors`); an ``nn.Conv2d`` kernel's per-example gradient is materialised as
the input's patches (kh kw c_in, P) times ``δ`` (P, c_out) over the ``P`` output positions
(gathered channels-last, one batched product), its bias's as ``Σ_p δ_p``. Other parameters get
``torch.func``'s per-example gradients. The forward pass runs with the convolution kernels (and
a 4-D input) in channels-last layout, and the products of the gradients by torch
(:func:`torch_matmul_t`): see ``doc/performance.rst``, "Gradient similarity of the PyTorch CNN".
"""

from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._gradients._torch import (_OnRows, as_probabilities, call_on_rows, evaluating,
                                 host_numpy, module_lock, on_device, resolve_device,
                                 resolve_input_shape, share_lock, vmap_or_loop)
from ._factors import GradientFactors


def make_gradients(model, *, loss, task, input_shape, output_kind, n_features=None,
                   device=None):
    """The :class:`TorchGradients` of ``model`` (the framework contract of
    :func:`skcem._param_grads.make_param_gradients`)."""
    if not (loss == "auto" or callable(loss)):
        raise ValueError("`loss` must be 'auto' or a callable loss(outputs, targets) on "
                         f"tensors for a PyTorch model; got {loss!r}.")
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError("`estimator` is a TorchScript module, whose per-example parameter "
                        "gradients PyTorch cannot batch (torch.func): pass the nn.Module it "
                        "was scripted or traced from.")
    device = resolve_device(model, device)
    if n_features is None:
        n_features = int(np.prod(input_shape))
    shape = resolve_input_shape(model, input_shape, n_features)
    module = on_device(model, device)
    call_on_rows(module, np.zeros((1, n_features)), shape, device, "`estimator`")
    head = _final_activation(module, output_kind) if loss == "auto" and \
        task == "classification" else None
    if head is not None:  # the loss of the outputs under it (see _final_activation)
        # a plain Sequential of the same layers under their names (slicing a subclass calls
        # its own __init__), serialised with every other use of the module (its layers'
        # train/eval flags are the module's)
        body = nn.Sequential(OrderedDict(list(module.named_children())[:-1]))
        share_lock(body, module)
        return TorchGradients(body, loss, task, shape, _UNDER[output_kind], device,
                              head=head)
    return TorchGradients(module, loss, task, shape, output_kind, device)


# The outputs under a final activation that makes probabilities of them.
_UNDER = {"probabilities": "logits", "sigmoid": "logit"}


def _final_activation(module, output_kind):
    """The last layer of an ``nn.Sequential`` whose probabilities (``output_kind``) it
    makes: an ``nn.Softmax`` over the classes, an ``nn.Sigmoid``; else None.

    The loss is then taken from the logits under it: in float32 a probability rounds to 1
    past a logit margin of about 17, where the cross-entropy's gradient ``p - 1`` of the
    probabilities vanishes (or loses the true class's part), and with it the gradient
    similarity of the rows the model is sure of. The logits' cross-entropy keeps it (see
    :func:`_cross_entropy_of_logits`).
    """
    if not isinstance(module, nn.Sequential) or len(module) < 2:
        return None
    last = module[-1]
    if output_kind == "probabilities" and isinstance(last, nn.Softmax) and \
            last.dim in (1, -1):
        return last
    if output_kind == "sigmoid" and isinstance(last, nn.Sigmoid):
        return last
    return None


def _cross_entropy_of_logits(outputs, y):
    """``-log softmax(outputs)[y]`` per row, written so that its gradient is exact where the
    softmax rounds to 1: ``log(exp(-m) + sum_{j != y} exp(d_j - m)) + m`` with ``d = outputs
    - outputs[y]`` and ``m = max(0, max_j d_j)``. The gradient of the true class's logit is
    then minus the sum of the other classes' probabilities, rather than ``p_y - 1``, which is
    0 in float32 for a row the model is sure of (the direction of its gradient lost)."""
    n = outputs.shape[0]
    true = outputs.gather(1, y.reshape(n, 1))
    is_true = torch.zeros_like(outputs, dtype=torch.bool).scatter(1, y.reshape(n, 1), True)
    others = (outputs - true).masked_fill(is_true, -torch.inf)
    m = torch.clamp(others.max(dim=1, keepdim=True).values, min=0).detach()
    total = torch.exp(-m) + torch.exp(others - m).sum(dim=1, keepdim=True)
    return (m + torch.log(total)).reshape(n)


def _log_probabilities(outputs, kind):
    """Log class probabilities from a classifier's outputs of the given ``kind``."""
    if kind == "logits":
        return torch.log_softmax(outputs, dim=1)
    if kind == "logit":
        return torch.cat([F.logsigmoid(-outputs), F.logsigmoid(outputs)], dim=1)
    tiny = torch.finfo(outputs.dtype).tiny
    return torch.log(torch.clamp(as_probabilities(outputs, kind), min=tiny))


def torch_matmul_t(x, y):
    """``x @ y.T`` by PyTorch, on its own threads.

    numpy's BLAS threads would compete with PyTorch's for the cores (and ignore
    ``torch.set_num_threads``): on two busy cores the products of the gradients took as long
    as the gradients themselves.
    """
    return (torch.from_numpy(x) @ torch.from_numpy(y).T).numpy()


# Rows on which TorchGradients checks its factorised layers (the first rows asked about).
_CHECKED_ROWS = 4


def _close(summed, total):
    """Whether two gradients agree to the rounding of their dtype."""
    scale = float(total.abs().max()) if total.numel() else 0.0
    eps = torch.finfo(total.dtype).eps
    return float((summed - total).abs().max()) <= 1e3 * eps * max(scale, eps) if \
        total.numel() else True


def _factorisable_linear(layer):
    return type(layer) is nn.Linear and layer.weight.requires_grad and \
        (layer.bias is None or layer.bias.requires_grad)


def _batched_conv(layer):
    return type(layer) is nn.Conv2d and layer.groups == 1 and \
        layer.padding_mode == "zeros" and layer.weight.requires_grad and \
        (layer.bias is None or layer.bias.requires_grad)


def _explicit_padding(layer, inputs):
    """``inputs`` padded as ``layer`` pads them (zeros), for a convolution without padding."""
    if layer.padding == "valid":
        return inputs
    if layer.padding == "same":  # stride 1: PyTorch pads the extra row or column at the end
        pads = []
        for size, dilation in zip(layer.kernel_size[::-1], layer.dilation[::-1]):
            total = dilation * (size - 1)
            pads += [total // 2, total - total // 2]
    else:
        pads = [p for p in layer.padding[::-1] for _ in range(2)]
    return F.pad(inputs, pads) if any(pads) else inputs


def conv_gradients(layer, inputs, delta):
    """Per-example gradients of an ``nn.Conv2d`` weight and bias, flattened like them.

    ``inputs`` (n, c_in, h, w) is the layer's input and ``delta`` (n, c_out, h', w') the
    gradient with respect to its output. The weight's gradient is the input's patches
    (kh kw c_in, P) times ``δ`` (P, c_out) over the ``P`` output positions, one batched
    product. The patches are gathered in channels-last layout, where each is ``kh kw`` runs of
    ``c_in`` contiguous numbers (a strided view, one copy), several times faster than
    ``unfold``'s gather of single numbers in channels-first layout.
    """
    n, c_in = inputs.shape[:2]
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
    rows = _explicit_padding(layer, inputs).permute(0, 2, 3, 1).contiguous()  # (n, h, w, c_in)
    out_h, out_w = delta.shape[2:]
    s_n, s_h, s_w, s_c = rows.stride()
    patches = rows.as_strided((n, out_h, out_w, kh, kw, c_in),
                              (s_n, s_h * sh, s_w * sw, s_h * dh, s_w * dw, s_c))
    patches = patches.reshape(n, out_h * out_w, kh * kw * c_in)
    delta = delta.permute(0, 2, 3, 1).reshape(n, out_h * out_w, -1)  # (n, P, c_out)
    # (n, kh kw c_in, c_out): for one input channel, three times as fast as the transposed
    # product, and no slower otherwise
    kernel = torch.bmm(patches.transpose(1, 2), delta)
    # the weight's own order, (c_out, c_in, kh, kw)
    grads = [kernel.reshape(n, kh, kw, c_in, -1).permute(0, 4, 3, 1, 2).reshape(n, -1)]
    if layer.bias is not None:
        grads.append(delta.sum(dim=1))
    return grads


class TorchGradients(_OnRows):
    """Flattened (or factorised) per-example gradients of a module's loss, batch by batch.

    With ``loss="auto"``, the cross-entropy of the class probabilities for classification
    (outputs of ``output_kind`` converted, as in the CEM path) and the squared error averaged
    over the outputs for regression; else ``loss(outputs, targets)``, one value per example.
    """

    def __init__(self, module, loss, task, input_shape, output_kind=None, device=None,
                 head=None):
        super().__init__(module, input_shape, device)
        self.head = head  # a final activation the module's outputs go through (see outputs)
        self.loss = loss
        self.task = task
        self.output_kind = output_kind or "probabilities"
        self.params = {name: p for name, p in module.named_parameters() if p.requires_grad}
        if not self.params:
            raise ValueError("`estimator` has no trainable parameters: there is no gradient "
                             "to compare.")
        self.n_params = int(sum(p.numel() for p in self.params.values()))
        self.dense_layers, self.conv_layers = self._layers_called_once()
        self._set_other_names()
        self._checked = False
        self._float_targets = None  # see _one_output_targets

    def _set_other_names(self):
        done = {id(p) for layer in self.dense_layers + self.conv_layers
                for p in layer.parameters(recurse=False)}
        self.other_names = [name for name, p in self.params.items() if id(p) not in done]

    def _layers_called_once(self):
        """The ``nn.Linear`` (on 2-D inputs) and ``nn.Conv2d`` layers called once per forward
        pass, whose gradients come from their inputs and output gradients."""
        layers = [m for m in self.module.modules() if _factorisable_linear(m) or _batched_conv(m)]
        calls = {id(layer): [] for layer in layers}
        with torch.no_grad(), evaluating(self.module):  # the hooks see this thread's call
            handles = [layer.register_forward_hook(
                lambda layer, inputs, output: calls[id(layer)].append(inputs[0].dim()))
                for layer in layers]
            try:
                self.raw_forward(torch.zeros((1, int(np.prod(self.input_shape))),
                                             dtype=self.dtype, device=self.device))
            finally:
                for handle in handles:
                    handle.remove()
        dense = [layer for layer in layers if isinstance(layer, nn.Linear)
                 and calls[id(layer)] == [2]]
        conv = [layer for layer in layers if isinstance(layer, nn.Conv2d)
                and calls[id(layer)] == [4]]
        return dense, conv

    def losses(self, outputs, y):
        """One loss per example: a tensor of shape (n,)."""
        n = y.shape[0]
        if self.loss != "auto":
            if self.task == "regression" and y.shape != outputs.shape and \
                    y.numel() == outputs.numel():
                # targets (n,) of outputs (n, 1): PyTorch's losses would broadcast them to
                # (n, n)
                y = y.reshape(outputs.shape)
            elif self.task == "classification" and outputs.numel() == n and \
                    self._float_targets is not False:
                y = self._one_output_targets(outputs, y)
            value = self.loss(outputs, y)
            if not isinstance(value, torch.Tensor) or value.numel() != n:
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value)
                raise ValueError(f"`loss` must return one loss per example ({n} here) as a "
                                 f"tensor; got {shape} from outputs of shape "
                                 f"{tuple(outputs.shape)} and targets of shape "
                                 f"{tuple(y.shape)}. " + (
                                     "Reduce the losses of each row's outputs to one, "
                                     "such as lambda outputs, targets: nn.MSELoss("
                                     "reduction='none')(outputs, targets).mean(dim=1)."
                                     if isinstance(value, torch.Tensor)
                                     and value.shape == outputs.shape and value.ndim > 1
                                     else "Use reduction='none', and targets of the "
                                     "outputs' shape."))
            return value.reshape(n)
        outputs = outputs.reshape(n, -1)
        if outputs.dtype in (torch.float16, torch.bfloat16):
            outputs = outputs.float()  # a half-precision module's loss in float32
        if self.task == "classification":
            if self.output_kind == "logits":
                return _cross_entropy_of_logits(outputs, y)
            log_p = _log_probabilities(outputs, self.output_kind)
            return -log_p.gather(1, y.reshape(n, 1)).reshape(n)
        return torch.mean((outputs - y.reshape(n, -1)) ** 2, dim=1)

    def _one_output_targets(self, outputs, y):
        """A one-output classifier's targets (a logit, a sigmoid): class indices where the
        loss takes them (one that reshapes them itself), else floats of the outputs' shape,
        which its standard losses take (``nn.BCEWithLogitsLoss``, ``nn.BCELoss``, which refuse
        indices of another shape on any number of rows). Decided at the first call (fit's
        check of the loss)."""
        if self._float_targets is None:
            try:
                value = self.loss(outputs, y)
                fits = isinstance(value, torch.Tensor) and value.numel() == y.shape[0]
            except Exception:  # each loss raises its own kinds: the other form then
                fits = False
            self._float_targets = not fits
        return y.reshape(outputs.shape).to(outputs.dtype) if self._float_targets else y

    def _targets(self, y):
        y = np.asarray(y)
        if self.task == "classification" and y.dtype.kind in "iub":
            with torch.inference_mode(False):  # a tensor autograd takes (see evaluating)
                return torch.as_tensor(y.astype(np.int64), device=self.device)
        return self.tensor(y)

    def __call__(self, X, y):
        """The flattened per-example gradients (parameters in ``named_parameters`` order):
        ndarray of shape (n, n_params)."""
        grads = self._per_example(self.tensor(X), self._targets(y), list(self.params))
        return host_numpy(torch.cat(grads, dim=1))

    def _per_example(self, x, y, names):
        """``torch.func``'s per-example gradients of the parameters ``names``, flattened."""
        from torch.func import functional_call, grad

        wanted = {name: self.params[name].detach() for name in names}

        def one_loss(params, x_one, y_one):
            out = functional_call(self.module, params, (x_one.reshape((1,) + self.input_shape),),
                                  strict=False)
            return self.losses(out, y_one[None]).sum()

        # the parameters left out of ``wanted`` would otherwise connect the gradients to them
        with evaluating(self.module), torch.no_grad():
            grads = vmap_or_loop(grad(one_loss), in_dims=(None, 0, 0))(wanted, x, y)
        return [grads[name].detach().reshape(len(x), -1) for name in names]

    def outputs(self, X):
        """The module's outputs on the rows of ``X``, flattened: ndarray of shape (n, n_outputs)."""
        with torch.no_grad(), evaluating(self.module):
            outputs = self.raw_forward(self.tensor(X))
            return host_numpy(outputs if self.head is None else self.head(outputs))

    def _channels_last_forward(self, x):
        """The module's outputs on ``x``, its convolution kernels and the input channels-last
        (see :meth:`~skcem._gradients._torch._OnRows.channels_last_forward`), the kernels'
        gradients flowing back to them."""
        if not self.conv_layers:
            return self.raw_forward(x)
        kernels = {name: p for name, p in self.params.items() if p.dim() == 4}
        return self.channels_last_forward(x, kernels)

    def _recorded_forward(self, x, y, layers):
        """The summed loss of the rows ``x``, and each call of ``layers`` in it: ``{id(layer):
        [(input, output), ...]}``. Each output is handed on as a copy: an in-place operation
        after the layer (``nn.ReLU(inplace=True)``) changes the copy, not the output whose
        gradient is the layer's ``δ``."""
        recorded = {id(layer): [] for layer in layers}

        def record(layer, inputs, output):
            recorded[id(layer)].append((inputs[0].detach(), output))
            return output.clone()

        handles = [layer.register_forward_hook(record) for layer in layers]
        try:
            value = self.losses(self._channels_last_forward(x), y).sum()
        finally:
            for handle in handles:
                handle.remove()
        return value, recorded

    def _check_layers(self, x, y):
        """Keeps factorised only the layers whose per-example gradients, summed over the rows
        ``x``, are their parameters' gradient: a layer called on other rows than the
        examples (a batch folded into rows), or whose parameters are used elsewhere too (a
        weight tied to an embedding's), gets ``torch.func``'s gradients instead."""
        layers = self.dense_layers + self.conv_layers
        n = x.shape[0]
        # all under the module's lock: another thread's functional_call swaps its parameters
        with evaluating(self.module), torch.enable_grad():
            if self._checked or not layers:
                self._checked = True
                return
            value, recorded = self._recorded_forward(x, y, layers)
            called = [layer for layer in layers if len(recorded[id(layer)]) == 1
                      and recorded[id(layer)][0][0].shape[0] == n
                      and recorded[id(layer)][0][1].shape[0] == n]
            params = [list(layer.parameters(recurse=False)) for layer in called]
            grads = torch.autograd.grad(
                value, [recorded[id(layer)][0][1] for layer in called]
                + [p for own in params for p in own], allow_unused=True) if called else []
            deltas, totals = grads[:len(called)], list(grads[len(called):])
            kept = set()
            for layer, delta, own in zip(called, deltas, params):
                total = [totals.pop(0) for _ in own]
                a = recorded[id(layer)][0][0]
                if delta is None or any(t is None for t in total):
                    continue
                if isinstance(layer, nn.Conv2d):
                    summed = [g.sum(dim=0) for g in conv_gradients(layer, a, delta)]
                else:
                    summed = [delta.T @ a] + ([delta.sum(dim=0)] if layer.bias is not None
                                              else [])
                if all(_close(s.reshape(-1), t.reshape(-1)) for s, t in zip(summed, total)):
                    kept.add(id(layer))
            self.dense_layers = [layer for layer in self.dense_layers if id(layer) in kept]
            self.conv_layers = [layer for layer in self.conv_layers if id(layer) in kept]
            self._set_other_names()
            self._checked = True

    def factors(self, X, y):
        """The gradients of ``X`` as :class:`GradientFactors`, ``nn.Linear`` layers factorised."""
        x, y = self.tensor(X), self._targets(y)
        if not self._checked:
            self._check_layers(x[:_CHECKED_ROWS], y[:_CHECKED_ROWS])
        with module_lock(self.module):  # the layers as checked, whichever thread checked
            dense_layers, conv_layers = self.dense_layers, self.conv_layers
            other_names = self.other_names
        layers = dense_layers + conv_layers

        with evaluating(self.module), torch.enable_grad():  # the hooks see this thread's call
            value, recorded = self._recorded_forward(x, y, layers)
            outputs = [recorded[id(layer)][0][1] for layer in layers]
            deltas = torch.autograd.grad(value, outputs, allow_unused=True) if layers else []
        deltas = [torch.zeros_like(out) if d is None else d for out, d in zip(outputs, deltas)]
        dense = []
        for layer, delta in zip(dense_layers, deltas):
            a = recorded[id(layer)][0][0]
            if layer.bias is not None:
                a = torch.cat([a, torch.ones((len(a), 1), dtype=a.dtype, device=a.device)], 1)
            dense.append((host_numpy(a), host_numpy(delta)))
        rest = []
        for layer, delta in zip(conv_layers, deltas[len(dense_layers):]):
            rest += conv_gradients(layer, recorded[id(layer)][0][0], delta)
        if other_names:
            rest += self._per_example(x, y, other_names)
        other = host_numpy(torch.cat(rest, dim=1)) if rest else None
        return GradientFactors(dense, other, matmul=torch_matmul_t)

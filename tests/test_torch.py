import copy
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from collections import OrderedDict

import numpy as np
import pytest

from skcem import (CEMExplainer, CounterfactualExplainer, ExplanationNotFoundWarning,
                   GradientSimilarityExplainer)
from skcem._param_grads import make_param_gradients

torch = pytest.importorskip("torch")
nn = torch.nn

FAST = dict(max_iterations=200, c_steps=4)
IMAGE = dict(no_info_val=0.0, feature_range=(0.0, 1.0))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tensors of a few rows: one thread is fastest (threads that wait on each other cost
    milliseconds per operation on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images(digits):
    X, y = digits
    return X.astype(np.float32), y


def _train(module, X, y, steps=80):
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(module.parameters(), lr=2e-2)
    inputs, targets = torch.as_tensor(X), torch.as_tensor(y)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(module(inputs), targets).backward()
        optimizer.step()
    module.zero_grad(set_to_none=True)
    return module


def _conv_layers():
    torch.manual_seed(0)
    return [nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(),
            nn.Linear(4 * 6 * 6, 10)]


@pytest.fixture(scope="module")
def logits_cnn(images):
    """A small CNN on (1, 8, 8) digits, ending in logits (its first layer reshapes rows,
    so that training takes flat rows; the explainers are given (1, 8, 8) images)."""
    X, y = images
    module = _train(nn.Sequential(*_conv_layers()), X[:1200], y[:1200])
    return nn.Sequential(*list(module)[1:]).eval()


def _predict(module, rows, shape=(1, 8, 8)):
    with torch.no_grad():
        dtype = next(module.parameters()).dtype
        out = module(torch.as_tensor(rows, dtype=dtype).reshape((-1,) + shape))
    return out.argmax(dim=1).numpy()


def _explain(explainer, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        return explainer.explain(X)


def test_pn_pp_and_counterfactuals_are_valid_by_the_module_itself(logits_cnn, images):
    X, _ = images
    test = X[1200:1210]
    for mode in ("PN", "PP"):
        exp = _explain(CEMExplainer(logits_cnn, mode=mode, input_shape=(1, 8, 8), **IMAGE,
                                    **FAST).fit(X[:300]), test)
        assert exp.found.mean() >= 0.4  # PNs 6 of 10 here
        pred = _predict(logits_cnn, exp.explanation[exp.found])
        np.testing.assert_array_equal(pred, exp.explanation_pred[exp.found])
        np.testing.assert_array_equal(exp.X_pred, _predict(logits_cnn, test))
        if mode == "PN":
            assert np.all(pred != exp.X_pred[exp.found])
        else:
            assert np.all(pred == exp.X_pred[exp.found])
    cf = _explain(CounterfactualExplainer(logits_cnn, input_shape=(1, 8, 8), max_iterations=200)
                  .fit(X[:300]), test)
    assert cf.found.mean() >= 0.7
    pred = _predict(logits_cnn, cf.explanation[cf.found])
    assert np.all(pred != cf.X_pred[cf.found])


def test_the_module_is_left_as_it_was(logits_cnn, images):
    X, y = images
    module = logits_cnn.train()  # dropout-free: only the flags tell
    before = [p.detach().clone() for p in module.parameters()]
    try:
        CEMExplainer(module, mode="PN", input_shape=(1, 8, 8), **IMAGE, max_iterations=10,
                     c_steps=1).fit(X[:100]).transform(X[1200:1202])
        GradientSimilarityExplainer(module, input_shape=(1, 8, 8)).fit(
            X[:20], y[:20]).transform(X[1200:1202])
        assert all(m.training for m in module.modules())
        assert all(p.grad is None for p in module.parameters())
        assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))
        # The search's channels-last kernels are copies: the module keeps its memory layout.
        assert all(p.is_contiguous() for p in module.parameters())
    finally:
        module.eval()


def test_the_search_follows_weights_changed_after_fit(logits_cnn, images):
    """On a CPU the search runs a convolutional module with channels-last copies of its
    kernels: changing the module's weights after ``fit`` must reach them, or the search
    would chase the old model and the module's own check would reject its answers."""
    X, _ = images
    module = copy.deepcopy(logits_cnn)
    cem = CEMExplainer(module, mode="PN", input_shape=(1, 8, 8), **IMAGE, **FAST).fit(X[:200])
    assert cem._get_backend().convolutional
    before = _explain(cem, X[1200:1208])
    with torch.no_grad():  # another model: the classes' last-layer rows swapped around
        last = module[-1]
        last.weight.copy_(last.weight.roll(3, dims=0))
        last.bias.copy_(last.bias.roll(3, dims=0))
    after = _explain(cem, X[1200:1208])
    assert not np.array_equal(after.X_pred, before.X_pred)
    assert after.found.sum() >= 3  # 5 of 8 here
    np.testing.assert_array_equal(_predict(module, after.explanation[after.found]),
                                  after.explanation_pred[after.found])
    assert np.all(after.explanation_pred[after.found] != after.X_pred[after.found])


def test_attack_and_autoencoder_gradients_equal_central_differences(images):
    from skcem._gradients import make_backend
    from skcem.costs import NegLogLikelihood, one_hot

    X, _ = images
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(108, 10)).double()
    ae = nn.Sequential(nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 64)).double()
    backend = make_backend(cnn, eps=1e-3, n_features=64, input_shape=(1, 8, 8),
                           output_kind="logits", autoencoder=ae)
    Z = X[1200:1203].astype(float)
    target = one_hot(np.array([0, 3, 7]), 10)
    loss = NegLogLikelihood()
    answer = backend.evaluate(Z, Z, target, loss, with_ae_grad=True, with_ae_loss_at_adv=True)

    def objective(rows):
        return loss.value(backend.predict_proba(rows), target) + backend.autoencoder.loss(rows)

    step = 1e-6
    numerical = np.empty_like(Z)
    for j in range(Z.shape[1]):
        shift = np.zeros_like(Z)
        shift[:, j] = step
        numerical[:, j] = (objective(Z + shift) - objective(Z - shift)) / (2 * step)
    np.testing.assert_allclose(answer.attack_grad + answer.ae_grad, numerical, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(answer.ae_loss_adv, backend.autoencoder.loss(Z))


def test_an_autoencoder_of_another_dtype_runs_in_its_own(images):
    # a float32 auto-encoder beside a float64 classifier: PyTorch's dtype error before
    from skcem._gradients import make_backend
    from skcem.costs import NegLogLikelihood, one_hot

    X, _ = images
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(108, 10)).double()
    ae = nn.Sequential(nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 64))
    Z = X[1200:1203].astype(float)
    target = one_hot(np.array([0, 3, 7]), 10)
    answers = [make_backend(cnn, eps=1e-3, n_features=64, input_shape=(1, 8, 8),
                            output_kind="logits", autoencoder=twin).evaluate(
        Z, Z, target, NegLogLikelihood(), with_ae_grad=True, with_ae_loss_at_adv=True)
        for twin in (ae, copy.deepcopy(ae).double())]
    np.testing.assert_allclose(answers[0].ae_loss_adv, answers[1].ae_loss_adv, rtol=1e-5)
    np.testing.assert_allclose(answers[0].ae_grad, answers[1].ae_grad, rtol=1e-4, atol=1e-5)
    assert next(ae.parameters()).dtype == torch.float32  # the user's module as it was
    exp = _explain(CEMExplainer(cnn, mode="PN", autoencoder=ae, gamma=1.0, input_shape=(1, 8, 8),
                                **IMAGE, **FAST).fit(X[:300]), X[1200:1203])
    assert exp.found.any()


def test_a_bfloat16_module_is_explained(logits_cnn, images):
    # numpy has no bfloat16: "Got unsupported ScalarType BFloat16" before
    X, y = images
    half = copy.deepcopy(logits_cnn).to(torch.bfloat16)
    shape = dict(input_shape=(1, 8, 8))
    exp = _explain(CounterfactualExplainer(half, feature_range=(0.0, 1.0), **shape).fit(X[:300]),
                   X[1200:1204])
    assert exp.found.all()
    with torch.no_grad():
        own = half(torch.as_tensor(exp.explanation, dtype=torch.bfloat16).reshape(-1, 1, 8, 8))
    np.testing.assert_array_equal(exp.explanation_pred.astype(int), own.argmax(1).numpy())
    assert np.all(exp.explanation_pred != exp.X_pred)
    # bfloat16 keeps three digits: the scores follow the float32 module's, and a training
    # row is the most like itself
    train = np.r_[0:40, 1200:1202]
    scores, exact = (GradientSimilarityExplainer(module, sim_fn="grad_cos", **shape)
                     .fit(X[train], y[train]).transform(X[1200:1202])
                     for module in (half, logits_cnn))
    assert np.corrcoef(scores.ravel(), exact.ravel())[0, 1] > 0.9
    np.testing.assert_array_equal(scores.argmax(axis=1), [40, 41])


@pytest.mark.parametrize("options", [dict(), dict(stride=2, padding=1), dict(dilation=2),
                                     dict(padding="same"), dict(padding=(2, 0), stride=(1, 3)),
                                     dict(padding="valid", bias=False)])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
@pytest.mark.parametrize("channels", [(1, 5), (4, 1)])
def test_single_channel_convolutions_equal_pytorchs(options, layout, channels):
    """Convolutions from one channel take their input gradient, and channels-last ones to one
    channel (stride and dilation 1) their outputs, from matrix products inside the search's
    forward passes: the same values as PyTorch's own, for every geometry."""
    from skcem._gradients._torch import channels_last
    from skcem._gradients._torch_layers import FasterLayers

    torch.manual_seed(0)
    options = dict(options)
    bias = options.pop("bias", True)
    conv = nn.Conv2d(*channels, 3, bias=bias, **options).double()
    x = torch.randn(4, channels[0], 11, 12, dtype=torch.float64)
    weights = {name: p.detach() for name, p in conv.named_parameters()}
    if layout == "channels_last":
        weights["weight"] = channels_last(weights["weight"])
        x = channels_last(x)
    cotangent = torch.randn_like(conv(x))
    answers = []
    for mode in (FasterLayers, None):
        z = x.clone().requires_grad_()
        with mode() if mode else torch.enable_grad():
            out = torch.func.functional_call(conv, weights, (z,))
            with torch.no_grad():
                out_no_grad = torch.func.functional_call(conv, weights, (z,))
        (grad,) = torch.autograd.grad(out, z, cotangent)
        answers.append((out.detach(), out_no_grad, grad, out.grad_fn.name()))
    ours, pytorchs = answers
    to_one = (channels[1] == 1 and "stride" not in options and "dilation" not in options
              and layout == "channels_last")
    expected = "_ToOneChannel" if to_one else "_FromOneChannel" if channels[0] == 1 else \
        pytorchs[3]
    assert ours[3].startswith(expected)
    for mine, theirs in zip(ours[:3], pytorchs[:3]):
        np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)



def _pools_before_relu(grad_fn):
    """Whether the autograd graph from ``grad_fn`` has a ReLU of a max pooling."""
    seen, nodes = set(), [grad_fn]
    while nodes:
        node = nodes.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        inputs = [next_node for next_node, _ in node.next_functions]
        if node.name().startswith("ReluBackward") and any(
                n is not None and n.name().startswith("MaxPool2D") for n in inputs):
            return True
        nodes.extend(inputs)
    return False


class _PoolingAfterReLU(nn.Module):
    """A ReLU's output max-pooled, in one of the forms a module may call them."""

    def __init__(self, form):
        super().__init__()
        self.form = form

    def forward(self, x):
        F = nn.functional
        if self.form == "modules":
            return nn.Sequential(nn.ReLU(), nn.MaxPool2d(2))(x)
        if self.form == "functional":
            return F.max_pool2d(F.relu(x), 3, stride=2, padding=1, ceil_mode=True)
        if self.form == "torch":
            return torch.max_pool2d(torch.relu(x), (2, 3), (1, 2))
        if self.form == "method, ReLU also used elsewhere":
            y = x.relu()
            return F.max_pool2d(y, 2) + y[..., ::2, ::2]
        if self.form == "in-place ReLU":
            return F.max_pool2d(F.relu(x * 1.0, inplace=True), 2)
        if self.form == "indices":
            pooled, indices = F.max_pool2d(F.relu(x), 2, return_indices=True)
            return pooled + indices
        raise ValueError(self.form)


@pytest.mark.parametrize("form", ["modules", "functional", "torch",
                                  "method, ReLU also used elsewhere", "in-place ReLU",
                                  "indices"])
@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_pooling_after_relu_equals_pytorchs(form, layout):
    """A max pooling of a ReLU's output pools first inside the search's forward passes: the
    same values and input gradients as PyTorch's own, bit for bit, with ties in the windows
    (equal positive values, windows of zeros and negatives)."""
    from skcem._gradients._torch import channels_last
    from skcem._gradients._torch_layers import FasterLayers

    torch.manual_seed(0)
    x = torch.round(2 * torch.randn(3, 4, 10, 12, dtype=torch.float64)) / 2
    x[0, :, :4, :4] = 1.5  # equal positive values
    x[1, :, :4, :4] = -1.0  # windows of negatives
    if layout == "channels_last":
        x = channels_last(x)
    module = _PoolingAfterReLU(form)
    cotangent = torch.randn_like(module(x))
    answers = []
    for mode in (FasterLayers, None):
        z = x.clone().requires_grad_()
        with mode() if mode else torch.enable_grad():
            out = module(z)
            with torch.no_grad():
                out_no_grad = module(z)
        (grad,) = torch.autograd.grad(out, z, cotangent)
        answers.append((out.detach(), out_no_grad, grad, _pools_before_relu(out.grad_fn)))
    ours, pytorchs = answers
    assert ours[3] == (form not in ("in-place ReLU", "indices"))
    assert not pytorchs[3]
    for mine, theirs in zip(ours[:3], pytorchs[:3]):
        assert torch.equal(mine, theirs)

def _keras_twin(module):
    """The Keras model of the CNN ``module``: channels-last kernels, Dense rows reordered
    from (c, h, w) to (h, w, c), Dense kernels transposed."""
    keras = pytest.importorskip("keras")
    conv, linear = module[0], module[3]
    twin = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(10)])
    twin.layers[0].set_weights([conv.weight.detach().numpy().transpose(2, 3, 1, 0),
                                conv.bias.detach().numpy()])
    kernel = linear.weight.detach().numpy().T.reshape(4, 6, 6, 10).transpose(1, 2, 0, 3)
    twin.layers[2].set_weights([kernel.reshape(144, 10), linear.bias.detach().numpy()])
    return twin


def test_an_autoencoder_of_the_other_framework_takes_one_channel_images(logits_cnn, images):
    # a Keras CNN's (8, 8, 1) rows are a PyTorch Conv2d auto-encoder's (1, 8, 8) rows (it
    # failed on them); several channels are laid out otherwise: one clear error each way
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    from skcem._gradients import make_backend

    X, _ = images
    torch.manual_seed(0)
    autoencoder = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),
                                nn.Conv2d(2, 1, 3, padding=1)).eval()
    backend = make_backend(_keras_twin(logits_cnn), eps=1e-3, n_features=64,
                           autoencoder=autoencoder, output_kind="logits")
    Z = X[1200:1204].astype(np.float32)
    with torch.no_grad():
        expected = ((autoencoder(torch.as_tensor(Z).reshape(-1, 1, 8, 8)).reshape(4, -1)
                     - torch.as_tensor(Z)) ** 2).sum(dim=1).numpy()
    np.testing.assert_allclose(backend.autoencoder.loss(Z), expected, rtol=1e-5)
    rgb = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(2, 3),
                            keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"starts with nn.Conv2d\(3, \.\.\.\), channels first, "
                                         r"but the rows are images of shape \(4, 4, 3\)"):
        make_backend(rgb, eps=1e-3, n_features=48, output_kind="logits",
                     autoencoder=nn.Sequential(nn.Conv2d(3, 3, 3, padding=1)))
    torch_rgb = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(8, 2))
    keras_ae = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Conv2D(3, 3, padding="same")])
    with pytest.raises(ValueError, match=r"takes images of shape \(4, 4, 3\) and the "
                                         r"classifier \(3, 4, 4\)"):
        make_backend(torch_rgb, eps=1e-3, n_features=48, input_shape=(3, 4, 4),
                     output_kind="logits", autoencoder=keras_ae)


def test_an_autoencoder_that_unflattens_takes_flat_rows(logits_cnn, images):
    # it was given the classifier's (1, 8, 8) images
    from skcem._gradients import make_backend

    X, _ = images
    torch.manual_seed(0)
    autoencoder = nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 1, 3, padding=1),
                                nn.Flatten()).eval()
    backend = make_backend(logits_cnn, eps=1e-3, n_features=64, input_shape=(1, 8, 8),
                           autoencoder=autoencoder, output_kind="logits")
    Z = X[1200:1204].astype(np.float32)
    with torch.no_grad():
        expected = ((autoencoder(torch.as_tensor(Z)) - torch.as_tensor(Z)) ** 2).sum(1).numpy()
    np.testing.assert_allclose(backend.autoencoder.loss(Z), expected, rtol=1e-5)


def test_same_answers_as_the_keras_twin(logits_cnn, images):
    pytest.importorskip("tensorflow")
    from skcem._gradients import make_backend
    from skcem.costs import HingeAttack, one_hot

    X, _ = images
    twin = _keras_twin(logits_cnn)
    Z = X[1200:1216].astype(float) + 0.01
    target = one_hot(_predict(logits_cnn, Z), 10)
    backends = [make_backend(model, eps=1e-3, n_features=64, input_shape=shape,
                             output_kind="logits")
                for model, shape in ((logits_cnn, (1, 8, 8)), (twin, None))]
    answers = [b.evaluate(Z, Z, target, HingeAttack("PN", kappa=0.1)) for b in backends]
    np.testing.assert_allclose(answers[0].proba_adv, answers[1].proba_adv, atol=1e-5)
    scale = np.abs(answers[1].attack_grad).max()
    np.testing.assert_allclose(answers[0].attack_grad, answers[1].attack_grad,
                               atol=1e-4 * scale)
    # Whole searches: float32 kernels of two frameworks round differently, and an edge case
    # can move one search to a neighbouring c; both are valid and alike on the whole.
    test = X[1200:1208]
    runs = [_explain(CEMExplainer(model, mode="PN", input_shape=shape, **IMAGE, **FAST)
                     .fit(X[:300]), test)
            for model, shape in ((logits_cnn, (1, 8, 8)), (twin, None))]
    np.testing.assert_array_equal(runs[0].X_pred, runs[1].X_pred)
    assert abs(runs[0].found.sum() - runs[1].found.sum()) <= 1
    both = runs[0].found & runs[1].found
    assert np.all(_predict(logits_cnn, runs[0].PN[both]) != runs[0].X_pred[both])
    ratio = np.median(runs[0].distance[both]) / np.median(runs[1].distance[both])
    assert 0.9 < ratio < 1.1


def test_output_kinds_and_the_softmax_twin(logits_cnn, images):
    from skcem._gradients import detect_output_kind

    X, _ = images
    sample = X[:50]
    layers = list(logits_cnn)
    softmax = nn.Sequential(*layers, nn.Softmax(dim=1))
    log_softmax = nn.Sequential(*layers, nn.LogSoftmax(dim=1))
    shape = (1, 8, 8)
    assert detect_output_kind(logits_cnn, sample, shape) == "logits"
    assert detect_output_kind(softmax, sample, shape) == "probabilities"
    assert detect_output_kind(log_softmax, sample, shape) == "logits"

    class SoftmaxInForward(nn.Module):  # no final module: decided by the outputs
        def __init__(self):
            super().__init__()
            self.net = logits_cnn

        def forward(self, x):
            return torch.softmax(self.net(x), dim=1)

    assert detect_output_kind(SoftmaxInForward(), sample, shape) == "probabilities"

    class LogSoftmaxInForward(SoftmaxInForward):  # NLLLoss's pairing, a user's
        def forward(self, x):
            return nn.functional.log_softmax(self.net(x), dim=1)

    with warnings.catch_warnings():  # log-probabilities, which a softmax turns back: no
        # warning that the outputs are no probabilities (a new user's)
        warnings.filterwarnings("error", message=".*does not output probabilities")
        assert detect_output_kind(LogSoftmaxInForward(), sample, shape) == "logits"

    class LayersThenSoftmax(nn.Module):  # a freed layer output's id is the softmax's
        def __init__(self):
            super().__init__()
            self.first, self.second = nn.Linear(64, 16), nn.Linear(16, 10)

        def forward(self, x):
            x = self.first(x)
            x = self.second(torch.relu(x))
            return nn.functional.softmax(x, dim=1)

    torch.manual_seed(0)
    for _ in range(5):  # taken for logits by the id of the Linear's freed output
        assert detect_output_kind(LayersThenSoftmax(), sample, None) == "probabilities"
    # the three modules are one classifier: same probabilities and gradients
    from skcem._gradients import make_backend
    from skcem.costs import HingeAttack, one_hot

    Z = X[1200:1216].astype(float)
    target = one_hot(_predict(logits_cnn, Z), 10)
    answers = []
    for model in (logits_cnn, softmax, log_softmax):
        kind = detect_output_kind(model, sample, shape)
        backend = make_backend(model, eps=1e-3, n_features=64, input_shape=shape,
                               output_kind=kind)
        answers.append(backend.evaluate(Z, Z, target, HingeAttack("PN", kappa=0.2)))
    for answer in answers[1:]:
        np.testing.assert_allclose(answer.proba_adv, answers[0].proba_adv, atol=1e-6)
        np.testing.assert_allclose(answer.attack_grad, answers[0].attack_grad, atol=1e-5)
    assert np.abs(answers[0].attack_grad).max() > 1e-2


def test_single_sigmoid_output(images):
    X, y = images
    binary = y < 5
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(64, 1), nn.Sigmoid())
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    inputs, targets = torch.as_tensor(X[:1200]), torch.as_tensor(binary[:1200], dtype=torch.float32)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.binary_cross_entropy(module(inputs)[:, 0], targets).backward()
        optimizer.step()
    module.zero_grad(set_to_none=True)
    cem = CEMExplainer(module, mode="PN", **IMAGE, **FAST).fit(X[:300])
    assert cem._keras_output == "sigmoid"
    np.testing.assert_array_equal(cem.classes_, [0, 1])
    exp = _explain(cem, X[1200:1208])
    assert exp.found.mean() >= 0.7
    with torch.no_grad():
        s = module(torch.as_tensor(exp.explanation[exp.found], dtype=torch.float32))[:, 0].numpy()
    np.testing.assert_array_equal((s > 0.5).astype(int), exp.explanation_pred[exp.found])
    assert np.all(exp.explanation_pred[exp.found] != exp.X_pred[exp.found])


@pytest.mark.parametrize("compile_with", ["script", "trace"])
def test_torchscript_modules(logits_cnn, images, compile_with):
    # TorchScript takes no forward hooks: a scripted module's CEM failed inside PyTorch
    X, y = images
    rows = torch.as_tensor(X[:2]).reshape(-1, 1, 8, 8)
    jitted = torch.jit.script(logits_cnn) if compile_with == "script" \
        else torch.jit.trace(logits_cnn, rows)
    settings = dict(input_shape=(1, 8, 8), mode="PN", **IMAGE, **FAST)
    test = X[1200:1206]
    with warnings.catch_warnings():
        # it ends in an nn.Linear: its logits are no reason to warn (a user's report)
        warnings.filterwarnings("error", message=".*does not output probabilities")
        jitted_cem = CEMExplainer(jitted, **settings).fit(X[:100])
    plain_cem = CEMExplainer(logits_cnn, **settings).fit(X[:100])
    # The same answers at the same rows: the search's questions (its kernels may round
    # otherwise than the eager module's, so whole searches are compared by validity).
    from skcem.costs import HingeAttack, one_hot

    Z = test.astype(float) + 0.01
    target = one_hot(_predict(logits_cnn, Z), 10)
    answers = [cem._backend.evaluate(Z, Z, target, HingeAttack("PN", kappa=0.1))
               for cem in (jitted_cem, plain_cem)]
    np.testing.assert_allclose(answers[0].proba_adv, answers[1].proba_adv, atol=1e-5)
    np.testing.assert_allclose(answers[0].attack_grad, answers[1].attack_grad,
                               atol=1e-4 * np.abs(answers[1].attack_grad).max())
    assert np.abs(answers[1].attack_grad).max() > 0
    exp = _explain(jitted_cem, test)
    assert exp.found.sum() >= 3  # 4 of 6 here
    np.testing.assert_array_equal(_predict(logits_cnn, exp.explanation[exp.found]),
                                  exp.explanation_pred[exp.found].astype(int))
    assert np.all(exp.explanation_pred[exp.found] != exp.X_pred[exp.found])
    with pytest.raises(TypeError, match="`estimator` is a TorchScript module.*pass the "
                                        "nn.Module it was scripted or traced from"):
        GradientSimilarityExplainer(jitted, input_shape=(1, 8, 8)).fit(X[:20], y[:20])


def test_device_cpu_and_bad_devices(logits_cnn, images):
    X, y = images
    test = X[1200:1203]
    settings = dict(input_shape=(1, 8, 8), mode="PP", **IMAGE, **FAST)
    default = _explain(CEMExplainer(logits_cnn, **settings).fit(X[:100]), test)
    on_cpu = _explain(CEMExplainer(logits_cnn, device="cpu", **settings).fit(X[:100]), test)
    np.testing.assert_array_equal(default.explanation, on_cpu.explanation)
    with pytest.raises(ValueError, match="`device` must name a PyTorch device"):
        CEMExplainer(logits_cnn, device="gpu0", **settings).fit(X[:100])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="`device` is 'cuda' but PyTorch sees no CUDA"):
            CEMExplainer(logits_cnn, device="cuda", **settings).fit(X[:100])
    for Explainer in (CEMExplainer, GradientSimilarityExplainer):  # no data on 'meta'
        with pytest.raises(ValueError, match="`device` is 'meta', which holds no values"):
            Explainer(logits_cnn, device="meta", input_shape=(1, 8, 8)).fit(X[:100], y[:100])
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=200).fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="`device` applies to PyTorch models"):
        CEMExplainer(clf, device="cpu").fit(X[:100])
    with pytest.raises(ValueError, match="`device` applies to PyTorch models"):
        GradientSimilarityExplainer(clf, device="cpu").fit(X[:100], y[:100])


def _spy_on_evaluate(monkeypatch, on_host):
    """Run the search on the host (``on_host``) or on the module's device, recording the
    kinds of arrays the optimizer hands the backend."""
    from skcem._array_api import HOST
    from skcem._gradients._torch import TorchBackend

    kinds = set()
    evaluate = TorchBackend.evaluate

    def recording(self, Z_adv, *args, **kwargs):
        kinds.add(type(Z_adv).__name__)
        return evaluate(self, Z_adv, *args, **kwargs)

    monkeypatch.setattr(TorchBackend, "evaluate", recording)
    if on_host:
        monkeypatch.setattr(TorchBackend, "array_place", lambda self: HOST)
    return kinds


@pytest.mark.parametrize("settings", [
    dict(mode="PN"), dict(mode="PP"), dict(mode="PN", tol=1e-4, n_iter_no_change=5),
    dict(mode="PN", gamma=1.0), dict(kind="CF"), dict(kind="CF", distance="mad")],
    ids=["PN", "PP", "PN-early-stopping", "PN-autoencoder", "CF", "CF-mad"])
def test_the_search_runs_on_the_modules_device_with_the_hosts_answers(
        logits_cnn, images, monkeypatch, settings):
    """The batch stays in tensors from the first iteration to the last, and its answers are
    the host search's: the same algorithm, in another array library."""
    X, _ = images
    test = X[1200:1208]
    settings = dict(settings)
    if settings.pop("kind", "CEM") == "CF":
        make = lambda: CounterfactualExplainer(  # noqa: E731
            logits_cnn, input_shape=(1, 8, 8), search="fista", feature_range=(0.0, 1.0),
            max_iterations=150, **settings)
    else:
        if settings.get("gamma"):
            torch.manual_seed(0)
            settings["autoencoder"] = nn.Sequential(nn.Linear(64, 16), nn.ReLU(),
                                                    nn.Linear(16, 64), nn.Sigmoid())
        make = lambda: CEMExplainer(logits_cnn, input_shape=(1, 8, 8), **IMAGE,  # noqa: E731
                                    **FAST, **settings)
    answers = {}
    for on_host in (True, False):
        with monkeypatch.context() as patch:
            kinds = _spy_on_evaluate(patch, on_host)
            answers[on_host] = _explain(make().fit(X[:200]), test)
        assert kinds == ({"ndarray"} if on_host else {"Tensor"})
    host, device = answers[True], answers[False]
    assert host.found.sum() >= 3  # 5 of 8 here
    np.testing.assert_array_equal(device.found, host.found)
    # Only the order of a few sums (the distances) may differ between the two libraries.
    np.testing.assert_allclose(device.explanation, host.explanation, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(device.explanation_pred, host.explanation_pred)


def test_bad_input_shapes_get_one_clear_error(logits_cnn, images):
    X, y = images
    with pytest.raises(ValueError, match=r"`estimator` fails on rows reshaped to \(64,\) "
                       r".*pass the `input_shape` it takes"):
        CEMExplainer(logits_cnn).fit(X[:50])
    with pytest.raises(ValueError, match=r"`estimator` fails on rows reshaped to \(4, 4, 4\)"):
        GradientSimilarityExplainer(logits_cnn, input_shape=(4, 4, 4)).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match=r"`estimator` fails on rows reshaped to \(64,\)"):
        GradientSimilarityExplainer(logits_cnn, task="regression").fit(X[:20], X[:20, :10])
    with pytest.raises(ValueError, match=r"`input_shape` \(1, 7, 7\) holds 49 values per "
                       "instance, but X has 64 columns"):
        CEMExplainer(logits_cnn, input_shape=(1, 7, 7)).fit(X[:50])
    with pytest.raises(ValueError, match=r"`input_shape` \(-1, 8, 8\) must hold positive "
                                         r"sizes \(the shape of one instance, without the "
                                         r"batch axis\)"):
        CEMExplainer(logits_cnn, input_shape=(-1, 8, 8)).fit(X[:50])
    dense = nn.Sequential(nn.Linear(32, 10))
    with pytest.raises(ValueError, match=r"starts with nn.Linear\(32, ...\) but X has 64"):
        CounterfactualExplainer(dense).fit(X[:50])

    class WithAuxiliary(nn.Module):  # (logits, auxiliary loss), as some models return
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(64, 10)

        def forward(self, x):
            logits = self.linear(x)
            return logits, logits.square().mean()

    for explainer in (CEMExplainer(WithAuxiliary()), CounterfactualExplainer(WithAuxiliary())):
        with pytest.raises(TypeError, match=r"`estimator` must return one tensor of outputs "
                           r"per row .* returns a tuple"):
            explainer.fit(X[:50])

    class TwoInputs(nn.Module):  # its input_shape was blamed
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(64, 10)

        def forward(self, image, extra):
            return self.linear(image) + extra

    with pytest.raises(ValueError, match=r"`estimator` fails on a tensor of rows .*: its "
                                         r"forward takes 2 arguments \['image', 'extra'\]"):
        CEMExplainer(TwoInputs()).fit(X[:50])


def _per_example_gradients(module, X, y, loss_fn):
    """Each row's loss gradient, one backward pass per row, parameters in module order."""
    rows = []
    for x, t in zip(X, y):
        module.zero_grad()
        loss_fn(module(torch.as_tensor(x)[None]), torch.as_tensor(t)[None]).sum().backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in module.parameters()]).numpy())
    module.zero_grad()
    return np.array(rows)


@pytest.fixture(scope="module")
def double_cnn(images):
    """A float64 CNN with "same" and strided convolutions, a hidden dense layer and a layer
    norm (its parameters' gradients by torch.func): gradients exact enough to be compared to
    1e-6."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 3, 3, padding="same"), nn.ReLU(),
        nn.Conv2d(3, 2, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(),
        nn.Linear(2 * 4 * 4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 10)).double().eval()


@pytest.mark.parametrize("sim_fn", ["grad_dot", "grad_cos"])
def test_similarity_equals_a_per_example_autograd_loop(double_cnn, images, sim_fn):
    X, y = images
    X = X.astype(float)  # float32 values: the module sees the same numbers either way
    train, test = slice(0, 40), slice(1200, 1205)
    explainer = GradientSimilarityExplainer(double_cnn, sim_fn=sim_fn).fit(X[train], y[train])
    scores = explainer.transform(X[test])
    cross_entropy = nn.functional.cross_entropy
    G_train = _per_example_gradients(double_cnn, X[train], y[train], cross_entropy)
    G_test = _per_example_gradients(double_cnn, X[test], _predict(double_cnn, X[test], (64,)),
                                    cross_entropy)
    expected = G_test @ G_train.T
    if sim_fn == "grad_cos":
        expected /= np.outer(np.linalg.norm(G_test, axis=1), np.linalg.norm(G_train, axis=1))
    np.testing.assert_allclose(scores, expected, rtol=1e-6, atol=1e-12 * np.abs(expected).max())
    assert explainer.n_params_ == G_train.shape[1]
    # the torch.func reference gives the same flattened gradients
    np.testing.assert_allclose(explainer._gradients(X[train], y[train]), G_train, rtol=1e-9,
                               atol=1e-12)
    # self-influence: the squared norms, at the labels and at the predicted classes
    np.testing.assert_allclose(explainer.self_influence(), np.sum(G_train**2, axis=1),
                               rtol=1e-6)
    np.testing.assert_allclose(explainer.self_influence(X[test]), np.sum(G_test**2, axis=1),
                               rtol=1e-6)


class _Thirds(nn.Module):
    """``inner`` on a third of the input, divided in place (as ``Normalize(inplace=True)``
    would) or not."""

    def __init__(self, inner, in_place):
        super().__init__()
        self.inner, self.in_place = inner, in_place

    def forward(self, x):
        return self.inner(x.div_(3.0) if self.in_place else x / 3.0)


def test_similarity_keeps_a_float64_modules_rows_and_those_a_module_writes_into(double_cnn,
                                                                              images):
    """Found by a user: a float64 module's X_train_ was float32 (its gradients on rounded
    rows, most_similar giving back other rows than the user's), and a module that divides its
    input in place rewrote X_train_, each explain giving other scores."""
    X, y = images
    X = X[:45].astype(float) * 3.0 + 1.0 / 3.0  # numbers float32 cannot hold
    train, test = slice(0, 40), slice(40, 45)
    cross_entropy = nn.functional.cross_entropy
    out_of_place, in_place = _Thirds(double_cnn, False), _Thirds(double_cnn, True)
    explainer = GradientSimilarityExplainer(out_of_place).fit(X[train], y[train])
    assert explainer.X_train_.dtype == np.float64
    np.testing.assert_array_equal(explainer.X_train_, X[train])
    G_train = _per_example_gradients(out_of_place, X[train], y[train], cross_entropy)
    G_test = _per_example_gradients(out_of_place, X[test],
                                    _predict(out_of_place, X[test], (64,)), cross_entropy)
    expected = G_test @ G_train.T
    np.testing.assert_allclose(explainer.transform(X[test]), expected, rtol=1e-9,
                               atol=1e-12 * np.abs(expected).max())
    writer = GradientSimilarityExplainer(in_place).fit(X[train], y[train])
    for _ in range(2):
        np.testing.assert_allclose(writer.transform(X[test]), expected, rtol=1e-9,
                                   atol=1e-12 * np.abs(expected).max())
    np.testing.assert_array_equal(writer.X_train_, X[train])


def test_a_module_writing_its_input_leaves_the_searchs_tensors_alone():
    """Found by a review: a float64 module got the search's own iterates uncopied, so a
    module that writes its input (here under no_grad, which autograd does not stop)
    rewrote them on the first call, before its write was noticed; an auto-encoder's first
    loss subtracted the rows its module had rewritten (29.1 for 6.19)."""
    from skcem._gradients._torch import TorchAutoencoder, TorchBackend

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()

    class Shifting(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            with torch.no_grad():
                x.sub_(5.0)
            return self.inner(x)

    backend = TorchBackend(Shifting(net), (4,), None, "logits", torch.device("cpu"))
    Z = torch.full((2, 4), 6.0, dtype=torch.float64)
    backend.evaluate(Z, Z + 0.5, torch.eye(3, dtype=torch.float64)[:2], None,
                     with_attack_grad=False)
    assert torch.equal(Z, torch.full((2, 4), 6.0, dtype=torch.float64))
    reference = nn.Linear(4, 4).double()
    writer = copy.deepcopy(reference)
    rows = np.full((2, 4), 1.5)

    class Doubling(nn.Module):
        def __init__(self, inner, in_place):
            super().__init__()
            self.inner, self.in_place = inner, in_place

        def forward(self, x):
            return self.inner(x.mul_(2.0) if self.in_place else x * 2.0)

    expected = TorchAutoencoder(Doubling(reference, False), (4,), torch.device("cpu")).loss(rows)
    first = TorchAutoencoder(Doubling(writer, True), (4,), torch.device("cpu")).loss(rows)
    np.testing.assert_allclose(first, expected)
    np.testing.assert_array_equal(rows, 1.5)


@pytest.mark.parametrize("budget", [1, None])  # test rows a batch at a time, or all at once
def test_similarity_in_chunks_and_blocks_equals_a_per_example_loop(double_cnn, images, budget,
                                                                  monkeypatch):
    import skcem._similarity

    if budget is not None:
        monkeypatch.setattr(skcem._similarity, "_TEST_GRADIENT_BUDGET", budget)
    X, y = images
    X = X.astype(float)
    train, test = slice(0, 45), slice(1200, 1221)  # 6 training blocks, 3 test batches of 8
    explainer = GradientSimilarityExplainer(double_cnn, sim_fn="grad_asym_dot",
                                            batch_size=8).fit(X[train], y[train])
    scores = explainer.transform(X[test])
    cross_entropy = nn.functional.cross_entropy
    G_train = _per_example_gradients(double_cnn, X[train], y[train], cross_entropy)
    G_test = _per_example_gradients(double_cnn, X[test], _predict(double_cnn, X[test], (64,)),
                                    cross_entropy)
    expected = G_test @ G_train.T / (np.sum(G_train ** 2, axis=1) + 1e-7)
    np.testing.assert_allclose(scores, expected, rtol=1e-6, atol=1e-12 * np.abs(expected).max())
    top, indices = explainer.kneighbors(X[test], n_neighbors=4)
    order = np.argsort(-expected, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(indices, order)
    np.testing.assert_allclose(top, np.take_along_axis(expected, order, axis=1), rtol=1e-6)


@pytest.mark.parametrize("conv", [
    dict(in_channels=1, kernel_size=2),
    dict(in_channels=1, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
    dict(in_channels=2, kernel_size=3, dilation=2, padding="same", bias=False),
    dict(in_channels=2, kernel_size=2, stride=3, padding=2),
])
def test_conv_per_example_gradients_equal_a_per_example_loop(conv):
    torch.manual_seed(0)
    c_in = conv["in_channels"]
    module = nn.Sequential(nn.Unflatten(1, (c_in, 9, 10)), nn.Conv2d(out_channels=3, **conv),
                           nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(),
                           nn.LazyLinear(5)).double()
    module(torch.zeros(1, c_in * 90, dtype=torch.float64))  # sizes the lazy layer
    module.eval()
    X = np.random.default_rng(0).standard_normal((7, c_in * 90))
    y = np.arange(7) % 5
    gradients = make_param_gradients(module, input_shape=(c_in * 90,), output_kind="logits")
    assert len(gradients.conv_layers) == 1 and len(gradients.dense_layers) == 1
    assert not gradients.other_names
    factors = gradients.factors(X, y)
    G = _per_example_gradients(module, X, y, nn.functional.cross_entropy)
    np.testing.assert_allclose(factors.dot(factors), G @ G.T, rtol=1e-9,
                               atol=1e-12 * np.abs(G @ G.T).max())


class _TiedWeights(nn.Module):
    """The output layer's weight is the input layer's (weight tying)."""

    def __init__(self):
        super().__init__()
        self.inp, self.hidden, self.out = nn.Linear(6, 6), nn.Linear(6, 6), nn.Linear(6, 6)
        self.out.weight = self.inp.weight

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(torch.tanh(self.inp(x)))))


class _FoldedBatch(nn.Module):
    """A layer called on the rows of each example's 3 x 2 block, not on the examples."""

    def __init__(self):
        super().__init__()
        self.rows, self.head = nn.Linear(2, 4), nn.Linear(12, 6)

    def forward(self, x):
        n = x.shape[0]
        return self.head(torch.tanh(self.rows(x.reshape(n * 3, 2))).reshape(n, 12))


@pytest.mark.parametrize("make, factorised", [
    # an in-place activation after a layer overwrote the output whose gradient is its δ
    (lambda: nn.Sequential(nn.Unflatten(1, (1, 2, 3)), nn.Conv2d(1, 3, 2, padding=1),
                           nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(36, 8),
                           nn.ReLU(inplace=True), nn.Linear(8, 6)), 3),
    (_TiedWeights, 1),  # the tied weight's gradient has two parts: torch.func's
    (_FoldedBatch, 1),  # the folded layer sees 3 rows an example: torch.func's
], ids=["inplace", "tied", "folded"])
def test_factorised_gradients_of_unusual_modules_equal_a_per_example_loop(make, factorised):
    torch.manual_seed(0)
    module = make().double().eval()
    X = np.random.default_rng(0).standard_normal((7, 6))
    y = np.arange(7) % 6
    gradients = make_param_gradients(module, input_shape=(6,), output_kind="logits")
    factors = gradients.factors(X, y)
    assert len(gradients.dense_layers) + len(gradients.conv_layers) == factorised
    G = _per_example_gradients(module, X, y, nn.functional.cross_entropy)
    np.testing.assert_allclose(factors.dot(factors), G @ G.T, rtol=1e-9,
                               atol=1e-12 * np.abs(G @ G.T).max())


class _Recurrent(nn.Module):
    """A GRU over each row as 4 steps of 3 numbers: torch.func.vmap has no batching rule for
    PyTorch's recurrent layers (nor for a float64 LSTM)."""

    def __init__(self, layer):
        super().__init__()
        self.rnn, self.head = layer(3, 5, batch_first=True), nn.Linear(5, 4)

    def forward(self, x):
        return self.head(self.rnn(x.reshape(x.shape[0], 4, 3))[0][:, -1])


@pytest.mark.parametrize("layer", [nn.GRU, nn.RNN, nn.LSTM])
def test_recurrent_modules_get_per_example_gradients_one_at_a_time(layer):
    torch.manual_seed(0)
    module = _Recurrent(layer).double().eval()
    # float32 values (the explainer's inputs): the module sees the same numbers either way
    X = np.random.default_rng(0).standard_normal((30, 12)).astype(np.float32).astype(float)
    y = np.arange(30) % 4
    explainer = GradientSimilarityExplainer(module).fit(X[:24], y[:24])
    scores = explainer.explain(X[24:], y[24:]).scores
    G = _per_example_gradients(module, X, y, nn.functional.cross_entropy)
    np.testing.assert_allclose(scores, G[24:] @ G[:24].T, rtol=1e-9,
                               atol=1e-12 * np.abs(G[24:] @ G[:24].T).max())


def test_similarity_losses_projection_and_kneighbors(double_cnn, images):
    X, y = images
    X = X.astype(float)
    train, test = slice(0, 60), slice(1200, 1206)
    auto = GradientSimilarityExplainer(double_cnn).fit(X[train], y[train])
    custom = GradientSimilarityExplainer(
        double_cnn, loss=nn.CrossEntropyLoss(reduction="none")).fit(X[train], y[train])
    scores = auto.transform(X[test])
    np.testing.assert_allclose(custom.transform(X[test]), scores, rtol=1e-9)
    indices = auto.kneighbors(X[test], n_neighbors=3, return_scores=False)
    np.testing.assert_array_equal(indices, np.argsort(-scores, axis=1, kind="stable")[:, :3])
    projected = GradientSimilarityExplainer(double_cnn, n_components=400, random_state=0,
                                            precompute_grads=True).fit(X[train], y[train])
    estimate = projected.transform(X[test])
    assert estimate.shape == scores.shape
    assert np.corrcoef(estimate.ravel(), scores.ravel())[0, 1] > 0.9


def test_similarity_of_one_output_modules_takes_the_binary_losses():
    """Found by a user: nn.BCEWithLogitsLoss(reduction="none"), the loss of a one-logit
    module, failed (targets of shape (n,) against outputs (n, 1), class indices where it
    takes floats); nn.BCELoss of a sigmoid likewise. Both give loss="auto"'s scores, and a
    loss that reshapes the targets itself still works."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = ((X - X.mean(axis=0)) / X.std(axis=0))[:45]
    y = y[:45]
    torch.manual_seed(0)
    logit = nn.Sequential(nn.Linear(30, 4), nn.Tanh(), nn.Linear(4, 1)).double().eval()
    sigmoid = nn.Sequential(logit, nn.Sigmoid()).eval()
    train, test = slice(0, 40), slice(40, 45)
    bce = nn.functional.binary_cross_entropy_with_logits

    def loop_loss(outputs, targets):  # the per-example loop's: a row of one logit
        return bce(outputs.reshape(-1), targets.to(outputs.dtype).reshape(-1), reduction="none")

    G_train = _per_example_gradients(logit, X[train], y[train], loop_loss)
    with torch.no_grad():
        predicted = (logit(torch.as_tensor(X[test])).reshape(-1) > 0).long().numpy()
    expected = _per_example_gradients(logit, X[test], predicted, loop_loss) @ G_train.T
    for module, loss in [(logit, nn.BCEWithLogitsLoss(reduction="none")),
                         (sigmoid, nn.BCELoss(reduction="none")),
                         (logit, lambda o, t: bce(o.squeeze(1), t.to(o.dtype), reduction="none")),
                         (logit, "auto")]:
        explainer = GradientSimilarityExplainer(module, loss=loss).fit(X[train], y[train])
        # a pickled explainer decides again, on its first rows: one here (a lambda does not
        # pickle)
        restored = explainer if callable(loss) and not isinstance(loss, nn.Module) else \
            pickle.loads(pickle.dumps(explainer))
        restored.transform(X[test][:1])
        for scores in (explainer.transform(X[test]), restored.transform(X[test])):
            np.testing.assert_allclose(scores, expected, rtol=1e-7,
                                       atol=1e-10 * np.abs(expected).max())

    # a loss written for class indices that would also take floats of the outputs' shape
    # (broadcast to (n, n), then a mean per row) gets indices (a review's: each example's
    # loss had averaged every row's target)
    def squared(outputs, targets):
        errors = (torch.sigmoid(outputs).flatten() - targets) ** 2
        return errors.reshape(len(outputs), -1).mean(dim=1)

    def loop_squared(outputs, targets):
        return (torch.sigmoid(outputs).reshape(-1) - targets.to(outputs.dtype)) ** 2

    G_train = _per_example_gradients(logit, X[train], y[train], loop_squared)
    expected = _per_example_gradients(logit, X[test], predicted, loop_squared) @ G_train.T
    scores = GradientSimilarityExplainer(logit, loss=squared).fit(X[train], y[train]) \
        .transform(X[test])
    np.testing.assert_allclose(scores, expected, rtol=1e-7, atol=1e-10 * np.abs(expected).max())


def test_similarity_takes_labels_of_the_outputs_as_the_other_explainers_do(double_cnn, images):
    # they were refused with a hint at regression
    X, y = images
    X = X.astype(float)
    names = np.array([f"digit {k}" for k in range(10)])
    train, test = slice(0, 60), slice(1200, 1206)
    by_index = GradientSimilarityExplainer(double_cnn).fit(X[train], y[train])
    by_label = GradientSimilarityExplainer(double_cnn).fit(X[train], names[y[train]])
    np.testing.assert_array_equal(by_label.classes_, names)
    assert by_index.classes_ is None
    np.testing.assert_array_equal(by_label.transform(X[test]), by_index.transform(X[test]))
    given = by_label.explain(X[test], names[y[test]])
    np.testing.assert_array_equal(given.scores, by_index.explain(X[test], y[test]).scores)
    np.testing.assert_array_equal(given.target, names[y[test]])
    np.testing.assert_array_equal(by_label.explain(X[test]).target,
                                  names[by_index.explain(X[test]).target])
    with pytest.raises(ValueError, match=r"`y` holds labels the model does not know: "
                                         r"\['digit 11'\]"):
        by_label.explain(X[test][:1], ["digit 11"])
    for bad in (10, -1):  # torch's own IndexError (TensorFlow's too; JAX gave zero scores)
        with pytest.raises(ValueError, match=rf"`y` holds labels the model does not know: "
                                             rf"\[{bad}\]; its classes are the indices 0 to 9"):
            by_index.kneighbors(X[test][:1], 2, y=[bad])
    with pytest.raises(ValueError, match=r"y holds 'a', which is not a class index of the "
                                         r"PyTorch module's 10 classes \(0 to 9\), and 2 "
                                         r"labels, not one per class"):
        GradientSimilarityExplainer(double_cnn).fit(X[:4], ["a", "b", "a", "b"])


def test_projected_cosines_stay_in_their_range(images):
    # float32 projections gave an instance with itself 1.0000002
    X, y = images
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    explainer = GradientSimilarityExplainer(net, sim_fn="grad_cos", n_components=64,
                                            random_state=0).fit(X[:100], y[:100])
    scores = explainer.explain(X[:20], y[:20]).scores
    assert scores.max() <= 1.0 and scores.min() >= -1.0
    np.testing.assert_allclose(np.diag(scores), 1.0, rtol=1e-6)


def test_similarity_regression(images):
    X, _ = images
    X = X.astype(float)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(64, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    targets = np.c_[X[:, :32].sum(axis=1), X[:, 32:].sum(axis=1)]
    explainer = GradientSimilarityExplainer(module, task="regression").fit(X[:30], targets[:30])
    scores = explainer.explain(X[1200:1203], targets[1200:1203]).scores

    def squared_error(out, t):
        return torch.mean((out - t) ** 2, dim=1)

    G_train = _per_example_gradients(module, X[:30], targets[:30], squared_error)
    G_test = _per_example_gradients(module, X[1200:1203], targets[1200:1203], squared_error)
    np.testing.assert_allclose(scores, G_test @ G_train.T, rtol=1e-6)


def test_wrong_losses_get_one_clear_error(logits_cnn, images):
    X, y = images
    shape = dict(input_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="`loss` must be 'auto' or a callable"):
        GradientSimilarityExplainer(logits_cnn, loss="mse", **shape).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match="'loss' parameter"):
        GradientSimilarityExplainer(logits_cnn, loss=3, **shape).fit(X[:20], y[:20])
    mean_loss = GradientSimilarityExplainer(logits_cnn, loss=nn.CrossEntropyLoss(), **shape)
    with pytest.raises(ValueError, match=r"`loss` must return one loss per example \(2 here\)"
                       r".*reduction='none'"):
        mean_loss.fit(X[:20], y[:20]).transform(X[1200:1202])
    # one loss per output, not per row: how to reduce them (reduction='none' is there)
    per_output = GradientSimilarityExplainer(
        nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), task="regression",
        loss=nn.MSELoss(reduction="none"))
    with pytest.raises(ValueError, match=r"Reduce the losses of each row's outputs to one"):
        per_output.fit(X[:20], np.c_[y[:20], y[:20]].astype(np.float32))
    # a loss of the wrong arguments: named at fit, with how it is called
    with pytest.raises(ValueError, match=r"`loss` fails on the model's outputs and the "
                                         r"targets \(TypeError: .*loss\(outputs, targets\)"):
        GradientSimilarityExplainer(logits_cnn, loss=lambda outputs: outputs.sum(1),
                                    **shape).fit(X[:20], y[:20])


def test_autoencoder_term_lowers_reconstruction_error(logits_cnn, images):
    X, _ = images
    torch.manual_seed(0)
    ae = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 64), nn.Sigmoid())
    optimizer = torch.optim.Adam(ae.parameters(), lr=1e-2)
    inputs = torch.as_tensor(X[:1200])
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.mse_loss(ae(inputs), inputs).backward()
        optimizer.step()
    test = X[1200:1206]

    def ae_error(exp):
        with torch.no_grad():
            rows = torch.as_tensor(exp.PN[exp.found], dtype=torch.float32)
            return ((ae(rows) - rows) ** 2).sum(dim=1).mean().item()

    settings = dict(mode="PN", autoencoder=ae, input_shape=(1, 8, 8), **IMAGE, **FAST)
    errors = {gamma: ae_error(_explain(CEMExplainer(logits_cnn, gamma=gamma, **settings)
                                       .fit(X[:200]), test)) for gamma in (0.0, 10.0)}
    assert errors[10.0] < errors[0.0]


def test_pickled_explainer_explains_the_same(logits_cnn, images):
    X, y = images
    cem = CEMExplainer(logits_cnn, mode="PN", input_shape=(1, 8, 8), max_iterations=100,
                       c_steps=2, **IMAGE).fit(X[:100])
    restored = pickle.loads(pickle.dumps(cem))
    answers = [_explain(explainer, X[1200:1203]) for explainer in (cem, restored)]
    assert answers[0].found.any()
    np.testing.assert_array_equal(answers[1].explanation, answers[0].explanation)
    similarity = GradientSimilarityExplainer(logits_cnn, input_shape=(1, 8, 8)).fit(X[:20], y[:20])
    restored = pickle.loads(pickle.dumps(similarity))
    np.testing.assert_allclose(restored.transform(X[1200:1202]),
                               similarity.transform(X[1200:1202]), rtol=1e-6)


def test_read_only_rows_reach_the_module_without_a_warning(logits_cnn, images):
    """pandas 3's ``to_numpy`` gives read-only views, which PyTorch warns it cannot share:
    the search copies them once instead (PyTorch warns once per process: this test must
    be the first to hand it such rows)."""
    pd = pytest.importorskip("pandas")
    X, _ = images
    frame = pd.DataFrame(X[:100], columns=[f"pixel{i}" for i in range(X.shape[1])])
    for explainer in (CEMExplainer(logits_cnn, mode="PN", input_shape=(1, 8, 8),
                                   max_iterations=20, c_steps=1, **IMAGE),
                      CounterfactualExplainer(logits_cnn, input_shape=(1, 8, 8),
                                              max_iterations=20, c_steps=1)):
        explainer.fit(frame)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*not writable")
            explainer.explain(frame.iloc[:3])


def test_frameworks_are_told_by_the_classes_modules(logits_cnn):
    from sklearn.linear_model import LogisticRegression

    from skcem._gradients import is_deep_model, is_keras_model, is_torch_module

    KerasLike = type("Functional", (), {"__module__": "keras.src.models.functional"})
    assert is_torch_module(logits_cnn) and is_deep_model(logits_cnn)
    assert not is_keras_model(logits_cnn)
    assert is_keras_model(KerasLike()) and not is_torch_module(KerasLike())
    assert not is_deep_model(LogisticRegression()) and not is_deep_model(np.zeros(3))


def test_torch_models_never_import_tensorflow():
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import torch
        from torch import nn
        import skcem
        from skcem import CEMExplainer, GradientSimilarityExplainer

        torch.manual_seed(0)
        module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        ae = nn.Sequential(nn.Linear(4, 2), nn.Linear(2, 4))
        X = np.random.default_rng(0).normal(size=(30, 4))
        CEMExplainer(module, mode="PN", gamma=1.0, autoencoder=ae, max_iterations=10,
                     c_steps=1).fit(X).explain(X[:2])
        GradientSimilarityExplainer(module).fit(X, np.arange(30) % 3).transform(X[:2])
        assert "tensorflow" not in sys.modules, "tensorflow imported"
        assert "keras" not in sys.modules, "keras imported"
        print("OK")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK")


class _ThreadsSeen(nn.Module):
    """A linear classifier that records PyTorch's intra-op threads at each call."""

    def __init__(self, n_features):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(n_features, 3)
        self.seen = set()

    def forward(self, x):
        self.seen.add(torch.get_num_threads())
        return self.linear(x)


@pytest.mark.parametrize("n_rows, n_features, threads_in_search", [(10, 8, 1), (40, 2048, 2)])
def test_small_searches_run_on_one_thread(n_rows, n_features, threads_in_search):
    # a parallel region waits for every thread: on a busy CPU, milliseconds per operation
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_rows, n_features)).astype(np.float32)
    module = _ThreadsSeen(n_features)
    torch.set_num_threads(2)
    try:
        cem = CEMExplainer(module, mode="PN", max_iterations=5, c_steps=1,
                           search="fista").fit(X)
        module.seen.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExplanationNotFoundWarning)
            cem.explain(X)
        assert module.seen == {threads_in_search}
        assert torch.get_num_threads() == 2  # the user's setting, back
    finally:
        torch.set_num_threads(1)


def test_a_pytorch_autoencoder_beside_another_model_searches_on_one_thread(digits):
    """The auto-encoder's term is evaluated at every step too."""
    from sklearn.linear_model import LogisticRegression

    X, y = digits
    model = LogisticRegression(max_iter=500).fit(X[:300], y[:300])

    class Autoencoder(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.layers = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 64))
            self.seen = set()

        def forward(self, x):
            self.seen.add(torch.get_num_threads())
            return self.layers(x)

    autoencoder = Autoencoder()
    torch.set_num_threads(2)
    try:
        cem = CEMExplainer(model, mode="PN", autoencoder=autoencoder, gamma=1.0,
                           max_iterations=5, c_steps=1, search="fista").fit(X[:300])
        autoencoder.seen.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExplanationNotFoundWarning)
            cem.explain(X[300:305])
        assert autoencoder.seen == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_regression_loss_of_pytorch_takes_one_dimensional_targets():
    """Targets (n,) of a module with one output column: PyTorch's losses broadcast them to
    (n, n) (skcem then said to use reduction='none', which was given); they are reshaped
    to the outputs' shape, as with loss='auto' (the same mean squared error here)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    y = (X @ np.arange(5.0)).astype(np.float32)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    custom = GradientSimilarityExplainer(module, task="regression",
                                         loss=nn.MSELoss(reduction="none")).fit(X, y)
    auto = GradientSimilarityExplainer(module, task="regression").fit(X, y)
    np.testing.assert_allclose(custom.explain(X[:4], y[:4]).scores,
                               auto.explain(X[:4], y[:4]).scores, rtol=1e-5)


def test_a_module_that_bins_its_input_has_a_zero_gradient_not_a_crash(images):
    # torch.bucketize leaves no gradient path (autograd's error): the gradient-free steps
    # that complete the search answer instead
    X, y = images
    torch.manual_seed(0)
    edges = torch.linspace(0, 1, 5)

    class Binned(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

        def forward(self, x):
            return self.net(torch.bucketize(x, edges).to(x.dtype) / 4)

    module = _train(Binned(), X[:1200], y[:1200])
    for explainer in (CEMExplainer(module, mode="PN"), CounterfactualExplainer(module)):
        exp = _explain(explainer.fit(X[:300]), X[1200:1206])
        assert exp.found.sum() >= 3  # 4 of 6 here
        with torch.no_grad():
            predicted = module(torch.as_tensor(exp.explanation[exp.found],
                                               dtype=torch.float32)).argmax(dim=1).numpy()
        assert np.all(predicted != exp.X_pred[exp.found])


def test_the_command_line_says_how_to_give_input_shape(tmp_path, logits_cnn, images, capsys):
    import joblib

    from skcem.__main__ import main

    X, _ = images
    joblib.dump(logits_cnn, tmp_path / "cnn.joblib")
    header = ",".join(f"p{j}" for j in range(64))
    (tmp_path / "rows.csv").write_text(header + "\n" + "\n".join(
        ",".join(map(str, row)) for row in X[1200:1202]))
    command = ["explain", "--model", str(tmp_path / "cnn.joblib"), "--data",
               str(tmp_path / "rows.csv"), "--out", str(tmp_path / "out.json"), "--quiet",
               "--params", "max_iterations=20", "c_steps=1"]
    assert main(command) == 2
    assert "(on the command line: --params input_shape=1,28,28)" in capsys.readouterr().err
    assert main(command + ["input_shape=1,8,8"]) == 0, capsys.readouterr().err


def test_threads_take_turns_with_a_module(logits_cnn, images):
    # joblib's threading backend: the module was left in eval mode, its parameters swapped
    # for detached ones (functional_call in two threads), and the similarity's hooks recorded
    # the other thread's batch (wrong scores, or a broadcasting error)
    import joblib

    X, y = images
    module = copy.deepcopy(logits_cnn).train()
    parameters = list(module.parameters())
    shape = dict(input_shape=(1, 8, 8))
    runs = {}
    for n_jobs in (1, 2):
        with joblib.parallel_config(backend="threading"):
            runs[n_jobs] = (
                _explain(CEMExplainer(module, mode="PN", batch_size=2, n_jobs=n_jobs, **shape,
                                      **IMAGE, **FAST).fit(X[:100]), X[1200:1208]),
                GradientSimilarityExplainer(module, batch_size=8, n_jobs=n_jobs,
                                            precompute_grads=True, **shape)
                .fit(X[:64], y[:64]).transform(X[1200:1232]))
        assert module.training and all(m.training for m in module.modules())
        assert list(module.parameters()) == parameters
        assert all(p.requires_grad for p in module.parameters())
    np.testing.assert_array_equal(runs[1][0].explanation, runs[2][0].explanation)
    # float32 products of batches that threads split otherwise round otherwise (1e-5 on a
    # CPU without AVX-512); the bugs this guards against gave wholly other scores
    scale = np.abs(runs[1][1]).max()
    np.testing.assert_allclose(runs[1][1], runs[2][1], rtol=1e-3, atol=1e-5 * scale)


def test_keras_on_torch_maps_one_example_at_a_time_where_vmap_cannot():
    # Keras's torch Conv2D after a pooling clones its input channels-last, which
    # torch.func.vmap does not batch ("NYI: Tensor.clone(memory_format) inside vmap"): the
    # similarity of such a model on Keras's torch backend failed
    from skcem._gradients._keras_torch import TorchAutodiff

    def per_example(scale, x, pair):
        image = x.reshape(1, 2, 3, 3).clone(memory_format=torch.channels_last)
        return {"sum": scale * image.sum(), "pair": (pair[0] * 2, pair[1] + x[0])}

    x = torch.randn(5, 18, dtype=torch.float64)
    pair = (torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="vmap"):
        torch.func.vmap(per_example, in_dims=(None, 0, 0))(2.0, x, pair)
    mapped = TorchAutodiff.vmap(per_example, (None, 0, 0))(2.0, x, pair)
    torch.testing.assert_close(mapped["sum"], 2.0 * x.sum(dim=1))
    torch.testing.assert_close(mapped["pair"][0], pair[0] * 2)
    torch.testing.assert_close(mapped["pair"][1], pair[1] + x[:, 0])
    # where vmap can, vmap it is
    plain = TorchAutodiff.vmap(lambda s, v, p: s * v.sum(), (None, 0, 0))(2.0, x, pair)
    torch.testing.assert_close(plain, 2.0 * x.sum(dim=1))


def test_a_final_softmaxs_confident_rows_keep_their_gradient():
    """Rows whose softmax rounds to 1 in float32 keep a gradient (the other classes'
    probabilities, not clipped, carry it), so grad_cos scores them 1 against themselves, as
    Keras models on TensorFlow now do too."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    linear = nn.Linear(6, 2)
    with torch.no_grad():
        linear.weight.zero_()
        linear.weight[:, 0] = torch.tensor([-8.0, 8.0])  # p rounds to 1 where |x0| > 1
        linear.bias.zero_()
    module = nn.Sequential(linear, nn.Softmax(dim=1)).eval()
    p = module(torch.as_tensor(X)).detach().numpy()[np.arange(40), y]
    # within 1e-7 of 1, where a clipped cross-entropy would have no gradient: whether the
    # softmax rounds such rows to exactly 1 depends on the machine's kernels
    saturated = np.flatnonzero(p > 1.0 - 1e-7)
    assert saturated.size >= 5
    explainer = GradientSimilarityExplainer(module, sim_fn="grad_cos").fit(X, y)
    scores = explainer.explain(X[saturated], y[saturated]).scores
    np.testing.assert_allclose(scores[np.arange(saturated.size), saturated], 1.0, rtol=1e-5)
    assert explainer.n_params_ == 14


class _BatchElsewhere(nn.Module):
    """A module whose outputs do not put the rows first."""

    def __init__(self, module, how):
        super().__init__()
        self.module, self.how = module, how

    def forward(self, x):
        out = self.module(x)
        return out.T if self.how == "transposed" else out.mean(0, keepdim=True)


@pytest.mark.parametrize("how", ["transposed", "one row for the batch"])
def test_outputs_must_put_the_rows_first(logits_cnn, images, how):
    # Transposed logits were read as rows: every "found" PN stayed in its instance's class.
    X, y = images
    module = _BatchElsewhere(logits_cnn, how)
    message = r"`estimator` returned outputs of shape \(\d+, \d+\) for \d+ rows: their " \
        "first axis must be the rows"
    for explainer in (CEMExplainer(module, input_shape=(1, 8, 8), mode="PN"),
                      CounterfactualExplainer(module, input_shape=(1, 8, 8)),
                      GradientSimilarityExplainer(module, input_shape=(1, 8, 8))):
        with pytest.raises(ValueError, match=message):
            explainer.fit(X[:100], y[:100])


def test_a_function_of_a_float32_network_is_asked_with_float32_rows(logits_cnn, images):
    """Found by a user: a predict_proba of a float32 network (skorch's, a function), which
    works on the user's float32 X, failed inside PyTorch on skcem's float64 rows."""
    X, _ = images
    X = X.astype(np.float32)

    def predict_proba(rows):
        with torch.no_grad():
            return torch.softmax(logits_cnn(torch.as_tensor(rows).reshape(-1, 1, 8, 8)),
                                 1).numpy()

    with pytest.raises(RuntimeError, match="should be the same"):
        predict_proba(X[:2].astype(np.float64))
    explainer = CounterfactualExplainer(predict_proba, **FAST).fit(X[:200])
    exp = _explain(explainer, X[1200:1204])
    # fitted on float64 rows too (the model takes float32 rows only, whatever X was)
    again = _explain(CounterfactualExplainer(predict_proba, **FAST).fit(
        X[:200].astype(np.float64)), X[1200:1204].astype(np.float64))
    np.testing.assert_array_equal(again.found, exp.found)
    assert exp.found.sum() >= 3
    answers = exp.explanation[exp.found].astype(np.float32)
    assert (predict_proba(answers).argmax(1) != exp.X_pred[exp.found]).all()


class _EmbeddingNet(nn.Module):
    """A tabular network: integer codes in columns 0 and 1 (embedded), numbers in 2 and 3."""

    def __init__(self):
        super().__init__()
        self.first, self.second = nn.Embedding(5, 3), nn.Embedding(3, 2)
        self.mlp = nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, x):
        codes = x[:, :2].long()
        return self.mlp(torch.cat([self.first(codes[:, 0]), self.second(codes[:, 1]),
                                   x[:, 2:]], 1))


def test_a_network_of_integer_codes_takes_them_as_categories():
    """Found by a user: categorical_features was refused for every network, and without it
    the gradient search put a code just below a whole number (0.9922), which the network's
    .long() read as another category while the answer reported a change of 0.008."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    first, second = rng.integers(0, 5, 600), rng.integers(0, 3, 600)
    numbers = rng.normal(size=(600, 2))
    y = ((first - 2) * 0.8 + (second == 1) * 1.5 - (second == 2) + numbers[:, 0]
         + 0.5 * numbers[:, 1] > 0).astype(int)
    X = np.c_[first, second, numbers].astype(np.float32)
    net = _EmbeddingNet()
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(torch.as_tensor(X)), torch.as_tensor(y)).backward()
        optimizer.step()
    net.eval()

    def predict(rows):
        with torch.no_grad():
            return net(torch.as_tensor(np.asarray(rows, np.float32))).argmax(1).numpy()

    for explainer in (CounterfactualExplainer(net, categorical_features=[0, 1]),
                      CEMExplainer(net, mode="PN", categorical_features=[0, 1])):
        exp = _explain(explainer.fit(X), X[:30])
        assert exp.found.sum() >= 27
        answers = exp.explanation[exp.found]
        assert set(answers[:, 0]) <= set(range(5)) and set(answers[:, 1]) <= set(range(3))
        assert (predict(answers) != predict(X[:30][exp.found])).all()
    with pytest.raises(ValueError, match="Categorical columns whose categories are not "
                                         "numbers"):
        CEMExplainer(net, categorical_features=[0]).fit(
            np.c_[np.array(["a", "b", "c"] * 200, dtype=object), X[:, 1:]])


class _TokenClassifier(nn.Module):
    """Token ids (as floats) through an embedding, averaged."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(20, 8)
        self.linear = nn.Linear(8, 2)

    def forward(self, x):
        return self.linear(self.embedding(x.long()).mean(1))


def test_token_ids_of_an_embedding_are_named_and_its_vocabulary_bounds_the_range():
    """Found by a user: token ids moved as numbers gave answers such as 2.9998 for 3 (token
    2 to the network's cast, a change of 2e-4 reported) without a word; a feature_range past
    the vocabulary failed inside torch ("index out of range in self") at explain. Named as
    categories, the ids change whole, one token where one is enough."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 20, size=(300, 10)).astype(np.float32)
    y = ((X == 3).sum(axis=1) > (X == 7).sum(axis=1)).astype(int)
    net = _train(_TokenClassifier(), X, y, steps=200)
    with pytest.warns(UserWarning, match=r"`estimator` holds an embedding layer, and X's "
                                         r"columns \[0, 1, 2, 3, 4\] \.\.\. hold whole"):
        CounterfactualExplainer(net, **FAST).fit(X)
    with warnings.catch_warnings(record=True) as caught:  # held: nothing to say (a review)
        warnings.simplefilter("always")
        CounterfactualExplainer(net, immutable_features=list(range(10)), **FAST).fit(X)
    assert not any("embedding layer" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match=r"`estimator` fails on rows at the bounds of "
                                         r"`feature_range` \(IndexError: index out of range"):
        CounterfactualExplainer(net, feature_range=(0, 40), **FAST).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named: no warning
        explainer = CounterfactualExplainer(net, categorical_features=list(range(10))).fit(X)
    answers = explainer.explain(X[:8])
    found = answers.found
    assert found.sum() >= 6
    answer = np.asarray(answers.explanation)[found]
    assert np.array_equal(answer, np.round(answer))  # whole tokens
    with torch.no_grad():
        pred = net(torch.as_tensor(answer)).argmax(1).numpy()
        own = net(torch.as_tensor(X[:8][found])).argmax(1).numpy()
    assert (pred != own).all()
    assert np.median((answer != X[:8][found]).sum(axis=1)) <= 2
    # the metrics take the module as the explainers do (a TypeError before)
    from skcem.metrics import explanation_metrics

    table = explanation_metrics(net, X[:8], answers, categorical_features=list(range(10)))
    assert table["valid"].tolist() == found.tolist()


@pytest.mark.parametrize("convolutional", [False, True])
def test_a_module_that_writes_into_its_input_is_explained(images, convolutional):
    """Found by a user: ``x[:, 0] = 0.5`` in forward crashed explain inside autograd (a view
    of a leaf written in place)."""
    X, y = images

    class Writes(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.Sequential(*_conv_layers()[1:]) if convolutional else \
                nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

        def forward(self, x):
            x[..., 0, 0] = 0.5  # a first pixel the model then ignores
            return self.body(x)

    module = Writes()
    shape = (1, 8, 8)
    _train(nn.Sequential(nn.Unflatten(1, shape), module), X[:1200], y[:1200])
    module.eval()
    rows = X[1200:1206].copy()
    given = rows.copy()
    explainer = CEMExplainer(module, mode="PN", input_shape=shape, **IMAGE, **FAST).fit(X[:600])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExplanationNotFoundWarning)
        exp = explainer.explain(rows)
    np.testing.assert_array_equal(rows, given)
    assert exp.found.any()
    found = exp.found
    assert (_predict(module, np.asarray(exp.explanation)[found].copy(), shape)
            != _predict(module, rows[found].copy(), shape)).all()


def test_a_device_this_pytorch_cannot_use_is_named(images):
    X, _ = images
    module = nn.Sequential(nn.Linear(64, 10))
    unusable = [kind for kind, usable in (
        ("mps", getattr(getattr(torch.backends, "mps", None), "is_available", lambda: False)()),
        ("xpu", getattr(getattr(torch, "xpu", None), "is_available", lambda: False)()),
        ("hpu", getattr(getattr(torch, "hpu", None), "is_available", lambda: False)()))
        if not usable]
    if not unusable:
        pytest.skip("this PyTorch has every device kind tried")
    for kind in unusable:  # one line each (mps's error held PyTorch's 55-line dispatcher dump)
        with pytest.raises(ValueError, match=f"`device` is '{kind}', which this PyTorch "
                                             "cannot use here") as caught:
            CounterfactualExplainer(module, device=kind).fit(X[:50])
        assert "\n" not in str(caught.value)


def test_an_autoencoder_without_its_weight_is_pointed_out(images):
    X, _ = images
    module = nn.Sequential(nn.Linear(64, 10))
    autoencoder = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 64))
    with pytest.warns(UserWarning, match="`autoencoder` weighs nothing with gamma=0"):
        CEMExplainer(module, autoencoder=autoencoder, max_iterations=5).fit(X[:50])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        CEMExplainer(module, autoencoder=autoencoder, gamma=1.0, max_iterations=5).fit(X[:50])


def test_an_embedding_on_float_rows_is_told_to_cast_them():
    """Found by a user: the error of an nn.Embedding given skcem's float rows asked for an
    input_shape, which was not the fix."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 50, size=(100, 8)).astype(float)
    y = (X[:, 0] < 25).astype(int)

    class Bag(nn.Module):
        def __init__(self, cast):
            super().__init__()
            self.cast = cast
            self.embedding = nn.Embedding(50, 6)
            self.out = nn.Linear(6, 2)

        def forward(self, x):
            return self.out(self.embedding(x.long() if self.cast else x).mean(1))

    with pytest.raises(ValueError, match=r"its Embedding takes integer ids, and skcem passes "
                                         r"the rows as float tensors. Cast them in forward"):
        GradientSimilarityExplainer(Bag(cast=False)).fit(X, y)
    scores = GradientSimilarityExplainer(Bag(cast=True)).fit(X, y).transform(X[:2])
    assert scores.shape == (2, 100) and np.isfinite(scores).all()


@pytest.mark.parametrize("head", ["logits", "softmax", "sigmoid"])
def test_similarity_of_rows_the_module_is_sure_of_equals_float64(head):
    """Found by a user: in float32 a probability rounds to 1 past a logit margin of about
    17, where the cross-entropy's gradient p - 1 lost the true class's part (logits,
    nn.Softmax) or vanished (nn.Sigmoid): grad_cos was 0.3 off, top neighbours changed."""
    from torch import nn

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1 if head == "sigmoid" else 2))
    with torch.no_grad():  # margins up to 30: many rows past the rounding
        body[0].weight[0] = torch.tensor([2.0, 2.0, 0.0, 0.0])
        body[2].weight[:, 0] = torch.tensor([25.0] if head == "sigmoid" else [-12.5, 12.5])
    module = nn.Sequential(*body, {"logits": nn.Identity(), "softmax": nn.Softmax(dim=1),
                                   "sigmoid": nn.Sigmoid()}[head])
    if head == "logits":
        module = body
    with torch.no_grad():
        logits = body(torch.as_tensor(X)).double()
    margin = (logits[:, 0] if head == "sigmoid" else logits[:, 1] - logits[:, 0]).abs()
    assert (margin > 17).sum() >= 10 and margin.max() < 35
    scores = GradientSimilarityExplainer(module, sim_fn="grad_cos").fit(X, y).transform(X)
    # the same loss in float64, one row at a time, from the logits
    twin = copy.deepcopy(body).double()

    def gradients(labels):
        rows = []
        for x, label in zip(torch.as_tensor(X, dtype=torch.float64), labels):
            out = twin(x[None])
            if head == "sigmoid":
                loss = nn.functional.binary_cross_entropy_with_logits(
                    out.reshape(1), torch.tensor([float(label)], dtype=torch.float64))
            else:
                loss = nn.functional.cross_entropy(out, torch.tensor([int(label)]))
            grads = torch.autograd.grad(loss, list(twin.parameters()))
            rows.append(torch.cat([g.reshape(-1) for g in grads]).numpy())
        G = np.array(rows)
        return G / np.linalg.norm(G, axis=1, keepdims=True)

    predicted = (logits[:, 0] > 0 if head == "sigmoid" else logits.argmax(dim=1)).numpy()
    # test rows by the module's own classes, training rows by y
    np.testing.assert_allclose(scores, gradients(predicted) @ gradients(y).T, atol=1e-4)


def test_similarity_of_a_sequential_subclass_ending_in_a_softmax():
    """Found by a review: the layers under the softmax were taken by slicing the module,
    which calls a subclass's own __init__ (failing on its arguments), and were not
    serialised with the module's other uses (another thread's search could leave its
    layers in eval mode)."""
    from torch import nn

    from skcem._gradients._torch import module_lock
    from skcem._param_grads._torch import make_gradients

    class MLP(nn.Sequential):
        def __init__(self, d_in, n_classes):
            super().__init__(OrderedDict([("hidden", nn.Linear(d_in, 8)), ("act", nn.Tanh()),
                                          ("out", nn.Linear(8, n_classes)),
                                          ("proba", nn.Softmax(dim=1))]))

    torch.manual_seed(0)
    module = MLP(4, 3)
    X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with torch.no_grad():  # training rows labelled as the module predicts them: a row's
        y = module(torch.as_tensor(X)).argmax(dim=1).numpy()  # score with itself is then 1
    scores = GradientSimilarityExplainer(module, sim_fn="grad_cos").fit(X, y).transform(X[:3])
    assert scores.shape == (3, 30) and np.allclose(scores[np.arange(3), np.arange(3)], 1.0)
    gradients = make_gradients(module, loss="auto", task="classification", input_shape=(4,),
                               output_kind="probabilities")
    assert gradients.head is module.proba
    assert module_lock(gradients.module) is module_lock(module)


def test_a_callers_inference_mode_gives_the_answers_of_no_grad(logits_cnn, images):
    """Found by a user: serving code explained under torch.inference_mode(), whose tensors
    autograd refuses ("Inference tensors do not track version counter")."""
    X, y = images
    test = X[1200:1204]

    def run():
        cem = CEMExplainer(logits_cnn, mode="PN", input_shape=(1, 8, 8), **IMAGE,
                           **FAST).fit(X[:200])
        similarity = GradientSimilarityExplainer(logits_cnn, input_shape=(1, 8, 8)).fit(
            X[:100], y[:100])
        return (_explain(cem, test).explanation, similarity.explain(test).scores,
                similarity.self_influence())

    with torch.no_grad():
        expected = run()
    with torch.inference_mode():
        got = run()
    assert torch.is_inference_mode_enabled() is False
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_outputs_of_several_axes_of_scores_get_one_clear_error(images):
    """Found by a user: a module returning (n, 2, 3) was read as a six-class classifier
    (logits), or refused as probabilities that sum to 2."""
    X, y = images
    for last in ([], [nn.Softmax(-1)]):
        torch.manual_seed(0)
        module = nn.Sequential(nn.Linear(64, 6), nn.Unflatten(1, (2, 3)), *last).eval()
        for make in (lambda: CEMExplainer(module).fit(X[:30]),
                     lambda: GradientSimilarityExplainer(module).fit(X[:30], y[:30] % 3)):
            with pytest.raises(ValueError, match=r"returns outputs of shape \(30, 2, 3\): a "
                                                 r"classifier returns one row of class scores"):
                make()
    # axes of length 1 are no scores: (n, 10, 1, 1) is ten classes
    torch.manual_seed(0)
    squeezable = nn.Sequential(nn.Linear(64, 10), nn.Unflatten(1, (10, 1, 1))).eval()
    assert CEMExplainer(squeezable).fit(X[:30]).classes_.tolist() == list(range(10))


class _FlatAutoencoder(nn.Module):
    """An auto-encoder of the user's own whose first layer takes flat rows."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.encode = nn.Linear(64, 8)
        self.decode = nn.Linear(8, 64)

    def forward(self, x):
        return self.decode(torch.relu(self.encode(x)))


def test_a_modules_own_autoencoder_on_flat_rows_beside_an_image_classifier(logits_cnn,
                                                                            images):
    """Found by a user: an auto-encoder module (not nn.Sequential) starting with a Linear was
    refused beside a classifier of input_shape (1, 8, 8), with advice to pass input_shape."""
    X, _ = images
    autoencoder = _FlatAutoencoder().eval()
    cem = CEMExplainer(logits_cnn, mode="PN", input_shape=(1, 8, 8), autoencoder=autoencoder,
                       gamma=0.1, **IMAGE, **FAST).fit(X[:100])
    exp = _explain(cem, X[1200:1203])
    assert exp.found.any()
    pred = _predict(logits_cnn, exp.explanation[exp.found])
    assert np.all(pred != exp.X_pred[exp.found])
    wrong = nn.Sequential(nn.Linear(10, 64)).eval()  # takes neither shape
    with pytest.raises(ValueError, match=r"`autoencoder` fails on rows.*and on flat rows"):
        CEMExplainer(logits_cnn, input_shape=(1, 8, 8), autoencoder=wrong).fit(X[:20])


def test_a_module_of_class_labels_and_images_unflattened_get_one_clear_line(images):
    """Found by a new user: a module returning its argmax (int64) was read as one logit;
    4-D images got advice for Keras alone; plausibility on images did not say why
    search='auto' cannot run it."""
    X, y = images

    class Labels(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(64, 2)

        def forward(self, x):
            return self.linear(x).argmax(1)

    binary = (y[:200] > 4).astype(int)
    with pytest.raises(ValueError, match=r"outputs int64 values \(class labels"):
        CEMExplainer(Labels()).fit(X[:200], binary)

    class OneHot(Labels):  # integer rows of one column per class: probabilities (a review)
        def forward(self, x):
            return nn.functional.one_hot(super().forward(x), 2)

    CEMExplainer(OneHot(), search="neighbors").fit(X[:200], binary)
    with pytest.raises(ValueError, match=r"PyTorch module's is given as "
                                         r"input_shape=X.shape\[1:\]"):
        CEMExplainer(nn.Sequential(nn.Flatten(), nn.Linear(64, 10))).fit(
            X[:20].reshape(-1, 1, 8, 8))
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))
    with pytest.raises(ValueError, match="not on images"):
        CounterfactualExplainer(cnn, input_shape=(1, 8, 8), plausibility=1.0).fit(X[:50])


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16, track_running_stats=False),
                          nn.ReLU(), nn.Linear(16, 10)),
    lambda: nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3),
                          nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 6 * 6, 10))], ids=["BatchNorm1d", "BatchNorm2d"])
def test_a_module_normalising_by_its_batchs_statistics_is_refused(images, make):
    """Found by a user: a BatchNorm without running statistics uses each batch's own in eval
    mode, so a row's class depends on the rows asked with it: 2 of 10 PNs reported found
    were not valid asked alone (a BatchNorm1d's one-row probe blamed input_shape)."""
    X, y = images
    torch.manual_seed(0)
    module = make()
    _train(module, X[:300], y[:300], steps=20)
    for explainer in (CEMExplainer(module, **FAST), CounterfactualExplainer(module),
                      GradientSimilarityExplainer(module)):
        with pytest.raises(ValueError, match=r"`estimator` normalises each batch by its own "
                                             r"statistics \(BatchNorm\dd at '\d' with "
                                             r"track_running_stats=False"):
            explainer.fit(X[:100], y[:100])
    # running statistics: a row's outputs are its own, and the module is explained
    kept = make()
    for layer in kept.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.track_running_stats = True
            layer.register_buffer("running_mean", torch.zeros(layer.num_features))
            layer.register_buffer("running_var", torch.ones(layer.num_features))
            layer.register_buffer("num_batches_tracked", torch.tensor(0))
    _train(kept, X[:300], y[:300], steps=20)
    exp = CounterfactualExplainer(kept, feature_range=(0.0, 1.0)).fit(X[:100]).explain(X[:3])
    with torch.no_grad():
        kept.eval()
        alone = [int(kept(torch.as_tensor(row[None], dtype=torch.float32)).argmax())
                 for row in exp.explanation]
    assert exp.found.any()
    np.testing.assert_array_equal(np.array(alone)[exp.found],
                                  exp.explanation_pred[exp.found].astype(int))


def test_pps_on_images_keep_no_pixel_the_class_does_without(logits_cnn, images):
    """Found by a user: search="auto" did not polish PPs on images, and 12 of 20 digits PPs
    kept pixels the class stayed without (one kept 13 where 7 did); now no kept pixel can be
    removed alone."""
    X, _ = images
    explainer = CEMExplainer(logits_cnn, mode="PP", input_shape=(1, 8, 8), **IMAGE)
    exp = _explain(explainer.fit(X[:300]), X[1200:1215])
    assert exp.found.sum() >= 10
    for row, label in zip(exp.explanation[exp.found], exp.X_pred[exp.found]):
        kept = np.flatnonzero(row > 0)
        trials = np.repeat(row[None], len(kept), axis=0)
        trials[np.arange(len(kept)), kept] = 0.0
        if kept.size:  # (a PP that keeps nothing: the background alone has the class)
            assert not np.any(_predict(logits_cnn, trials) == label)

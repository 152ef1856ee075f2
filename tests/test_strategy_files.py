"""The shipped strategy files of the bilevel and DP-SGD tasks (bilevel.md §10-11, dpsgd.md §10-11).

Bilevel: every file loads in the driver's namespace, both functions return valid
strategies, and their values equal a table transcribed independently from the spec.
DP-SGD: every `DPMechanism` is exercised directly on per-sample gradients shaped like
MNISTNet's parameters (dpsgd.md §3, §6.1), without the driver: output shapes, the noise
scale, the noise-free output against a direct computation, and the reported sigma.
"""

import ast
import math
from pathlib import Path

import pytest
import torch

from optrepro.tasks import get
from optrepro.tasks.bilevel.config import (
    HypercleanStrategy,
    ToyStrategy,
)

STRATEGIES = Path(__file__).resolve().parent.parent / "strategies"


def docstring(path):
    return ast.get_docstring(ast.parse(path.read_text())) or ""


# ---------------------------------------------------------------------------------------------- bilevel



def v(lrx, lry, lr_inner, g0, g1, ramp, outer, inner=1, **extra):
    return dict(method="v_pbgd", lrx=lrx, lry=lry, lr_inner=lr_inner, gamma_init=g0, gamma_max=g1,
                gamma_argmax_step=ramp, outer_itr=outer, inner_itr=inner, **extra)


def g(lrx, lry, g0, g1, ramp, outer, **extra):
    return dict(method="g_pbgd", lrx=lrx, lry=lry, gamma_init=g0, gamma_max=g1, gamma_argmax_step=ramp,
                outer_itr=outer, **extra)


def r(method, lr_inner, K):
    return dict(method=method, lr_inner=lr_inner, lr=0.001, T=500, K=K, outer_itr=100, eval_interval=1)


# Fields not given keep their dataclass defaults (reg 0.0, eval_interval 10, inner_itr 1, ...).
BASE_TOY = ("v_pbgd", (10.0,), 0.1)
V_LINEAR = v(0.1, 0.1, 0.01, 0.0, 0.2, 30000, 40000)
V_MLP = v(0.1, 0.01, 0.01, 0.0, 0.1, 10000, 80000)
G_MLP = g(0.5, 0.5, 0.0, 37.0, 30000, 50000)
CL_REG_MLP = g(0.5, 0.5, 0.0, 40.0, 25000, 60000, reg=0.001)
BILEVEL = {  # name: (toy (method, gams, alpha0), linear, mlp)
    "v_pbgd": (BASE_TOY, V_LINEAR, V_MLP),
    "g_pbgd": (("g_pbgd", (10.0,), 0.1), g(0.3, 0.5, 0.0, 37.0, 5000, 40000), G_MLP),
    "rhg": (BASE_TOY, r("rhg", 0.1, 500), r("rhg", 0.4, 500)),
    "t_rhg": (BASE_TOY, r("t_rhg", 0.1, 100), r("t_rhg", 0.4, 100)),
    "opus_gam7_hybrid": (("v_pbgd", (7.0,), 0.1), v(0.1, 0.1, 0.02, 0.0, 0.3, 30000, 50000, inner=2),
                         g(0.5, 0.5, 0.0, 40.0, 35000, 60000)),
    "deepseek_twostage_hybrid": (("v_pbgd", (1.0, 10.0), 0.1), v(0.15, 0.15, 0.01, 0.0, 0.3, 25000, 40000),
                                 g(0.3, 0.5, 0.0, 30.0, 20000, 60000)),
    "deepseek_gam5_toy": (("v_pbgd", (5.0,), 0.1), V_LINEAR, V_MLP),
    "gemini_alpha02_hybrid": (("v_pbgd", (10.0,), 0.2), v(0.2, 0.2, 0.01, 0.0, 0.2, 30000, 40000),
                              g(0.5, 0.5, 0.0, 40.0, 30000, 50000)),
    "gemini_ep1_gam2": (("v_pbgd", (2.0,), 0.04), v(0.2, 0.2, 0.02, 0.0, 0.5, 40000, 50000),
                        g(0.6, 0.6, 0.0, 40.0, 40000, 60000)),
    "gemini_ep2_short_linear": (("v_pbgd", (10.0,), 0.2), v(0.2, 0.2, 0.1, 0.0, 0.3, 20000, 20000), G_MLP),
    "gpt54pro_no_edit": (BASE_TOY, V_LINEAR, V_MLP),
    "openai_gpt54pro_no_edit": (BASE_TOY, V_LINEAR, V_MLP),
    "qwen_sevenstage_gpbgd50": (("v_pbgd", (1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0), 0.2),
                                g(0.3, 0.5, 0.0, 50.0, 8000, 50000), g(0.5, 0.5, 0.0, 50.0, 15000, 60000)),
    "qwen_multistage_inner5": (("v_pbgd", (5.0, 10.0, 20.0), 0.1),
                               v(0.3, 0.1, 0.01, 0.0, 0.3, 20000, 40000, inner=5),
                               v(0.3, 0.01, 0.01, 0.0, 0.15, 50000, 80000, inner=5)),
    "qwen_baseline_hybrid": (BASE_TOY, V_LINEAR, G_MLP),
    "cl_alpha02_inner3": (("v_pbgd", (10.0,), 0.2), v(0.1, 0.1, 0.01, 0.0, 0.3, 25000, 50000, inner=3),
                          g(0.5, 0.5, 0.0, 42.0, 35000, 65000)),
    "cl_gam6_reg": (("v_pbgd", (6.0,), 0.18), v(0.12, 0.1, 0.01, 0.0, 0.3, 20000, 48000), CL_REG_MLP),
    "cl_alpha02_reg": (("v_pbgd", (10.0,), 0.2), v(0.1, 0.1, 0.01, 0.0, 0.25, 20000, 40000), CL_REG_MLP),
    "ds_gam_ladder": (("v_pbgd", (1.0, 10.0, 100.0), 0.1), v(0.1, 0.1, 0.01, 0.0, 1.0, 30000, 40000), G_MLP),
    "ds_fast_penalty": (("v_pbgd", (5.0,), 0.2), v(0.2, 0.2, 0.01, 0.1, 2.0, 5000, 40000),
                        g(0.5, 0.5, 0.0, 37.0, 10000, 50000)),
}


def test_bilevel_files_are_exactly_the_table():
    assert sorted(p.stem for p in (STRATEGIES / "bilevel").glob("*.py")) == sorted(BILEVEL)


@pytest.mark.parametrize("name", sorted(BILEVEL))
def test_bilevel_strategy(name):
    path = STRATEGIES / "bilevel" / f"{name}.py"
    assert "bilevel.md §1" in docstring(path)
    strategy = get("bilevel").load_driver().load_strategy(path)  # among the names the driver offers
    toy, linear, mlp = BILEVEL[name]
    got = strategy.get_toy_strategy()
    got.validate()
    assert got == ToyStrategy(*toy)
    for net, expected in (("linear", linear), ("mlp", mlp)):
        got = strategy.get_hyperclean_strategy(net)
        got.validate()
        assert got == HypercleanStrategy(**expected), net
    with pytest.raises(ValueError):
        strategy.get_hyperclean_strategy("cnn")


# ---------------------------------------------------------------------------------------------- DP-SGD

DPSGD = ["standard_dpsgd", "automatic_clipping", "adaptive_clipping", "noise_decay",
         "ema_centered_adaptive_clip", "adaptive_clip_epoch_decay_ema", "ema_centered_autos",
         "per_tensor_clip_momentum_blend", "gm_autos_centered", "gm_centered_adaptive_bc", "gm_autos_noise_decay"]
MNIST_SHAPES = [(16, 1, 8, 8), (16,), (32, 16, 4, 4), (32,), (32, 512), (32,), (10, 32), (10,)]  # dpsgd.md §6.1
B = 16
SIGMA_MNIST, SIGMA_CIFAR = 0.2385, 0.6405  # calibrated sigma, dpsgd.md §4.2


def mechanism(name, sigma=SIGMA_MNIST, clip=1.0, epochs=5, dataset_size=60000, batch_size=B):
    path = STRATEGIES / "dpsgd" / f"{name}.py"
    cls = get("dpsgd").load_driver().load_strategy(path).DPMechanism
    return cls(max_grad_norm=clip, noise_multiplier=sigma, n_params=26010, dataset_size=dataset_size,
               batch_size=batch_size, epochs=epochs, target_epsilon=3.0, target_delta=1e-5)


def grads(low, high, seed=0):
    """Per-sample gradients (list, leading dim B) whose global norms are log-spaced in [low, high]."""
    gen = torch.Generator().manual_seed(seed)
    raw = [torch.randn((B, *s), generator=gen) for s in MNIST_SHAPES]
    target = torch.logspace(math.log10(low), math.log10(high), B)
    scale = target / global_norms(raw)
    return [t * scale.view(-1, *([1] * (t.dim() - 1))) for t in raw]


def global_norms(per_sample):
    return torch.sqrt(sum(t.reshape(B, -1).pow(2).sum(1) for t in per_sample))


def clipped_mean(per_sample, clip):
    factor = (clip / global_norms(per_sample)).clamp(max=1.0)
    return [(t * factor.view(-1, *([1] * (t.dim() - 1)))).mean(0) for t in per_sample]


def autos_mean(per_sample, gamma=0.01):
    factor = 1.0 / (global_norms(per_sample) + gamma)
    return [(t * factor.view(-1, *([1] * (t.dim() - 1)))).mean(0) for t in per_sample]


def zeros():
    return [torch.zeros((B, *s)) for s in MNIST_SHAPES]


def noise_std(out):
    return torch.cat([t.flatten() for t in out]).std().item()


def close(a, b):
    return all(torch.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(a, b, strict=True))


def sigma0_ratio(epochs):
    interval = max(1, epochs // 4)
    return math.sqrt(sum(0.8 ** (-2 * ((e - 1) // interval)) for e in range(1, epochs + 1)) / epochs)


def test_dpsgd_files_are_exactly_the_list():
    assert sorted(p.stem for p in (STRATEGIES / "dpsgd").glob("*.py")) == sorted(DPSGD)


@pytest.mark.parametrize("name", DPSGD)
def test_dpsgd_contract(name):
    """§3.2: one tensor per parameter tensor, the parameter's shape and dtype, finite; §3.3: a float."""
    doc = docstring(STRATEGIES / "dpsgd" / f"{name}.py")
    assert "dpsgd.md §1" in doc and "rivacy" in doc
    mech = mechanism(name)
    per_sample = grads(0.1, 10.0)
    for step in range(3):
        out = mech.clip_and_noise(per_sample, step, 1)
        assert [tuple(t.shape) for t in out] == MNIST_SHAPES
        assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in out)
    assert isinstance(mech.get_effective_sigma(3, 1), float)


@pytest.mark.parametrize("name", ["standard_dpsgd", "automatic_clipping", "adaptive_clipping",
                                  "ema_centered_adaptive_clip", "ema_centered_autos",
                                  "per_tensor_clip_momentum_blend", "gm_autos_centered",
                                  "gm_centered_adaptive_bc", "gm_autos_noise_decay"])
def test_reported_sigma_is_the_calibrated_one(name):
    mech = mechanism(name, sigma=SIGMA_CIFAR, epochs=30)
    for step in range(2):
        mech.clip_and_noise(grads(0.1, 10.0), step, 1)
    assert mech.get_effective_sigma(2, 1) == SIGMA_CIFAR
    assert mech.get_effective_sigma(2, 30) == SIGMA_CIFAR


def test_standard_dpsgd():
    per_sample = grads(0.1, 10.0)
    assert close(mechanism("standard_dpsgd", sigma=0.0).clip_and_noise(per_sample, 0, 1), clipped_mean(per_sample, 1.0))
    assert close(mechanism("standard_dpsgd", sigma=0.0, clip=2.0).clip_and_noise(per_sample, 0, 1),
                 clipped_mean(per_sample, 2.0))
    std = noise_std(mechanism("standard_dpsgd", clip=2.0).clip_and_noise(zeros(), 0, 1))
    assert std == pytest.approx(SIGMA_MNIST * 2.0 / B, rel=0.03)


def test_automatic_clipping():
    per_sample = grads(0.001, 10.0)
    assert close(mechanism("automatic_clipping", sigma=0.0, clip=5.0).clip_and_noise(per_sample, 0, 1),
                 autos_mean(per_sample))
    std = noise_std(mechanism("automatic_clipping", clip=5.0).clip_and_noise(zeros(), 0, 1))
    assert std == pytest.approx(SIGMA_MNIST / B, rel=0.03)  # sensitivity 1, max_grad_norm ignored


def test_adaptive_clipping():
    big, small = grads(5.0, 50.0), grads(1e-3, 1e-2)
    mech = mechanism("adaptive_clipping", sigma=0.0)
    assert close(mech.clip_and_noise(big, 0, 1), clipped_mean(big, math.exp(0.1)))  # clips at the updated C
    assert close(mech.clip_and_noise(big, 1, 1), clipped_mean(big, math.exp(0.2)))
    assert close(mech.clip_and_noise(small, 2, 1), clipped_mean(small, math.exp(0.1)))
    mech = mechanism("adaptive_clipping")
    std = noise_std(mech.clip_and_noise(zeros(), 0, 1))  # no norm above C: C -> exp(-0.1)
    assert std == pytest.approx(SIGMA_MNIST * math.exp(-0.1) / B, rel=0.03)
    mech = mechanism("adaptive_clipping", sigma=0.0, clip=200.0)
    assert close(mech.clip_and_noise(big, 0, 1), clipped_mean(big, 100.0))  # clamped to [0.01, 100]


def test_noise_decay_schedule():
    # E = 5: five one-epoch stages; sigma0 ~ 1.719 sigma (dpsgd.md §10.4).
    assert sigma0_ratio(5) == pytest.approx(1.719, abs=1e-3)
    assert sigma0_ratio(30) == pytest.approx(1.567, abs=1e-3)
    steps_per_epoch, epochs = 3, 5
    mech = mechanism("noise_decay", epochs=epochs, dataset_size=steps_per_epoch * B + 5)
    assert mech.get_effective_sigma(0, 1) == SIGMA_MNIST
    sigma0 = SIGMA_MNIST * sigma0_ratio(5)
    step = 0
    for epoch in range(1, epochs + 1):
        for _ in range(steps_per_epoch):
            out = mech.clip_and_noise(zeros(), step, epoch)
            step += 1
        stage_sigma, stage_clip = sigma0 * 0.8 ** (epoch - 1), 0.85 ** (epoch - 1)
        assert noise_std(out) == pytest.approx(stage_sigma * stage_clip / B, rel=0.03)
        inverse = sum(steps_per_epoch / (sigma0 * 0.8 ** (e - 1)) ** 2 for e in range(1, epoch + 1))
        assert mech.get_effective_sigma(step, epoch) == pytest.approx(math.sqrt(step / inverse), rel=1e-12)
        if epoch == 1:
            assert mech.get_effective_sigma(step, epoch) == pytest.approx(sigma0, rel=1e-12)
    assert mech.get_effective_sigma(step, epochs) == pytest.approx(SIGMA_MNIST, rel=1e-12)  # equals sigma at the end
    # E = 30: stages of 7 epochs, the last one (epochs 29-30) is stage 4.
    mech = mechanism("noise_decay", sigma=SIGMA_CIFAR, epochs=30, dataset_size=50000)
    mech.clip_and_noise(zeros(), 0, 1)
    assert mech.get_effective_sigma(1, 1) == pytest.approx(SIGMA_CIFAR * sigma0_ratio(30), rel=1e-12)
    per_sample = grads(0.1, 10.0)
    mech = mechanism("noise_decay", sigma=1e-9, epochs=30)  # sigma 0 would divide by zero in the accounting
    assert close(mech.clip_and_noise(per_sample, 0, 8), clipped_mean(per_sample, 0.85))
    assert close(mech.clip_and_noise(per_sample, 1, 29), clipped_mean(per_sample, 0.85 ** 4))


def test_gm_autos_noise_decay():
    per_sample = grads(0.001, 10.0)
    assert close(mechanism("gm_autos_noise_decay", sigma=0.0).clip_and_noise(per_sample, 0, 1), autos_mean(per_sample))
    mech = mechanism("gm_autos_noise_decay", clip=3.0)
    sigma0 = SIGMA_MNIST * sigma0_ratio(5)
    assert noise_std(mech.clip_and_noise(zeros(), 0, 1)) == pytest.approx(sigma0 / B, rel=0.03)
    assert noise_std(mech.clip_and_noise(zeros(), 1, 5)) == pytest.approx(sigma0 * 0.8 ** 4 / B, rel=0.03)
    assert mech.get_effective_sigma(2, 5) == SIGMA_MNIST  # reports the constant sigma, not the noise used


def test_ema_centered_adaptive_clip():
    big = grads(5.0, 50.0)
    mech = mechanism("ema_centered_adaptive_clip", sigma=0.0)
    first = mech.clip_and_noise(big, 0, 1)
    assert close(first, clipped_mean(big, math.exp(0.1)))
    centre = [0.1 * t for t in first]
    residual = [t - c for t, c in zip(big, centre)]
    expected = [c + m for c, m in zip(centre, clipped_mean(residual, math.exp(0.2)))]
    assert close(mech.clip_and_noise(big, 1, 1), expected)
    mech = mechanism("ema_centered_adaptive_clip")
    assert noise_std(mech.clip_and_noise(zeros(), 0, 1)) == pytest.approx(SIGMA_MNIST * math.exp(-0.1) / B, rel=0.03)
    mech = mechanism("ema_centered_adaptive_clip", sigma=0.0, clip=0.004)
    small = grads(1e-5, 1e-4)
    assert close(mech.clip_and_noise(small, 0, 1), clipped_mean(small, 0.005))  # clamped to [0.005, 50]


def test_adaptive_clip_epoch_decay_ema():
    big = grads(20.0, 50.0)
    mech = mechanism("adaptive_clip_epoch_decay_ema", sigma=0.0)
    clip_eff = math.exp(0.1) * 0.95  # epoch 2
    first = mech.clip_and_noise(big, 0, 2)
    assert close(first, [0.1 * m for m in clipped_mean(big, clip_eff)])
    clip_eff = math.exp(0.2) * 0.95
    expected = [0.9 * f + 0.1 * m for f, m in zip(first, clipped_mean(big, clip_eff))]
    assert close(mech.clip_and_noise(big, 1, 2), expected)
    mech = mechanism("adaptive_clip_epoch_decay_ema", clip=2.0)
    mech.clip_and_noise(big, 0, 1)  # base C: 2 -> 2 e^0.1
    assert mech.get_effective_sigma(1, 1) == pytest.approx(SIGMA_MNIST * math.exp(0.1), rel=1e-12)
    assert mech.get_effective_sigma(1, 3) == pytest.approx(SIGMA_MNIST * math.exp(0.1) * 0.95 ** 2, rel=1e-12)
    mech = mechanism("adaptive_clip_epoch_decay_ema", clip=9.8)
    mech.clip_and_noise(big, 0, 1)  # 9.8 e^0.1 clamps to 10
    assert mech.get_effective_sigma(1, 1) == pytest.approx(SIGMA_MNIST * 10.0 / 9.8, rel=1e-12)


@pytest.mark.parametrize("name", ["ema_centered_autos", "gm_autos_centered"])
def test_ema_centered_autos(name):
    per_sample = grads(0.001, 10.0)
    mech = mechanism(name, sigma=0.0, clip=5.0)
    first = mech.clip_and_noise(per_sample, 0, 1)
    assert close(first, autos_mean(per_sample))
    mu = [0.1 * t for t in first]
    expected = [m + a for m, a in zip(mu, autos_mean([t - m for t, m in zip(per_sample, mu)]))]
    assert close(mech.clip_and_noise(per_sample, 1, 1), expected)
    std = noise_std(mechanism(name, clip=5.0).clip_and_noise(zeros(), 0, 1))
    assert std == pytest.approx(SIGMA_MNIST / B, rel=0.03)


def test_gm_autos_centered_is_an_alias():
    def code(name):
        tree = ast.parse((STRATEGIES / "dpsgd" / f"{name}.py").read_text())
        return ast.dump(ast.Module(body=tree.body[1:], type_ignores=[]))
    assert code("gm_autos_centered") == code("ema_centered_autos")


def test_gm_centered_adaptive_bc():
    big = grads(5.0, 50.0)
    mech = mechanism("gm_centered_adaptive_bc", sigma=0.0)
    first = mech.clip_and_noise(big, 0, 1)  # m = 0, so the centre is 0
    assert close(first, clipped_mean(big, math.exp(0.1)))
    centre = [0.1 * t / (1 - 0.9 ** 2) for t in first]  # bias-corrected before step 1
    residual = [t - c for t, c in zip(big, centre)]
    expected = [c + m for c, m in zip(centre, clipped_mean(residual, math.exp(0.2)))]
    assert close(mech.clip_and_noise(big, 1, 1), expected)
    mech = mechanism("gm_centered_adaptive_bc")
    assert noise_std(mech.clip_and_noise(zeros(), 0, 1)) == pytest.approx(SIGMA_MNIST * math.exp(-0.1) / B, rel=0.03)


def test_per_tensor_clip_momentum_blend():
    per_sample = grads(0.1, 10.0)
    mech = mechanism("per_tensor_clip_momentum_blend", sigma=0.0)
    first = mech.clip_and_noise(per_sample, 0, 1)
    norm_ema, means = [], []
    for t, out in zip(per_sample, first):
        norms = t.reshape(B, -1).norm(dim=1)
        norm_ema.append(norms.mean().item())
        clip = max(0.01, min(norm_ema[-1], 1.0))
        mean = (t * (clip / norms).clamp(max=1.0).view(-1, *([1] * (t.dim() - 1)))).mean(0)
        means.append(mean)
        assert torch.allclose(out, 0.405 * mean, rtol=1e-5, atol=1e-7)  # 0.7 * 0.15 + 0.3
    half = [t * 0.5 for t in per_sample]
    second = mech.clip_and_noise(half, 1, 1)
    for layer, (t, out) in enumerate(zip(half, second)):
        norms = t.reshape(B, -1).norm(dim=1)
        ema = 0.9 * norm_ema[layer] + 0.1 * norms.mean().item()
        clip = max(0.01, min(ema, 1.0))
        mean = (t * (clip / norms).clamp(max=1.0).view(-1, *([1] * (t.dim() - 1)))).mean(0)
        buffer = 0.85 * 0.15 * means[layer] + 0.15 * mean
        assert torch.allclose(out, 0.7 * buffer + 0.3 * mean, rtol=1e-5, atol=1e-7)
    # Noise is per tensor: std sigma * C_l / B with C_l = max(0.01, ...) = 0.01 for zero gradients.
    mech = mechanism("per_tensor_clip_momentum_blend")
    out = mech.clip_and_noise(zeros(), 0, 1)
    assert noise_std(out) == pytest.approx(SIGMA_MNIST * 0.01 / B, rel=0.03)

"""msrnet.metrics: Y conversion, PSNR and SSIM on known inputs and against a naive reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from msrnet.metrics import psnr, rgb_to_y, ssim


def _rand_u8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.copy()).permute(2, 0, 1).double() / 255


def _ref_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Wang's ssim_index.m with explicit loops: fspecial('gaussian', 11, 1.5), 'valid', mean."""
    r = np.arange(-5, 6)
    window = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    h, w = a.shape
    values = []
    for i in range(h - 10):
        for j in range(w - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            mu_a, mu_b = (window * pa).sum(), (window * pb).sum()
            var_a = (window * pa * pa).sum() - mu_a**2
            var_b = (window * pb * pb).sum() - mu_b**2
            cov = (window * pa * pb).sum() - mu_a * mu_b
            values.append(
                ((2 * mu_a * mu_b + c1) * (2 * cov + c2))
                / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
            )
    return float(np.mean(values))


# --- Y conversion ---------------------------------------------------------------------------


def test_rgb_to_y_known_values() -> None:
    img = np.array(
        [[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8
    )
    np.testing.assert_allclose(
        rgb_to_y(img), [[16.0, 235.0, 81.481, 144.553, 40.966]], rtol=0, atol=1e-12
    )


def test_rgb_to_y_gray_is_r_eq_g_eq_b() -> None:
    gray = _rand_u8((6, 7))
    expected = 16 + 219 * gray.astype(np.float64) / 255
    np.testing.assert_allclose(rgb_to_y(gray), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rgb_to_y(gray[:, :, None]), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        rgb_to_y(np.repeat(gray[:, :, None], 3, axis=2)), expected, rtol=0, atol=1e-12
    )


def test_rgb_to_y_tensor_matches_numpy() -> None:
    img = _rand_u8((5, 8, 3))
    y_tensor = rgb_to_y(_to_tensor(img))
    assert y_tensor.shape == (5, 8)
    np.testing.assert_allclose(y_tensor.numpy(), rgb_to_y(img), rtol=0, atol=1e-10)
    batch = torch.stack([_to_tensor(img)] * 2).float()
    assert rgb_to_y(batch).shape == (2, 5, 8)


# --- PSNR -----------------------------------------------------------------------------------


def test_psnr_constant_offset() -> None:
    hr = np.full((20, 20, 3), 100, dtype=np.uint8)
    sr = hr + np.uint8(10)
    # RGB: MSE = 100. Y of an offset gray image moves by 219/255 * 10.
    assert psnr(sr, hr, 0, y_channel=False) == pytest.approx(
        10 * math.log10(255**2 / 100), abs=1e-10
    )
    dy = 219 / 255 * 10
    assert psnr(sr, hr, 0) == pytest.approx(10 * math.log10(255**2 / dy**2), abs=1e-10)


def test_psnr_identical_is_inf_and_crop_border_shaves() -> None:
    hr = _rand_u8((16, 16, 3))
    assert psnr(hr, hr.copy(), 2) == math.inf
    sr = hr.copy()
    sr[:2] = 0
    sr[:, -2:] = 255
    assert psnr(sr, hr, 2) == math.inf
    assert psnr(sr, hr, 1) < math.inf


def test_psnr_gray_layouts_agree() -> None:
    hr, sr = _rand_u8((12, 14), 1), _rand_u8((12, 14), 2)
    expected = psnr(sr, hr, 1)
    assert psnr(sr[:, :, None], hr[:, :, None], 1) == pytest.approx(expected, abs=1e-12)

    def rgb(g: np.ndarray) -> np.ndarray:
        return np.repeat(g[:, :, None], 3, axis=2)

    assert psnr(rgb(sr), rgb(hr), 1) == pytest.approx(expected, abs=1e-10)


def test_psnr_tensor_matches_numpy_and_batches() -> None:
    pairs = [(_rand_u8((20, 24, 3), 2 * i), _rand_u8((20, 24, 3), 2 * i + 1)) for i in range(3)]
    sr = torch.stack([_to_tensor(s) for s, _ in pairs]).float()
    hr = torch.stack([_to_tensor(h) for _, h in pairs]).float()
    values = psnr(sr, hr, 4)
    assert isinstance(values, torch.Tensor) and values.shape == (3,)
    for i, (s, h) in enumerate(pairs):
        assert float(values[i]) == pytest.approx(psnr(s, h, 4), abs=1e-6)
        single = psnr(sr[i], hr[i], 4)
        assert isinstance(single, torch.Tensor) and single.dim() == 0


# --- SSIM -----------------------------------------------------------------------------------


def test_ssim_identical_is_one() -> None:
    img = _rand_u8((24, 24, 3))
    assert ssim(img, img.copy(), 2) == pytest.approx(1.0, abs=1e-12)


def test_ssim_constant_images() -> None:
    # No variance: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1).
    a = np.full((15, 15), 50, dtype=np.uint8)
    b = np.full((15, 15), 80, dtype=np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 50 * 80 + c1) / (50**2 + 80**2 + c1)
    assert ssim(a, b, 0, y_channel=False) == pytest.approx(expected, abs=1e-12)


def test_ssim_matches_naive_reference() -> None:
    hr = _rand_u8((23, 26, 3), 3)
    noise = np.random.default_rng(4).integers(-30, 31, hr.shape)
    sr = np.clip(hr.astype(int) + noise, 0, 255).astype(np.uint8)
    expected = _ref_ssim(rgb_to_y(sr)[2:-2, 2:-2], rgb_to_y(hr)[2:-2, 2:-2])
    assert ssim(sr, hr, 2) == pytest.approx(expected, abs=1e-10)
    per_channel = np.mean(
        [_ref_ssim(sr[..., c].astype(float), hr[..., c].astype(float)) for c in range(3)]
    )
    assert ssim(sr, hr, 0, y_channel=False) == pytest.approx(per_channel, abs=1e-10)


def test_ssim_tensor_matches_numpy_and_batches() -> None:
    hr = _rand_u8((30, 28, 3), 5)
    sr = np.clip(
        hr.astype(int) + np.random.default_rng(6).integers(-20, 21, hr.shape), 0, 255
    ).astype(np.uint8)
    expected = ssim(sr, hr, 3)
    batch_sr = torch.stack([_to_tensor(sr), _to_tensor(hr)]).float()
    batch_hr = torch.stack([_to_tensor(hr), _to_tensor(hr)]).float()
    values = ssim(batch_sr, batch_hr, 3)
    assert values.shape == (2,)
    assert float(values[0]) == pytest.approx(expected, abs=1e-7)
    assert float(values[1]) == pytest.approx(1.0, abs=1e-7)


def test_input_errors() -> None:
    a = _rand_u8((20, 20, 3))
    with pytest.raises(ValueError):
        psnr(a, a[:-1], 0)
    with pytest.raises(ValueError):
        ssim(a, a, 5)  # 10x10 left: smaller than the window
    with pytest.raises(TypeError):
        psnr(a.astype(np.float32), a.astype(np.float32), 0)
    with pytest.raises(TypeError):
        psnr(a, _to_tensor(a), 0)


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    sr, hr = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(psnr(sr.cuda(), hr.cuda(), 2).cpu(), psnr(sr, hr, 2))
    torch.testing.assert_close(ssim(sr.cuda(), hr.cuda(), 2).cpu(), ssim(sr, hr, 2))


def test_ssim_window_cached_under_inference_mode_serves_backward() -> None:
    from msrnet.metrics import _gaussian_1d, ssim_per_plane

    _gaussian_1d.cache_clear()
    x, y = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    with torch.inference_mode():
        ssim_per_plane(x, y, data_range=1.0)  # caches the window
    pred = x.clone().requires_grad_()
    (1 - ssim_per_plane(pred, y, data_range=1.0).mean()).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0

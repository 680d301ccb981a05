"""Make the documentation's figures (small PNGs under docs/assets/).

    python scripts/make_figures.py                     # every figure
    python scripts/make_figures.py --only crops        # one of: crops, architecture, block, cost, real
    python scripts/make_figures.py --model msr_x4 --pretrained          # add msrnet's crop
    python scripts/make_figures.py --only crops --weights runs/x/best.safetensors --label "..."
    python scripts/make_figures.py --results a.json b.json              # add msrnet's PSNR points

Figures:
    crops.png         LR input, bicubic, [msrnet,] ground truth of the package's 128x128 sample image
                      (NASA's public-domain astronaut portrait) at x4, labelled with Y-PSNR.
    architecture.png  the pyramid of a registered model (levels, blocks, widths read off the model).
    block.png         one PyramidResidualBlock and its two flows.
    real.png          the same sample at x4 from a JPEG (quality 50) LR input: the input, bicubic,
                      msr_small_x4.t291, msr_small_x4.real and the ground truth, labelled with Y-PSNR.
    cost.png          Set5/Set14 x4 PSNR against multiply-adds for a 1280x720 output: published
                      networks (numbers from their papers), msrnet's cost (measured here) and,
                      given ``--results`` (the JSON of ``msrnet benchmark --json``), its PSNR.

Needs the ``docs`` extra (matplotlib). Runs on the CPU in a few seconds.
"""
from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from msrnet._utils import missing_extra

try:
    import matplotlib
except ModuleNotFoundError as e:  # one line that says what to install
    sys.exit(f"make_figures.py: {missing_extra(e) or e}")

matplotlib.use("Agg")  # files only; no display on CI machines
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch.utils.flop_counter import FlopCounterMode

import msrnet
from msrnet.data.benchmark import bicubic_degrade, mod_crop
from msrnet.data.degradations import BENCHMARK_CONDITIONS
from msrnet.data.io import read_image
from msrnet.models import build_model
from msrnet.inference import upscale
from msrnet.metrics import psnr
from msrnet.ops import imresize

FIGURES = ("crops", "architecture", "block", "cost", "real")
ASSETS = Path(__file__).resolve().parents[1] / "docs" / "assets"

# Published x4 results (Y-PSNR, dB) and costs: parameters, and multiply-adds for a 1280x720
# output, as tabulated by Ahn et al., "Fast, Accurate, and Lightweight Super-Resolution with
# Cascading Residual Network" (CARN, ECCV 2018), Table 3 (also reproduced in Zhang et al.,
# "Aligned Structured Sparsity Learning for Efficient Image Super-Resolution", NeurIPS 2021,
# Tables 2-3). LapSRN/MemNet PSNRs agree with ../shared/seed/NOTES.md.
# name: (training data, params, mult-adds in G, Set5 x4, Set14 x4)
PUBLISHED_X4: dict[str, tuple[str, int, float, float, float]] = {
    "VDSR": ("291 images", 665_000, 612.6, 31.35, 28.01),
    "DRRN": ("291 images", 297_000, 6796.9, 31.68, 28.21),
    "LapSRN": ("291 images", 813_000, 149.4, 31.54, 28.19),
    "MemNet": ("291 images", 677_000, 2662.4, 31.74, 28.26),
    "CARN": ("DIV2K", 1_592_000, 90.9, 32.13, 28.60),
    "IMDN": ("DIV2K", 715_000, 40.9, 32.21, 28.58),
}

INK = "#263238"
COLORS = {
    "stem": "#c5cae9",
    "block": "#ffe0b2",
    "level": "#fff8e1",
    "merge": "#c8e6c9",
    "image": "#e1f5fe",
    "attn": "#f8bbd0",
    "msr": "#d81b60",
}


# --- models ---------------------------------------------------------------------------------
def multiply_adds(model: msrnet.MultiScaleSRNet, lr_hw: tuple[int, int]) -> int:
    """Multiply-adds of one forward pass on a (1, 3, *lr_hw) input (convs, transposed convs, linears)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, model.in_chans, *lr_hw, device=next(model.parameters()).device))
    return counter.get_total_flops() // 2  # FlopCounterMode counts a multiply-add as 2 flops


# --- crops ----------------------------------------------------------------------------------
def sample_image() -> np.ndarray:
    """The package's sample image as uint8 (H, W, 3)."""
    path = resources.files("msrnet") / "assets" / "astronaut.png"
    if not path.is_file():
        raise SystemExit(f"the sample image {path} is missing; reinstall msrnet")
    return read_image(Path(str(path)), channels=3)


def make_crops(
    out: Path, scale: int, models: list[tuple[str, torch.nn.Module]], condition: str | None = None
) -> None:
    """LR input, bicubic, each model's output and the ground truth, side by side; the LR image
    degraded by a benchmark ``condition`` (``"jpeg50"``) when one is given."""
    hr = mod_crop(sample_image(), scale)
    lr = bicubic_degrade(hr, scale)
    title = f"LR input, {lr.shape[1]}x{lr.shape[0]}"
    if condition is not None:
        chw = BENCHMARK_CONDITIONS[condition].apply(torch.from_numpy(lr.transpose(2, 0, 1).copy()), 0, "astronaut.png")
        lr = chw.permute(1, 2, 0).numpy()
        title = f"{title}, {condition}"
    bicubic = imresize(torch.from_numpy(lr.transpose(2, 0, 1).copy()), float(scale)).permute(1, 2, 0).numpy()
    # (title, image, scored): each scored panel is labelled with its Y-PSNR against the HR image.
    panels = [
        (f"{title}\n(shown x{scale}, nearest)", np.repeat(np.repeat(lr, scale, 0), scale, 1), False),
        ("bicubic (MATLAB-exact)", bicubic, True),
    ]
    panels += [(label, upscale(model, lr), True) for label, model in models]
    panels.append((f"ground truth, {hr.shape[1]}x{hr.shape[0]}\n(PSNR: Y, shave {scale})", hr, False))

    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 2.9), dpi=110)
    for ax, (title, img, scored) in zip(axes, panels):
        ax.imshow(img, interpolation="nearest")
        if scored:
            title = f"{title}\n{psnr(img, hr, crop_border=scale):.2f} dB"
        ax.set_title(title, fontsize=9, color=INK)
        ax.set_axis_off()
    fig.tight_layout(pad=0.4)
    fig.savefig(out, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)


# --- diagrams -------------------------------------------------------------------------------
def _box(ax, xy, wh, text, color, fontsize=8.5, **kwargs) -> tuple[float, float, float, float]:
    x, y = xy
    w, h = wh
    ax.add_patch(
        FancyBboxPatch(
            (x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec=INK, lw=0.9, **kwargs
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize, color=INK)
    return x, y, w, h


def _arrow(ax, start, end, text=None, color=INK, style="-|>", ls="-", rad=0.0, fontsize=7.5, offset=(0, 0.08)):
    ax.add_patch(
        FancyArrowPatch(
            start, end, arrowstyle=style, mutation_scale=10, color=color, lw=1.0, ls=ls,
            connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0,
        )
    )
    if text:
        mx, my = (start[0] + end[0]) / 2 + offset[0], (start[1] + end[1]) / 2 + offset[1]
        ax.text(mx, my, text, ha="center", va="bottom", fontsize=fontsize, color=INK,
                bbox={"fc": "white", "ec": "none", "pad": 1.0, "alpha": 0.9})


def make_architecture(out: Path, name: str) -> None:
    model = msrnet.create_model(name)
    stem_widths = [m.out_channels for m in model.stem.layers if isinstance(m, torch.nn.Conv2d)]
    levels = list(zip(model.level_scales, model.blocks_per_level, model.level_chans))
    n = len(levels)
    col_w, x_first = 3.2, 3.0
    width = x_first + n * col_w + 0.4
    fig, ax = plt.subplots(figsize=(width * 0.64, 4.4), dpi=140)
    ax.set_xlim(0, width)
    ax.set_ylim(0, 5.6)
    ax.set_axis_off()

    y_flow, y_feat, y_img = 4.3, 2.6, 0.7
    _box(ax, (0.0, y_img - 0.3), (1.9, 0.6), f"LR image\n({model.in_chans}, H, W)", COLORS["image"], fontsize=7.5)
    _box(ax, (0.0, y_flow - 0.35), (1.9, 0.7), "FeatureExtractor\n" + " → ".join(map(str, stem_widths)),
         COLORS["stem"], fontsize=7.5)
    _arrow(ax, (0.95, y_img + 0.3), (0.95, y_flow - 0.35))
    ax.text(0.2, y_flow + 0.55, "LR-space residual flow r (C, H, W)", fontsize=8, color=INK, ha="left")
    _arrow(ax, (1.9, y_flow), (x_first - 0.15, y_flow))
    ax.text(0.15, y_img - 0.55, "image pyramid", fontsize=8, color=INK, ha="left")

    prev_feat, prev_img, prev_scale = None, (1.9, y_img), 1
    for i, (s, blocks, chans) in enumerate(levels):
        x = x_first + i * col_w
        ax.add_patch(
            FancyBboxPatch(
                (x - 0.1, 0.2), col_w - 0.3, 4.75, boxstyle="round,pad=0.02,rounding_size=0.12",
                fc=COLORS["level"], ec="#bdbdbd", lw=0.8, ls="--",
            )
        )
        ax.text(x + (col_w - 0.5) / 2, 5.08, f"level x{s}", ha="center", fontsize=9.5, color=INK, weight="bold")
        _box(ax, (x, y_flow - 0.35), (col_w - 0.5, 0.7), f"{blocks} × PyramidResidualBlock\n(scale {s})", COLORS["block"],
             fontsize=7.5)
        if i + 1 < n:
            _arrow(ax, (x + col_w - 0.5, y_flow), (x + col_w - 0.15, y_flow))
        _arrow(ax, (x + (col_w - 0.5) / 2, y_flow - 0.35), (x + (col_w - 0.5) / 2, y_feat + 0.35),
               text=f"{blocks} up maps ({chans}, {s}H, {s}W)", offset=(0.0, -0.1))
        _box(ax, (x, y_feat - 0.35), (col_w - 0.5, 0.7), f"concat → conv3x3\n→ {chans} channels", COLORS["merge"],
             fontsize=7.5)
        if prev_feat is not None:
            _arrow(ax, prev_feat, (x, y_feat), text=f"ConvT ×{s // prev_scale}", ls="--", offset=(0, 0.1),
                   fontsize=7)
        prev_feat = (x + col_w - 0.5, y_feat)
        # residual image head and the image pyramid: img_k = bicubic(img_{k-1}) + residual_k
        xm = x + (col_w - 0.5) / 2
        _arrow(ax, (xm, y_feat - 0.35), (xm, y_img + 0.2), text="conv3x3 → residual", offset=(0.0, 0.0))
        ax.add_patch(plt.Circle((xm, y_img), 0.2, fc="white", ec=INK, lw=0.9, zorder=3))
        ax.text(xm, y_img, "+", ha="center", va="center", fontsize=11, color=INK, zorder=4)
        _arrow(ax, prev_img, (xm - 0.2, y_img), text=f"bicubic ×{s // prev_scale}", offset=(0.0, 0.04))
        _box(ax, (xm + 0.35, 0.25), (0.9, 0.36), f"x{s} image", COLORS["image"], fontsize=7.5)
        _arrow(ax, (xm + 0.14, y_img - 0.14), (xm + 0.35, 0.43))
        prev_img, prev_scale = (xm + 0.2, y_img), s
    ax.set_title(
        f"{name}: {sum(b for _, b, _ in levels)} blocks over {n} level{'s' * (n > 1)}; "
        "forward() returns the last image, forward_pyramid() all of them",
        fontsize=9, color=INK,
    )
    fig.tight_layout(pad=0.3)
    fig.savefig(out, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)


def make_block(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.4, 3.1), dpi=140)
    ax.set_xlim(0, 10.2)
    ax.set_ylim(0, 4.1)
    ax.set_axis_off()
    y_top, y_bot = 3.15, 1.25
    _box(ax, (0.1, y_bot - 0.3), (1.1, 0.6), "r\n(C, H, W)", COLORS["image"])
    _box(ax, (1.8, y_top - 0.3), (1.7, 0.6), "ConvTranspose\nk=s, stride s + act", COLORS["block"])
    _box(ax, (4.3, y_top - 0.3), (1.6, 0.6), "up\n(C_up, sH, sW)", COLORS["merge"])
    _box(ax, (4.3, y_bot + 0.55), (1.6, 0.5), "Conv k=s, stride s", COLORS["block"], fontsize=8)
    ax.add_patch(plt.Circle((3.1, y_bot), 0.2, fc="white", ec=INK, lw=0.9))
    ax.text(3.1, y_bot, "−", ha="center", va="center", fontsize=12, color=INK)
    _box(ax, (6.25, y_bot - 0.3), (1.6, 0.6), "3 × conv3x3\n(act between)", COLORS["block"])
    _box(ax, (8.15, y_bot - 0.3), (0.95, 0.6), "SE", COLORS["attn"])
    ax.add_patch(plt.Circle((9.65, y_bot), 0.2, fc="white", ec=INK, lw=0.9))
    ax.text(9.65, y_bot, "+", ha="center", va="center", fontsize=11, color=INK)

    _arrow(ax, (0.65, y_bot + 0.3), (1.8, y_top), rad=-0.25)
    _arrow(ax, (3.5, y_top), (4.3, y_top))
    _arrow(ax, (5.9, y_top), (8.3, y_top), text="to the level's concat → compress", offset=(0.0, 0.06))
    _arrow(ax, (5.1, y_top - 0.3), (5.1, y_bot + 1.05))
    _arrow(ax, (4.3, y_bot + 0.8), (3.25, y_bot + 0.15), text="down(up(r))", offset=(-0.35, 0.1), rad=0.2)
    _arrow(ax, (1.2, y_bot), (2.9, y_bot), text="r", offset=(0, 0.03))
    _arrow(ax, (3.3, y_bot), (6.25, y_bot), text="e = r − down(up(r))", offset=(0.35, 0.04))
    _arrow(ax, (7.85, y_bot), (8.15, y_bot))
    _arrow(ax, (9.1, y_bot), (9.45, y_bot))
    _arrow(ax, (4.7, y_bot), (9.65, y_bot - 0.2), rad=0.3, ls="--")
    ax.text(7.2, 0.38, "skip: e", fontsize=7.5, color=INK, ha="center",
            bbox={"fc": "white", "ec": "none", "pad": 1.0})
    _arrow(ax, (9.65, y_bot + 0.2), (9.65, y_top - 0.35))
    ax.text(9.65, y_top - 0.3, "r_next (C, H, W)\nto the next block", fontsize=8, color=INK, ha="center", va="bottom")
    ax.text(0.1, 3.85, "up-sampling flow (to this level's features)", fontsize=8.5, color=INK, weight="bold")
    ax.text(0.1, 0.05, "back-projection flow (LR space, to the next block)", fontsize=8.5, color=INK, weight="bold")
    fig.tight_layout(pad=0.3)
    fig.savefig(out, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)


# --- cost -----------------------------------------------------------------------------------
def make_cost(out: Path, results: list[Path]) -> None:
    """x4 PSNR against multiply-adds: published networks, and msrnet's rows of ``results``.

    Each of ``results`` is a JSON list of ``msrnet benchmark --json`` rows; every x4 row of a
    registered msrnet model becomes a point at that model's cost (a later file's row wins).
    """
    def gmacs(name: str) -> float:
        with torch.device("meta"):  # shapes are all the count needs
            model = msrnet.create_model(name).eval()
        return multiply_adds(model, (720 // 4, 1280 // 4)) / 1e9

    msr_gmacs = gmacs("msr_x4")
    measured: dict[str, dict[str, float]] = {}  # model -> dataset -> PSNR
    for path in results:
        for row in json.loads(path.read_text()):
            name = str(row["model"]).split(".", 1)[0]
            if row["scale"] == 4 and name in msrnet.list_models("msr*x4"):
                measured.setdefault(name, {})[row["dataset"]] = row["psnr"]
    costs = {name: gmacs(name) for name in measured}

    # The axes span the networks (bicubic, 28.42 / 26.00 dB, is far below; the page says so).
    lows = {"Set5": 31.2, "Set14": 27.85}
    highs = {"Set5": 32.4, "Set14": 28.75}
    for scores in measured.values():  # a measured point is never off the axes
        for dataset, psnr in scores.items():
            lows[dataset] = min(lows[dataset], psnr - 0.1)
            highs[dataset] = max(highs[dataset], psnr + 0.1)
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.3), dpi=130)
    for ax, (dataset, column) in zip(axes, (("Set5", 3), ("Set14", 4))):
        for name, row in PUBLISHED_X4.items():
            marker = "o" if row[0] == "291 images" else "s"
            ax.scatter(row[2], row[column], marker=marker, s=36, color="#546e7a", zorder=3)
            ax.annotate(name, (row[2], row[column]), textcoords="offset points", xytext=(5, 4), fontsize=8, color=INK)
        ax.axvline(msr_gmacs, color=COLORS["msr"], ls="--", lw=1)
        for name, scores in measured.items():
            if dataset in scores:
                ax.scatter(costs[name], scores[dataset], marker="*", s=120, color=COLORS["msr"], zorder=4)
                ax.annotate(name, (costs[name], scores[dataset]), textcoords="offset points", xytext=(6, 4),
                            fontsize=8.5, color=COLORS["msr"], weight="bold")
        if not measured:
            ax.text(msr_gmacs * 1.08, highs[dataset] - 0.03, "msr_x4 cost\n(PSNR pending\npretrained weights)",
                    fontsize=7.5, color=COLORS["msr"], va="top")
        ax.set_ylim(lows[dataset], highs[dataset])
        ax.set_xscale("log")
        ax.set_xlim(15, 20000)
        ax.set_xlabel("multiply-adds for a 1280×720 output (G, log scale)", fontsize=8.5)
        ax.set_ylabel(f"{dataset} ×4 PSNR (dB, Y)", fontsize=8.5)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.25, which="both")
    axes[1].scatter([], [], marker="o", color="#546e7a", label="trained on the 291 images")
    axes[1].scatter([], [], marker="s", color="#546e7a", label="trained on DIV2K")
    axes[1].legend(fontsize=7.5, loc="lower left")
    fig.tight_layout(pad=0.4)
    fig.savefig(out, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    print(json.dumps({"gmacs_1280x720": {n: round(c, 1) for n, c in costs.items()} | {"msr_x4": round(msr_gmacs, 1)},
                      "psnr": measured}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=FIGURES, action="append", help="make only these figures")
    parser.add_argument("--out-dir", type=Path, default=ASSETS)
    parser.add_argument("--model", default="msr_x4", help="model of the crops figure (default: msr_x4)")
    parser.add_argument("--pretrained", action="store_true", help="add the model's crop, with the packaged weights")
    parser.add_argument("--weights", type=Path, help="add the model's crop, with these safetensors weights")
    parser.add_argument("--label", help="title of the model's crop (default: --model)")
    parser.add_argument("--results", type=Path, nargs="+", default=[],
                        help="JSON files of `msrnet benchmark --json` with x4 rows of msrnet models")
    parser.add_argument("--arch-model", default="msr_x8", help="model drawn in architecture.png")
    args = parser.parse_args(argv)

    args.out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for figure in args.only or FIGURES:
        out = args.out_dir / f"{figure}.png"
        if figure == "crops":
            model = None
            if args.weights or args.pretrained:
                model = build_model(args.model, args.weights, pretrained=args.pretrained)
            scale = int(model.scale if model is not None else msrnet.create_model(args.model).scale)
            make_crops(out, scale, [(args.label or args.model, model)] if model is not None else [])
        elif figure == "real":
            tags = [f"msr_small_x4.{tag}" for tag in ("t291", "real")]
            make_crops(out, 4, [(t, msrnet.create_model(t, pretrained=True).eval()) for t in tags], "jpeg50")
        elif figure == "architecture":
            make_architecture(out, args.arch_model)
        elif figure == "block":
            make_block(out)
        else:
            make_cost(out, args.results)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

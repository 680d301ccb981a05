"""``msrnet export``: a model as ONNX or a torch.export program (`msrnet.export`)."""
from __future__ import annotations

import argparse

from msrnet._utils import first_line, missing_extra
from msrnet.cli._common import CommandError, UsageError, add_model_args, cli_model, model_label, user_errors

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "saved"]


HELP = "export a model to ONNX or a torch.export program"
DESCRIPTION = (
    "Export a model (float32) with dynamic batch, height and width, as ONNX "
    "(needs `pip install \"msrnet[onnx]\"`) or as a torch.export program (.pt2, load with "
    "torch.export.load(path).module())."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument(
        "-o", "--output", required=True, help="output file (.onnx or .pt2), in a folder that exists"
    )
    p.add_argument(
        "--format",
        choices=("onnx", "exported-program"),
        default=None,
        help="default: from the extension of -o (.onnx, .pt2)",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset version (default: torch's)")
    p.add_argument(
        "--verify",
        action="store_true",
        help="run the exported file at two new sizes (onnxruntime for ONNX) and compare with PyTorch",
    )


def run(args: argparse.Namespace) -> int:
    from msrnet.export import check_output_path, export_model, format_from_path, verify_export

    try:
        # Before the model is loaded and traced: a bad -o costs nothing.
        check_output_path(args.output)
        format = args.format or format_from_path(args.output)
    except OSError as e:
        raise UsageError(f"-o {e}")
    except ValueError as e:
        raise UsageError(str(e))
    model = cli_model(args, "export")
    try:
        path = export_model(model, args.output, format, opset_version=args.opset)
        print(f"exported {model_label(args, model.pretrained_cfg)} as {format} -> {path}")
        if args.verify:
            error = verify_export(path, model, format)
            print(f"max abs difference to PyTorch over two new input sizes: {error:.3g}")
            if error > 1e-4:
                raise CommandError("the exported model disagrees with PyTorch")
    except ImportError as e:
        raise CommandError(missing_extra(e) or str(e)) from None
    except user_errors() as e:  # a full disk, an unsupported operator
        raise CommandError(first_line(e)) from None
    return 0


def saved(args: argparse.Namespace) -> str:
    """What an interrupted export leaves: nothing (the file is written whole or not at all)."""
    return "the output being written was discarded"

"""``msrnet train``: one option per `TrainConfig` field, generated from the dataclass."""
from __future__ import annotations

import argparse
import json
import os
import re
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from msrnet._utils import first_line, parse_json, read_json
from msrnet.cli._common import CommandError, UsageError, user_errors
from msrnet.train.config import TrainConfig, config_from_dict, field_defaults, field_help, float_list

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "saved"]


HELP = "train a model on a folder of HR images"
DESCRIPTION = (
    "Train (or fine-tune) a model on random patches of a folder of HR images, LR made "
    "by MATLAB-exact bicubic down-scaling; Y-PSNR on --val-dir. Run under torchrun for several "
    "GPUs/processes. Writes config.json, log.jsonl, checkpoint.pt and best.safetensors to "
    "--output-dir. Options left out take their values from --config, else the defaults shown. "
    "See docs/training.md."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="JSON",
        default=None,
        help="a TrainConfig as JSON, e.g. a run's config.json (reproduces the run; its resume and "
        "overwrite are ignored); options given here override it",
    )
    p.add_argument("--scale", type=int, default=None, help="super-resolution factor (default: 4, or the model's)")
    helps = field_help()
    defaults = field_defaults()
    hints = typing.get_type_hints(TrainConfig)
    special = {
        "train_dir": "(required, here or in --config)",
        "model": "(default: msr_x<scale>)",
        "output_dir": "(default: runs/<model>)",
        "resume": "(--resume alone: the checkpoint in --output-dir)",
        "compile": "",  # the docstring says what None means
    }
    for f in fields(TrainConfig):
        kind = hints[f.name]
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            kind = next(a for a in typing.get_args(kind) if a is not type(None))  # X | None -> X
        base = kind
        origin = typing.get_origin(base) or base
        default = defaults[f.name]
        shown = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else json.dumps(default) if isinstance(default, dict) else default
        note = special.get(f.name, f"(default: {shown})" if default is not None else "")
        # Docstring markup reads as plain text; argparse formats help with %.
        text = re.sub(r"``([^`]*)``|`~?(?:[\w.]*\.)?([^`]*)`", lambda m: m[1] or m[2], helps.get(f.name, ""))
        text = f"{text} {note}".replace("%", "%%")
        options: dict[str, Any] = {"default": argparse.SUPPRESS, "help": text}
        if f.name == "resume":
            options.update(nargs="?", const="", metavar="CKPT")
        elif base is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif origin is dict:
            options.update(type=_json_object, metavar="JSON")
        elif origin is tuple:
            options.update(type=float_list, metavar="X,Y,..")
        else:
            options.update(type=base, metavar=f.name.split("_")[-1].upper())
        p.add_argument("--" + f.name.replace("_", "-"), **options)


def _json_object(value: str) -> dict[str, Any]:
    try:
        parsed = parse_json(value, "the option's value")
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e}: {value[:80]!r}") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {value!r}")
    return parsed


def run(args: argparse.Namespace) -> int:
    values: dict[str, Any] = {}
    if args.config:
        try:
            # A file from anyone: a regular file, bounded in size, depth and digits.
            values = read_json(args.config, "training config (JSON)")
        except ValueError as e:
            raise UsageError(f"--config {e}") from None
        if not isinstance(values, dict):
            raise UsageError(f"--config {args.config}: expected a JSON object")
        # How a run starts is decided on the command line, not by the file that reproduces it.
        values.pop("resume", None)
        values.pop("overwrite", None)
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values.update(given)
    if "train_dir" not in values:
        raise UsageError("--train-dir is required (or a --config that names train_dir)")
    if values.get("model") is None:
        values["model"] = f"msr_x{args.scale or 4}"
    values.setdefault("output_dir", f"runs/{values['model']}")
    if values.get("resume") == "":
        values["resume"] = values["output_dir"]
    try:
        # Every value, from the file or the options, is checked here, once (TrainConfig does it).
        config = config_from_dict(values, args.config or "arguments")
    except ValueError as e:
        raise UsageError(str(e)) from None
    arch_scale = config.model.split(".", 1)[0].removeprefix("msr_x")
    if args.scale is not None and arch_scale.isdigit() and int(arch_scale) != args.scale:
        raise UsageError(f"--model {config.model} is x{arch_scale}, but --scale {args.scale} was given")

    from msrnet.train import train

    args.run_dir = config.output_dir  # for the line an interrupt prints (`saved`)
    try:
        summary = train(config)
    except user_errors() as e:  # a bad data folder, a checkpoint of another run, a device
        raise CommandError(first_line(e)) from None
    if int(os.environ.get("RANK", "0")) == 0:  # one summary under torchrun
        print(json.dumps(summary))
    return 0


def saved(args: argparse.Namespace) -> str:
    """What an interrupted ``msrnet train`` leaves, and how to go on from it."""
    if getattr(args, "run_dir", None) is None:  # stopped before the run began
        return "nothing was written"
    # Set once msrnet.train (and torch) is imported: this import costs nothing then.
    from msrnet.train.checkpoint import CHECKPOINT_NAME
    from msrnet.train.outputs import CONFIG_NAME

    run_dir = Path(args.run_dir)
    if (run_dir / CHECKPOINT_NAME).is_file():
        return f"{run_dir} keeps its last checkpoint: continue with --resume"
    if (run_dir / CONFIG_NAME).is_file():
        return f"{run_dir} holds no checkpoint yet: start again with --overwrite"
    return "nothing was written"

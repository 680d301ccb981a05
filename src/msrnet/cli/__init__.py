"""The msrnet command line: ``msrnet upscale | benchmark | train | export | weights`` (or ``python -m msrnet``).

One module per command (`upscale`, with its video options in `video`; `benchmark`, `train`,
`export`, `weights`), each with its ``--help`` text, ``add_arguments`` and ``run``; what they share
(errors and exit codes, warnings, SIGTERM, the --model flags) is in `_common`, and `main`
(`_main`) prints how every command ended. The work itself lives in the library
(`msrnet.inference`, `msrnet.evaluate`, `msrnet.train`, `msrnet.export`, `msrnet.video`), so
that everything the CLI does is also one Python call away. torch is imported only inside the
commands, so ``msrnet --help`` is instant.
"""
from __future__ import annotations

from msrnet.cli._main import build_parser, main

__all__ = ["build_parser", "main"]

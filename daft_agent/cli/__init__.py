"""The ``daft`` command line: ``daft <command> [options]``.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
modules are imported only when their command runs, so ``daft --help`` stays fast and a missing
optional dependency of one command never breaks another.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from hardware.errors import DaftError

#: command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("daft_agent.cli.collect", "record demonstrations into an episode store"),
    "train": ("daft_agent.cli.train", "warm up and fine-tune the dual-actor agent"),
    "evaluate": ("daft_agent.cli.evaluate", "evaluate a checkpoint and print the success table"),
    "train-reward": ("daft_agent.cli.train_reward", "train a success classifier from frames"),
    "arm-server": ("daft_agent.cli.arm_server", "serve an arm driver to DAFT clients"),
    "embed": ("daft_agent.cli.embed", "cache a frozen VLA backbone's embeddings in a store"),
    "export": ("daft_agent.cli.export", "write a store as a LeRobotDataset v3 folder"),
    "import": ("daft_agent.cli.import_", "bring a LeRobotDataset v3 folder in as demonstrations"),
    "experiment": ("daft_agent.cli.experiment", "Table I, Fig. 5 and RQ4 as commands"),
    "view": ("daft_agent.cli.view", "open a Rerun recording, or replay a store's episodes"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per available command."""
    parser = argparse.ArgumentParser(prog="daft", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # command not shipped in this build
                continue
            raise
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text))
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``daft`` console script."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except DaftError as exc:
        print(f"daft {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"daft {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

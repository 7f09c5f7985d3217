"""The ``tailgraph`` command.

Subcommands are dispatched lazily to the module that owns them, so ``tailgraph evaluate``
does not import the training stack. Each target is a ``main(argv: list[str]) -> int``.

Errors on bad input (:class:`tailgraph.errors.DataError`, anywhere below a subcommand) print
one line on stderr naming the file, sample and field, and exit with code 2; ``--debug`` (any
position) shows the traceback instead. An output that cannot be written (disk full, file-size
limit, no permission, read-only file system) is one line naming the path, exit code 2. SIGINT
(Ctrl-C) and SIGTERM end a command with one line, "interrupted", and exit codes 130 / 143;
outputs are written to temporaries and renamed, so they are complete or absent.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from tailgraph.errors import DataError
from tailgraph.io.outputs import output_error_line

# name -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": ("tailgraph.cli.synth", "main", "generate a synthetic long-tailed benchmark"),
    "stats": ("tailgraph.cli.stats", "main", "statistics of a data set on disk"),
    "fit": (
        "tailgraph.engine.lightning_cli",
        "fit_main",
        "train a relation model from a recipe (LightningCLI)",
    ),
    "validate": (
        "tailgraph.engine.lightning_cli",
        "validate_main",
        "validate a checkpoint (LightningCLI)",
    ),
    "test": ("tailgraph.engine.lightning_cli", "test_main", "test a checkpoint (LightningCLI)"),
    "predict": (
        "tailgraph.engine.lightning_cli",
        "predict_main",
        "scene graphs for images (LightningCLI)",
    ),
    "evaluate": (
        "tailgraph.cli.evaluate",
        "main",
        "evaluate prediction files against ground truth",
    ),
    "convert": (
        "tailgraph.cli.convert",
        "main",
        "convert prediction / ground-truth files between JSON and .h5 / .npz",
    ),
    "report": ("tailgraph.cli.report", "main", "render a run's results as a readable report"),
    "demo": ("tailgraph.cli.demo", "main", "generate -> fit -> test -> report on synth-vg"),
}


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM, so outputs unwind like on Ctrl-C."""


class Interrupted(BaseException):
    """Raised in the main thread on SIGINT. Not a :class:`KeyboardInterrupt`: Lightning turns
    that into its own message and ``exit(1)``; this one unwinds through its teardown like any
    other error, so every command ends the same way."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def _on_sigint(signum: int, frame: object) -> None:
    raise Interrupted()


def _one_line_error(self: argparse.ArgumentParser, message: str) -> None:
    """argparse's error, as one line on stderr (exit code 2)."""
    sys.stderr.write(f"{self.prog}: {message} (see {self.prog} --help)\n")
    raise SystemExit(2)


def _usage() -> str:
    lines = ["usage: tailgraph <command> [options]", "", "commands:"]
    for name, (_, _, text) in COMMANDS.items():
        lines.append(f"  {name:<10} {text}")
    lines.append("")
    lines.append("Run 'tailgraph <command> --help' for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from tailgraph import __version__

        print(__version__)
        return 0
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if not argv:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tailgraph: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = COMMANDS[name]
    argparse.ArgumentParser.error = _one_line_error  # type: ignore[method-assign,assignment]  # every subcommand's argument errors: one line
    if debug:
        os.environ["TAILGRAPH_DEBUG"] = "1"
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_int = signal.signal(signal.SIGINT, _on_sigint)
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        # a file-size limit makes a write fail with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        result = func(rest)
    except DataError as exc:
        if debug:
            raise
        print(f"tailgraph {name}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout went away (`tailgraph stats | head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (KeyboardInterrupt, Interrupted):
        if debug:
            raise
        print(f"tailgraph {name}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        if debug:
            raise
        print(f"tailgraph {name}: interrupted (SIGTERM)", file=sys.stderr)
        return 143
    except OSError as exc:
        line = output_error_line(exc)
        if line is None or debug:
            raise
        print(f"tailgraph {name}: {line}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

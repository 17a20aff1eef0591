"""What every subcommand shares: the registry (`@command`), model arguments, and the checks of
flag values (argparse `type=` callables), so a bad value stops the command before any file is
written or the model loads.

Each check is a plain function that raises ValueError with a message saying what to do (usable
in a command body, where `interp.cli.main` turns it into `error: ...`); `argument_type(check)`
wraps it for argparse, which prints `error: argument --flag: MESSAGE` and exits with code 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help_text: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register `function(args)` as the subcommand `name`."""

    def register(function: Callable) -> Callable:
        COMMANDS[name] = (help_text, add_arguments, function)
        return function

    return register


def argument_type(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """`check` as an argparse `type=`: its ValueError becomes argparse's usage error with the
    check's own message (argparse shows only a generic one for a plain ValueError)."""

    def parse(text: str) -> Any:
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    parse.__name__ = check.__name__
    return parse


# --------------------------------------------------------------------------------------------------
# Numbers


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


def check_positive_int(text: str) -> int:
    """A whole number of at least 1 (a count, a batch size)."""
    value = _int(text)
    if value < 1:
        raise ValueError(f"must be a whole number of at least 1, got {text!r}")
    return value


def check_non_negative_int(text: str) -> int:
    """A whole number of at least 0 (where 0 means "none" or "all", as the help says)."""
    value = _int(text)
    if value < 0:
        raise ValueError(f"must be a whole number of at least 0, got {text!r}")
    return value


def check_finite_float(text: str) -> float:
    """Any finite number (not nan or inf)."""
    return _float(text)


def check_positive_float(text: str) -> float:
    """A finite number above 0 (a learning rate, a temperature)."""
    value = _float(text)
    if value <= 0:
        raise ValueError(f"must be a number above 0, got {text!r}")
    return value


def check_non_negative_float(text: str) -> float:
    """A finite number of at least 0 (a norm, a budget)."""
    value = _float(text)
    if value < 0:
        raise ValueError(
            f"must be a number of at least 0 (a norm cannot be negative), got {text!r}"
        )
    return value


def check_fraction(text: str) -> float:
    """A number from 0 to 1."""
    value = _float(text)
    if not 0 <= value <= 1:
        raise ValueError(f"must be a number from 0 to 1, got {text!r}")
    return value


def check_open_fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a held-out share)."""
    value = _float(text)
    if not 0 < value < 1:
        raise ValueError(f"must be a number strictly between 0 and 1, got {text!r}")
    return value


def _items(text: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ValueError(f"expected a comma-separated list of at least one value, got {text!r}")
    return items


def check_ints(text: str) -> tuple[int, ...]:
    """A comma-separated list of whole numbers of at least 0 ("12,17,20": layers, k values)."""
    return tuple(check_non_negative_int(x) for x in _items(text))


def check_floats(text: str) -> tuple[float, ...]:
    """A comma-separated list of finite numbers ("0.5,1,2")."""
    return tuple(_float(x) for x in _items(text))


def check_strings(text: str) -> tuple[str, ...]:
    """A comma-separated list of at least one word, stripped."""
    return tuple(_items(text))


positive_int = argument_type(check_positive_int)
non_negative_int = argument_type(check_non_negative_int)
finite_float = argument_type(check_finite_float)
positive_float = argument_type(check_positive_float)
non_negative_float = argument_type(check_non_negative_float)
fraction = argument_type(check_fraction)
open_fraction = argument_type(check_open_fraction)
ints = argument_type(check_ints)
floats = argument_type(check_floats)
strings = argument_type(check_strings)


# --------------------------------------------------------------------------------------------------
# Paths


def _file_above(path: Path) -> Path | None:
    """The first existing file among the folders above `path` (no folder can be made under it)."""
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def check_output_folder(text: str | os.PathLike) -> Path:
    """A folder for results: not the current folder or one above it, not a repository root or
    the home folder, not an existing file, and not under a file."""
    path = Path(text).expanduser()
    resolved = path.resolve()
    here = Path.cwd().resolve()
    blocker = _file_above(resolved)
    if blocker is not None:
        raise ValueError(
            f"{blocker} is a file, so no folder can be made at {path}: choose another path"
        )
    if resolved.exists() and not resolved.is_dir():
        raise ValueError(f"{path} is an existing file, not a folder: choose a new folder path")
    if resolved == here or resolved in here.parents:
        raise ValueError(
            f"{str(text)!r} is the current folder or one above it; results go in a folder of "
            f"their own: choose a new folder such as runs/NAME"
        )
    if resolved == Path.home().resolve() or (resolved / ".git").exists():
        raise ValueError(
            f"{path} is a home folder or a repository root; results go in a folder of their own: "
            f"choose a new folder such as {path / 'runs' / 'NAME'}"
        )
    return path


def check_output_file(text: str | os.PathLike) -> Path:
    """A file to write (a figure, a JSONL): not an existing folder, and not under a file."""
    path = Path(text).expanduser()
    blocker = _file_above(path.resolve())
    if blocker is not None:
        raise ValueError(
            f"{blocker} is a file, so {path} cannot be written under it: choose another path"
        )
    if path.is_dir():
        raise ValueError(f"{path} is a folder: give a file name, e.g. {path / 'figure.png'}")
    return path


def check_cache_folder(text: str) -> Path:
    """A folder for cached models: an existing folder, or one that can be made (not under a file)."""
    path = Path(text).expanduser()
    resolved = path.resolve()
    blocker = _file_above(resolved)
    if blocker is not None:
        raise ValueError(f"{blocker} is a file, so no cache folder can be made at {path}")
    if resolved.exists() and not resolved.is_dir():
        raise ValueError(f"{path} is a file, not a folder: give a folder for the cache")
    return path


def check_input_file(text: str) -> Path:
    """An existing file to read."""
    path = Path(text).expanduser()
    if not path.is_file():
        what = "a folder" if path.is_dir() else "missing"
        raise ValueError(f"{path} is {what}: give an existing file")
    return path


def check_input_folder(text: str) -> Path:
    """An existing folder to read."""
    path = Path(text).expanduser()
    if not path.is_dir():
        what = "a file" if path.exists() else "missing"
        raise ValueError(f"{path} is {what}: give an existing folder")
    return path


def check_edit_checkpoint(text: str) -> str:
    """A folder written by `interventions.save_edits` / `training.checkpoints.save` (edits)."""
    from interp.interventions import read_checkpoint_config

    check_input_folder(text)
    try:
        read_checkpoint_config(text)
    except (ValueError, OSError) as error:
        raise ValueError(
            f"{text} is not an edit checkpoint folder ({error}); give a folder written by "
            f"`python -m interp train` (its checkpoint/)"
        ) from None
    return text


def check_saved_result(text: str) -> str:
    """A folder holding a saved result (`interp.json` + tensors)."""
    from interp.storage import is_saved

    check_input_folder(text)
    if not is_saved(text):
        raise ValueError(f"{text} holds no saved result: give a folder written by an analysis")
    return text


def check_device(text: str) -> str:
    """A torch device this torch can use (the check `load_model` makes, before the model loads)."""
    from interp.models.errors import ModelLoadError
    from interp.models.loading import check_device as check_model_device

    try:
        check_model_device(text)
    except ModelLoadError as error:
        raise ValueError(str(error)) from None
    return text


def check_workers(text: str) -> int:
    """A number of worker processes: 1 (this process), or more on Ray, which must be installed."""
    from interp.distributed import check_workers as check_worker_count

    value = check_positive_int(text)
    try:
        return check_worker_count(value)
    except ImportError as error:
        raise ValueError(f"{error} (or leave out --workers)") from None


output_folder = argument_type(check_output_folder)
output_file = argument_type(check_output_file)
cache_folder = argument_type(check_cache_folder)
input_file = argument_type(check_input_file)
input_folder = argument_type(check_input_folder)
edit_checkpoint = argument_type(check_edit_checkpoint)
saved_result = argument_type(check_saved_result)
device = argument_type(check_device)
workers = argument_type(check_workers)


# --------------------------------------------------------------------------------------------------
# Models and default folders


def add_model_arguments(
    parser: argparse.ArgumentParser, default: str | None = None, dtype_default: str = "float32"
) -> None:
    """--model, --device, --dtype and --cache-dir. `dtype_default` is "auto" for the commands whose
    answers bfloat16 was measured not to change (README *Benchmarks*: the agreement table)."""
    from interp.models.dtypes import DTYPE_CHOICES
    from interp.models.presets import DEFAULT_MODEL

    default = default or DEFAULT_MODEL
    parser.add_argument(
        "--model",
        default=default,
        help=f"preset name, local Hugging Face folder, or hub name (default: {default})",
    )
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default=dtype_default,
        help=f"the type the model computes in (default: {dtype_default}); auto: bfloat16 where "
        "the processor has native bf16 units (AVX-512 BF16 or AMX CPUs, CUDA GPUs with bf16), "
        "else float32. Saved results record it and are never reused across dtypes",
    )
    parser.add_argument(
        "--cache-dir", type=cache_folder, default=None, help="where dequantized presets are kept"
    )


def add_scale_out_arguments(parser: argparse.ArgumentParser) -> None:
    """--workers and --ray-address: the units of work on N Ray workers, one model each."""
    parser.add_argument(
        "--workers",
        type=workers,
        default=1,
        help="worker processes, each loading the model once and taking units of work (default 1: "
        'this process, no Ray); more need Ray (pip install -e ".[ray]")',
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="the Ray cluster for the workers (e.g. auto, or ray://HEAD:10001); default: a local "
        "one started for this command",
    )


def scale_out_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """`workers` and `ray_address` for an analysis's `run`, checked together."""
    if args.ray_address is not None and args.workers < 2:
        raise ValueError(
            "--ray-address names a cluster for the workers: give --workers 2 or more with it "
            "(one worker runs in this process)"
        )
    return {"workers": args.workers, "ray_address": args.ray_address}


def load_from_args(args: argparse.Namespace):
    """Load `--model` on `--device` in `--dtype`, and say at the start which dtype it runs in."""
    from interp.models import dtype_name, load_model, resolve_dtype

    dtype = resolve_dtype(getattr(args, "dtype", "float32"), args.device)
    how = f" (--dtype {args.dtype})" if getattr(args, "dtype", "float32") == "auto" else ""
    # on stderr, so `generate --json` still writes nothing but JSON to stdout
    print(f"model {args.model} on {args.device} in {dtype_name(dtype)}{how}", file=sys.stderr)
    model = load_model(args.model, device=args.device, dtype=dtype, cache_dir=args.cache_dir)
    if args.cache_dir is not None:  # workers (--workers) load it from the same cache
        from interp.distributed import ModelSpec, set_model_spec

        spec = ModelSpec(
            name=model.interp_name,
            dtype=dtype_name(dtype),
            device=args.device,
            cache_dir=str(args.cache_dir),
        )
        set_model_spec(model, spec)
    return model


def model_folder_name(model: str) -> str:
    """The model as one folder name: a local folder's own name, a hub name with '/' as '--'."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve().name
    return str(model).replace("/", "--").replace(":", "_")


def output_folder_for(args: argparse.Namespace, default_base: str) -> Path:
    """`--out` if given, else `<default_base>/<model>`, so two models never share a default
    folder; checked like `--out`."""
    if args.out is not None:
        return Path(args.out)
    return check_output_folder(Path(default_base) / model_folder_name(args.model))

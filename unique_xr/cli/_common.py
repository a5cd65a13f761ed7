"""What every command shares: the application, the one error rule at its boundary, option parsing."""

from __future__ import annotations

import typer
from typer.core import TyperCommand, TyperGroup

#: Libraries whose own exceptions a command turns into an ``error:`` line (bad or damaged input files).
_LIBRARY_ERRORS = ("rasterio", "lightgbm", "torch", "zarr", "numcodecs", "pystac", "pystac_client", "pyproj")


def _error_line(err: BaseException) -> str | None:
    """The one-line message for an error a command should report, or None for a bug (a traceback).

    Reported: unique_xr's own errors, OSError (paths that cannot be read or written), ValueError
    (bad values, unreadable tables), unpickling refusals and the exceptions of the libraries that read
    the user's files (rasterio, LightGBM, torch, Zarr, pystac, pyproj).
    """
    import pickle

    from unique_xr.errors import UniqueXrError

    module = type(err).__module__.split(".")[0]
    if isinstance(err, UniqueXrError | OSError | ValueError | pickle.UnpicklingError) or module in _LIBRARY_ERRORS:
        text = str(err) or type(err).__name__
        return text if isinstance(err, UniqueXrError) or module == "builtins" else f"{text} ({type(err).__name__})"
    return None


class _ErrorBoundary(TyperGroup):
    """The root command group: every command's errors end as one ``error:`` line and exit code 1.

    The one rule at the command-line boundary (see :func:`_error_line`); anything else is a bug and
    keeps its traceback.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as err:  # noqa: BLE001 - sorted by _error_line; typer's own Exit/usage errors pass on
            line = _error_line(err)
            if line is None:
                raise
            _fail(line)


app = typer.Typer(help="unique_xr: daily 30 m GPP from satellite imagery.", no_args_is_help=True,
                  pretty_exceptions_enable=False, cls=_ErrorBoundary)


def _fail(err: Exception | str) -> None:
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


class ValuesAfterOneFlag(TyperCommand):
    """Lets a repeatable option take several values after one flag: ``--coarse a.tif b.tif``.

    Click gives one value per flag; this rewrites ``--coarse a b`` into ``--coarse a --coarse b``
    for every ``multiple`` option before parsing, so both spellings work.
    """

    def parse_args(self, ctx, args):
        multi = {opt for p in self.params if getattr(p, "multiple", False) for opt in getattr(p, "opts", ())}
        out, current, value_next = [], None, False
        for i, tok in enumerate(args):
            if tok == "--":
                out.extend(args[i:])
                break
            if value_next:
                out.append(tok)
                value_next = False
            elif tok.startswith("-") and len(tok) > 1:
                flag, eq, _ = tok.partition("=")
                current = flag if flag in multi else None
                value_next = current is not None and not eq
                out.append(tok)
            elif current is not None:
                out.extend([current, tok])
            else:
                out.append(tok)
        return super().parse_args(ctx, out)

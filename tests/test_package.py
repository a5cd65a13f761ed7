import subprocess
import sys

import pytest

from unique_xr._optional import import_optional
from unique_xr.errors import MissingDependencyError, UniqueXrError


def test_import_is_light():
    """`import unique_xr` must not pull the heavy optional stacks."""
    code = (
        "import sys, unique_xr; heavy = [m for m in ('stackstac', 'pystac_client', 'odc.stac', 'torch', "
        "'lightgbm', 'matplotlib') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    import unique_xr._optional as opt

    monkeypatch.setitem(opt.EXTRAS, "definitely_not_installed_mod", "stac")
    with pytest.raises(MissingDependencyError, match=r"unique_xr\[stac\]") as err:
        import_optional("definitely_not_installed_mod", purpose="testing")
    assert isinstance(err.value, ImportError) and isinstance(err.value, UniqueXrError)


def test_torch_hint_pins_cpu_wheel(monkeypatch):
    import unique_xr._optional as opt

    monkeypatch.setitem(opt.EXTRAS, "not_a_torch_mod", "torch")
    with pytest.raises(MissingDependencyError, match=r"torch==2\.13\.0"):
        import_optional("not_a_torch_mod")


def test_lazy_public_api():
    import unique_xr

    assert callable(unique_xr.get_collection)
    with pytest.raises(AttributeError):
        unique_xr.no_such_name  # noqa: B018


def test_subpackages_are_callable_and_expose_submodules_in_a_fresh_session():
    code = (
        "import unique_xr as ux; "
        "assert callable(ux.search) and callable(ux.load); "
        "assert callable(ux.search.stac.planetary_computer_signer); "
        "assert ux.load.stack.load is not None; "
        "assert ux.search.collections.get_collection('mcd43a4').name == 'mcd43a4'; "
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    import unique_xr as ux

    with pytest.raises(AttributeError):
        ux.search.no_such_submodule  # noqa: B018
    with pytest.raises(TypeError):  # the call reaches unique_xr.load.stack.load, which needs its arguments
        ux.load()


def test_a_missing_stac_stack_is_named_when_used():
    """Without the `stac` extra, importing works and the first use says what to install."""
    code = (
        "import sys; sys.modules['stackstac'] = None; sys.modules['pystac_client'] = None\n"
        "import unique_xr as ux\n"
        "from unique_xr.errors import MissingDependencyError\n"
        "from unique_xr.testing.recorded import recorded_items\n"
        "grid = ux.GridSpec.from_bbox((178.7, -17.4, 178.9, -17.2), resolution=500)\n"
        "for call in (lambda: ux.load(recorded_items('mcd43a4'), grid=grid, collection='mcd43a4'),\n"
        "             lambda: ux.search('mcd43a4', bbox=(0, 0, 1, 1), datetime='2020-01-01',\n"
        "                               provider='http://127.0.0.1:9')):\n"
        "    try:\n"
        "        call()\n"
        "    except MissingDependencyError as err:\n"
        "        assert \"unique_xr[stac]\" in str(err), err\n"
        "    else:\n"
        "        raise SystemExit('no error')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr

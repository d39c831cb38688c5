"""Numba's cache keyed by the whole package (autodiff._jitcache): a cached function
that calls jitted code of another module must not survive a change to that module."""
import io
import time

from autodiff import _jitcache


def test_package_functions_use_the_package_keyed_locator():
    from autodiff.lower import vm
    from samplers import nuts_machine  # noqa: F401  (calls vm.run from jitted code)
    locator = vm.run._cache._impl.locator
    assert getattr(type(locator), "_zsarray", False)
    file_stamp, package = locator.get_source_stamp()
    assert package == _jitcache.package_stamp()


def test_functions_outside_the_package_keep_numbas_locator(tmp_path):
    src = tmp_path / "outside.py"
    src.write_text("import numba\n@numba.njit(cache=True)\ndef f(x):\n    return x + 1\n")
    ns = {}
    code = compile(src.read_text(), str(src), "exec")
    exec(code, ns)
    assert ns["f"](1) == 2
    assert not getattr(type(ns["f"]._cache._impl.locator), "_zsarray", False)


def test_the_stamp_changes_with_any_source_file(tmp_path, monkeypatch):
    roots = []
    for name in ("autodiff", "samplers", "zsarray"):
        d = tmp_path / name / "sub"
        d.mkdir(parents=True)
        (d / "m.py").write_text(f"x = '{name}'\n")
        roots.append(str(tmp_path / name))
    monkeypatch.setattr(_jitcache, "_ROOTS", tuple(roots))
    monkeypatch.setattr(_jitcache, "_stamp", None)
    a = _jitcache.package_stamp()
    (tmp_path / "samplers" / "sub" / "m.py").write_text("x = 'changed'\n")
    monkeypatch.setattr(_jitcache, "_stamp", None)
    b = _jitcache.package_stamp()
    (tmp_path / "samplers" / "sub" / "notes.txt").write_text("not source\n")
    monkeypatch.setattr(_jitcache, "_stamp", None)
    assert a != b and _jitcache.package_stamp() == b


def test_install_is_idempotent():
    from numba.core import caching
    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    before = list(impl._locator_classes)
    _jitcache.install()
    assert impl._locator_classes == before
    assert sum(getattr(c, "_zsarray", False) for c in before) >= 2


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_first_compile_notice_speaks_once_on_a_terminal_when_slow():
    """A first call slower than ``after`` is announced on a terminal, with its duration,
    once per process and name; a fast one and one on a non-terminal stay silent."""
    from autodiff._jitcache import first_compile_notice
    term = _Terminal()
    with first_compile_notice("the test machine (slow)", after=0.05, stream=term):
        time.sleep(0.3)
    text = term.getvalue()
    assert text.startswith("zsarray: compiling the test machine (slow) with Numba")
    assert "zsarray: compiled the test machine (slow) in" in text
    with first_compile_notice("the test machine (slow)", after=0.05, stream=term):
        time.sleep(0.2)
    assert term.getvalue() == text                       # once per name
    quiet = _Terminal()
    with first_compile_notice("the test machine (fast)", after=1.0, stream=quiet):
        pass
    pipe = io.StringIO()                                 # not a terminal
    with first_compile_notice("the test machine (piped)", after=0.01, stream=pipe):
        time.sleep(0.1)
    assert quiet.getvalue() == "" and pipe.getvalue() == ""


def test_first_call_returns_the_value_and_notices_only_the_first_time(monkeypatch):
    """``first_call`` runs the function every time and returns its value; only the first
    call of a name goes through the notice."""
    from autodiff import _jitcache as jc
    seen = []
    real = jc.first_compile_notice
    monkeypatch.setattr(jc, "first_compile_notice",
                        lambda what: (seen.append(what), real(what, stream=io.StringIO()))[1])
    assert [jc.first_call("the test machine (first_call)", lambda x: 2 * x, k)
            for k in range(3)] == [0, 2, 4]
    assert seen == ["the test machine (first_call)"]

"""The ctypes mirrors in libicl/_lib.py against the C headers: every struct's
size and field offsets as the compiler sees them, and every bound symbol
exported by libicl.so."""
import ctypes
import shutil
import subprocess

from conftest import ROOT


def test_struct_layouts_match_the_headers(tmp_path):
    from libicl import _lib
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to read the headers' layouts"
    lines = ["#include <stddef.h>", "#include <stdio.h>", "#include \"icl/icl.h\"", "int main(void) {"]
    for cname, py in _lib.STRUCTS.items():
        lines.append('printf("%s %%zu\\n", sizeof(%s));' % (cname, cname))
        for f, _ in py._fields_:
            lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));' % (cname, f, cname, f.rstrip("_")))
    lines.append("return 0; }")
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, "-std=c11", "-I", str(ROOT / "include"), str(src), "-o", str(exe)], check=True)
    want = dict(l.split() for l in subprocess.run([str(exe)], capture_output=True, text=True).stdout.splitlines())
    bad = []
    for cname, py in _lib.STRUCTS.items():
        if int(want[cname]) != ctypes.sizeof(py):
            bad.append("%s: sizeof %s, ctypes %d" % (cname, want[cname], ctypes.sizeof(py)))
        for f, _ in py._fields_:
            off = getattr(py, f).offset
            if int(want["%s.%s" % (cname, f)]) != off:
                bad.append("%s.%s: offset %s, ctypes %d" % (cname, f, want["%s.%s" % (cname, f)], off))
    assert not bad, "\n".join(bad)


def test_every_bound_symbol_is_exported():
    from libicl import _lib
    missing = [s for s in _lib.symbols() if not hasattr(_lib.dll, s)]
    assert not missing, missing
    print("%d C symbols bound" % len(_lib.symbols()))


def test_every_public_function_is_bound_or_listed():
    """A function of include/icl/*.h that libicl.so exports is bound in _lib.py or named in python/README.md's
    list of functions left out, and the list names only real, unbound functions."""
    import re
    from libicl import _lib
    declared = set()
    for h in (ROOT / "include" / "icl").glob("*.h"):
        declared |= set(re.findall(r"\b(icl_[a-z0-9_]+)\s*\(", h.read_text()))
    exported = {f for f in declared if hasattr(_lib.dll, f)}
    readme = (ROOT / "python" / "README.md").read_text()
    listed = set(re.findall(r"`(icl_[a-z0-9_]+)`", readme.split("## C functions the package does not bind")[1]))
    bound = set(_lib.symbols())
    assert not listed & bound, "bound but listed as left out: %s" % sorted(listed & bound)
    assert listed <= exported, "listed but not a public function: %s" % sorted(listed - exported)
    missing = exported - bound - listed
    assert not missing, "neither bound nor listed in python/README.md: %s" % sorted(missing)
    print("%d public functions: %d bound, %d listed as left out" % (len(exported), len(bound & exported), len(listed)))

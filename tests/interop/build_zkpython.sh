#!/usr/bin/env bash
# build_zkpython.sh [PYTHON [DESTDIR]]
#
# Makes zkpython (the `zookeeper` Python module from Apache ZooKeeper's
# zookeeper-contrib-zkpython, as shipped by Debian's python3-zookeeper)
# importable on Python 3.11.
#
# Debian bookworm's binary package python3-zookeeper 3.8.0 does not import on
# Python 3.11 (fixes 1 and 2 below), and its client_id() is unusable on any
# Python 3 (fix 3):
#   * it references PyIOBase_Type, which CPython no longer exports
#     ("undefined symbol: PyIOBase_Type");
#   * it uses the "s#" format with int lengths, which Python >= 3.10 rejects
#     unless PY_SSIZE_T_CLEAN is defined and the lengths are Py_ssize_t
#     ("PY_SSIZE_T_CLEAN macro must be defined for '#' formats").
# The binary package ships no C source, so this script fetches Debian's own
# source package (`apt-get source zookeeper`, adding a deb-src entry for the
# configured suites if there is none), fixes these things with sed, and
# compiles the extension with gcc against libzookeeper-mt-dev (the Apache C
# client) for PYTHON, installing it into DESTDIR.
#
# Defaults: PYTHON = the interop venv's python ($INTEROP_VENV/bin/python, a
# venv made from Debian's /usr/bin/python3 by setup_env.sh), DESTDIR = that
# interpreter's site-packages (platlib).  Idempotent: does nothing if DESTDIR
# already holds a zookeeper module that imports (FORCE=1 rebuilds).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PY="${1:-${INTEROP_VENV:-$DEFAULT_VENV}/bin/python}"
if [ ! -x "$PY" ]; then
    echo "build_zkpython: interpreter $PY not found (run setup_env.sh first, or pass one)" >&2
    exit 1
fi
DEST="${2:-$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')}"
EXT_SUFFIX="$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
PYINC="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
BUILD="${ZKPYTHON_BUILD_DIR:-/tmp/corral-zkpython-build}"

# the stamp ties an installed module to this script's exact fixes
STAMP="$DEST/zookeeper.corral-interop-build"
WANT_STAMP="$(sha256sum "$0" | cut -d' ' -f1) $(dpkg-query -W -f='${Version}' libzookeeper-mt-dev 2>/dev/null)"
import_ok() {
    (cd / && PYTHONPATH="$DEST" "$PY" -c 'import zookeeper, sys; assert zookeeper.__file__.startswith(sys.argv[1]), zookeeper.__file__' "$DEST") >/dev/null 2>&1
}

if [ "${FORCE:-0}" != 1 ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT_STAMP" ] && import_ok; then
    echo "build_zkpython: zkpython already importable from $DEST (FORCE=1 to rebuild)"
    exit 0
fi

echo "build_zkpython: building for $PY ($("$PY" --version 2>&1)), installing into $DEST"

# --- build dependencies --------------------------------------------------
need=()
dpkg -s libzookeeper-mt-dev >/dev/null 2>&1 || need+=(libzookeeper-mt-dev)
dpkg -s dpkg-dev >/dev/null 2>&1 || need+=(dpkg-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
[ -f "$PYINC/Python.h" ] || need+=(python3-dev)
if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}"
fi
[ -f "$PYINC/Python.h" ] || { echo "build_zkpython: no Python.h in $PYINC" >&2; exit 1; }

# --- Debian's source package ---------------------------------------------
VER="$(dpkg-query -W -f='${Version}' libzookeeper-mt-dev)"
SRC="$BUILD/zookeeper-$VER"
ZKPY="$SRC/zookeeper-contrib/zookeeper-contrib-zkpython/src/c"
if [ ! -f "$ZKPY/zookeeper.c" ]; then
    ensure_deb_src
    rm -rf "$BUILD"
    mkdir -p "$BUILD"
    (
        cd "$BUILD"
        # the exact version of the installed C client; else whatever is offered
        timeout 300 apt-get source --download-only "zookeeper=$VER" \
            || timeout 300 apt-get source --download-only zookeeper
        timeout 300 dpkg-source -x ./zookeeper_*.dsc "$SRC"
    )
fi
[ -f "$ZKPY/zookeeper.c" ] || { echo "build_zkpython: $ZKPY/zookeeper.c not found in the source package" >&2; exit 1; }

# --- the two fixes ----------------------------------------------------------
OBJ="$BUILD/obj"
rm -rf "$OBJ"
mkdir -p "$OBJ"
cp "$ZKPY/zookeeper.c" "$ZKPY/pyzk_docstrings.h" "$OBJ/"
C="$OBJ/zookeeper.c"

# Fix 1: PY_SSIZE_T_CLEAN before Python.h; every length paired with "s#"
# becomes Py_ssize_t (parsed lengths: declarations; built values: casts).
sed -i 's|^#include <Python.h>|#define PY_SSIZE_T_CLEAN\n#include <Python.h>|' "$C"
sed -i -E 's/\bint (valuelen|buflen|certLen)\b/Py_ssize_t \1/g' "$C"
sed -i -E 's/\bvalue, *value_len, *pystat\b/value, (Py_ssize_t)value_len, pystat/' "$C"
sed -i -E 's/\bbuffer, *buffer_len < 0 \? 0 : buffer_len\b/buffer, (Py_ssize_t)(buffer_len < 0 ? 0 : buffer_len)/' "$C"

# Fix 2: the PyIOBase_Type check in set_log_stream becomes an isinstance()
# check against io.IOBase looked up at run time.
sed -i -E '/extern PyTypeObject PyIOBase_Type;/d' "$C"
sed -i -E 's/if \(!PyObject_IsInstance\(pystream, \(PyObject \*\)&PyIOBase_Type\)\) \{/if (!zkpy_is_iobase(pystream)) {/' "$C"
cat > "$OBJ/zkpy_compat.h" <<'EOF'
/* corral interop: replacement for the unexported PyIOBase_Type */
static int zkpy_is_iobase(PyObject *o) {
  int r = 0;
  PyObject *io = PyImport_ImportModule("io");
  if (io != NULL) {
    PyObject *base = PyObject_GetAttrString(io, "IOBase");
    if (base != NULL) {
      r = PyObject_IsInstance(o, base) == 1;
      Py_DECREF(base);
    }
    Py_DECREF(io);
  }
  PyErr_Clear();
  return r;
}
EOF
sed -i 's|^#include <zookeeper.h>|#include <zookeeper.h>\n#include "zkpy_compat.h"|' "$C"

# Fix 3 (found while validating): client_id() builds the 16-byte session
# password with "s", i.e. as a NUL-terminated UTF-8 string, but the password
# is 16 random bytes without a terminator, so on Python 3 client_id() raises
# UnicodeDecodeError (almost always) and session re-attachment with
# init(host, watcher, timeout, (sid, passwd)) is impossible.  client_id() now
# returns the password as 16 bytes, and init() accepts bytes (or str) and
# copies exactly 16 bytes instead of strncpy'ing up to the first NUL.
sed -i -E 's/Py_BuildValue\("\(L,s\)", cid->client_id, cid->passwd\)/Py_BuildValue("(L,y#)", cid->client_id, cid->passwd, (Py_ssize_t)16)/' "$C"
sed -i -E 's/"(s|ss)\|Oi\(Ls\)"/"\1|Oi(Ls#)"/' "$C"
sed -i -E 's/&cid\.client_id, &passwd\)\)/\&cid.client_id, \&passwd, \&passwdlen))/' "$C"
sed -i -E 's/^( *)const char \*passwd;/\1const char *passwd = NULL;\n\1Py_ssize_t passwdlen = 0;/' "$C"
sed -i -E 's/strncpy\(cid\.passwd, passwd, 16\*sizeof\(char\)\);/memset(cid.passwd, 0, sizeof(cid.passwd)); memcpy(cid.passwd, passwd, passwdlen < 16 ? (size_t)passwdlen : 16);/' "$C"

# check that every edit took effect (a different source version would need a look)
check() { grep -q -E "$1" "$C" || { echo "build_zkpython: fix did not apply: $1" >&2; exit 1; }; }
check '^#define PY_SSIZE_T_CLEAN'
check 'Py_ssize_t valuelen'
check 'Py_ssize_t buflen'
check 'Py_ssize_t certLen'
check '\(Py_ssize_t\)value_len'
check '\(Py_ssize_t\)\(buffer_len'
check 'zkpy_is_iobase\(pystream\)'
if grep -q 'PyIOBase_Type' "$C"; then echo "build_zkpython: PyIOBase_Type still referenced" >&2; exit 1; fi
check '"\(L,y#\)", cid->client_id, cid->passwd, \(Py_ssize_t\)16'
check 'memcpy\(cid\.passwd, passwd'
check '&cid\.client_id, &passwd, &passwdlen\)\)'
check 'Py_ssize_t passwdlen = 0;'
if [ "$(grep -c -E '"s\|Oi\(Ls#\)"|"ss\|Oi\(Ls#\)"' "$C")" -ne 2 ]; then
    echo "build_zkpython: init() format fix did not apply twice" >&2; exit 1
fi
if [ "$(grep -c -E '"[^"]*s#' "$C")" -ne 10 ]; then
    echo "build_zkpython: expected 10 's#' formats, found $(grep -c -E '"[^"]*s#' "$C"); review the fixes" >&2
    exit 1
fi

# --- compile and install -------------------------------------------------------
SO="zookeeper$EXT_SUFFIX"
gcc -O2 -g -fPIC -shared -Wall -Wno-unused-variable -Wno-unused-function \
    -Werror=int-conversion -Werror=implicit-function-declaration \
    -DTHREADED -I"$PYINC" -I/usr/include/zookeeper -I"$OBJ" \
    -o "$OBJ/$SO" "$C" -lzookeeper_mt 2> "$OBJ/gcc.log" \
    || { cat "$OBJ/gcc.log" >&2; echo "build_zkpython: compile failed" >&2; exit 1; }
mkdir -p "$DEST"
install -m 0755 "$OBJ/$SO" "$DEST/$SO"
WANT_STAMP="$(sha256sum "$0" | cut -d' ' -f1) $(dpkg-query -W -f='${Version}' libzookeeper-mt-dev)"
echo "$WANT_STAMP" > "$STAMP"
if import_ok; then
    echo "build_zkpython: installed $DEST/$SO"
else
    (cd / && PYTHONPATH="$DEST" "$PY" -c 'import zookeeper; print(zookeeper.__file__)') >&2 || true
    echo "build_zkpython: built module does not import" >&2
    exit 1
fi

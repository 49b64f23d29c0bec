#!/usr/bin/env bash
# grasp_cell: the one entry point.
#
#   ./cell.sh setup                 set up everything (idempotent; seconds when nothing changed)
#   ./cell.sh demo [key:=value ...] set up, then run the simulated cell (grasp-cell launch ...)
#   ./cell.sh test [pytest args]    set up, then run the test suite (isolated ROS 2 domain)
#   ./cell.sh deps                  only system packages, venv and requirements.txt (an underlay
#                                   for building with colcon instead: docs/ros_install.md)
#
# Environment:
#   GRASP_CELL_VENV     the virtual environment to use (default: .venv in the repository)
#   GRASP_CELL_PYTHON   the interpreter to create it with (default: python3.11, else python3)
#   GRASP_CELL_BUILD    the CMake build folder for the interfaces (default: build/interfaces)
#   ROS_DOMAIN_ID       `test` picks a random one per run unless GRASP_CELL_TEST_DOMAIN_ID is set
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="${GRASP_CELL_VENV:-$ROOT/.venv}"
BUILD="${GRASP_CELL_BUILD:-$ROOT/build/interfaces}"
STAMPS="$VENV/.grasp_cell"          # stamp files live inside the venv: a new venv rebuilds all
PIP_VERSION=26.3                    # pip itself, installed into the venv before requirements.txt

say() { echo "[setup] $*"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", b - a }'; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

usage() {
  sed -n '2,14p' "$ROOT/cell.sh" | sed 's/^# \{0,1\}//'
}

hash_files() {  # sha256 over file names and contents, in a stable order
  local f
  for f in "$@"; do
    if [ -f "$f" ]; then printf '%s\n' "$f"; cat "$f"; fi
  done | sha256sum | cut -d' ' -f1
}

pip_run() {  # pip, its chatter kept in a log that is shown when it fails
  local log="$STAMPS/pip.log"
  mkdir -p "$STAMPS"
  if ! "$VENV/bin/python" -m pip --disable-pip-version-check --no-input "$@" >"$log" 2>&1; then
    # (this machine's pip.conf may name index folders that do not exist: drop those warnings)
    grep -v "^WARNING: Location 'file:" "$log" | tail -n 40 >&2
    die "pip $* failed; full log: $log"
  fi
}

stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s\n' "$2" > "$STAMPS/$1"; }

# --- (a) system packages --------------------------------------------------------------------
deb_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }

pick_python() {
  if [ -n "${GRASP_CELL_PYTHON:-}" ]; then echo "$GRASP_CELL_PYTHON"; return; fi
  # (a pyenv shim may exist for a version that is not installed: try it)
  if python3.11 -c 'pass' >/dev/null 2>&1; then echo python3.11; return; fi
  echo python3
}

check_system() {
  local missing=() py="$1"
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  command -v make >/dev/null 2>&1 || command -v ninja >/dev/null 2>&1 || missing+=(make)
  command -v gcc >/dev/null 2>&1 || missing+=(gcc)
  command -v g++ >/dev/null 2>&1 || missing+=(g++)
  if command -v dpkg-query >/dev/null 2>&1; then
    deb_installed libusb-1.0-0 || missing+=(libusb-1.0-0)   # for pyrealsense2 later
  fi
  if ! command -v "$py" >/dev/null 2>&1; then
    missing+=(python3 python3-venv python3-dev)
  else
    # Python.h for the generated C extensions; venv/ensurepip to make the venv (Debian splits both).
    "$py" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
      || missing+=(python3-dev)
    [ -x "$VENV/bin/python" ] || "$py" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
  fi
  if [ "${#missing[@]}" -eq 0 ]; then return; fi
  command -v apt-get >/dev/null 2>&1 \
    || die "missing system packages (${missing[*]}) and no apt-get: install them by hand"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "missing ${missing[*]}: run as root or install sudo"
    sudo=(sudo)
  fi
  say "apt-get install ${missing[*]}"
  local log
  log="$(mktemp)"
  if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq >"$log" 2>&1 \
     || ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
          "${missing[@]}" >>"$log" 2>&1; then
    cat "$log" >&2
    die "apt-get failed"
  fi
  rm -f "$log"
}

# --- (b) virtual environment ----------------------------------------------------------------
make_venv() {
  local py="$1"
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'pass' >/dev/null 2>&1; then return; fi
  "$py" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' \
    || say "warning: $("$py" -V 2>&1): the ros-kilted wheels are built for CPython 3.10-3.12"
  if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
    die "$VENV exists and is not a virtual environment: move it away or set GRASP_CELL_VENV"
  fi
  say "creating $VENV with $("$py" -c 'import sys; print(sys.executable)') ($("$py" -V 2>&1))"
  "$py" -m venv --clear "$VENV"
}

site_packages() {  # without starting Python (the ROS wheels' .pth re-executes the interpreter)
  local d
  for d in "$VENV"/lib/python3.*/site-packages; do [ -d "$d" ] && { echo "$d"; return; }; done
  "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}

# The ROS wheels' exported CMake files hard-code the wheel builder's Python and numpy include
# folders (/opt/python/cp311-cp311/...): point them at this venv's. Idempotent; run after every
# pip install (which may restore the originals).
fix_wheel_cmake_files() {
  "$VENV/bin/python" - <<'PY'
import glob, os, re, sys, sysconfig
import numpy
py_inc = sysconfig.get_paths()["include"]
np_inc = numpy.get_include()
changed = 0
for path in glob.glob(os.path.join(sys.prefix, "share", "*", "cmake", "*rosidl_generator_py*Export*.cmake")):
    with open(path) as f:
        text = f.read()
    new = re.sub(r'[^";]*/include/python3\.\d+(?=[";])', lambda m: py_inc, text)
    new = re.sub(r'[^";]*/numpy/(?:_core|core)/include(?=[";])', lambda m: np_inc, new)
    if new != text:
        with open(path, "w") as f:
            f.write(new)
        changed += 1
if changed:
    print("[setup] fixed the Python/numpy include folders in %d exported CMake files" % changed)
PY
}

# --- (c) pinned Python packages -------------------------------------------------------------
install_requirements() {
  local h
  h="$( { echo "pip==$PIP_VERSION"; hash_files requirements.txt; } | sha256sum | cut -d' ' -f1)"
  if stamp_ok requirements "$h"; then return; fi
  if [ "$("$VENV/bin/python" -m pip --version | cut -d' ' -f2)" != "$PIP_VERSION" ]; then
    say "pip install pip==$PIP_VERSION"
    pip_run install --progress-bar off "pip==$PIP_VERSION"
  fi
  local t0="$EPOCHREALTIME"
  say "pip install -r requirements.txt"
  pip_run install --progress-bar off -r requirements.txt
  fix_wheel_cmake_files
  stamp_set requirements "$h"
  say "  requirements installed ($(since "$t0"))"
}

# --- (d) interfaces (msg/ srv/ action/) -----------------------------------------------------
existing_dirs() { local d; for d in "$@"; do [ -d "$d" ] && echo "$d"; done; return 0; }

interface_sources() {
  local dirs
  mapfile -t dirs < <(existing_dirs msg srv action)
  if [ "${#dirs[@]}" -gt 0 ]; then
    find "${dirs[@]}" -type f \( -name '*.msg' -o -name '*.srv' -o -name '*.action' \) | LC_ALL=C sort
  fi
  echo CMakeLists.txt
  echo package.xml
}

build_interfaces() {
  local site h srcs gen log rc
  site="$(site_packages)"
  mapfile -t srcs < <(interface_sources)
  h="$(hash_files "${srcs[@]}" "$STAMPS/requirements")"
  if stamp_ok interfaces "$h" && [ -f "$site/grasp_cell/msg/__init__.py" ]; then return; fi
  local t0="$EPOCHREALTIME"
  say "building interfaces (msg/ srv/ action/) into $VENV"
  fix_wheel_cmake_files
  gen=()
  if command -v ninja >/dev/null 2>&1; then gen=(-G Ninja); else gen=(-G "Unix Makefiles"); fi
  rm -rf "$BUILD"
  mkdir -p "$BUILD"
  log="$BUILD/build.log"
  set +e   # (errexit must stay on inside the subshell: it is off in an `if` condition)
  (
    set -e
    export CMAKE_PREFIX_PATH="$VENV" AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH"
    cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" \
      -DGRASP_CELL_INTERFACES_ONLY=ON \
      -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$VENV/bin/python" \
      -DBUILD_TESTING=OFF
    cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)"
    # Drop what an earlier build installed (renamed or removed interfaces), then install.
    if [ -d "$site/grasp_cell" ] && [ ! -L "$site/grasp_cell" ] && [ ! -d "$site/grasp_cell/core" ]; then
      rm -rf "$site/grasp_cell"
    fi
    rm -f "$VENV"/lib/libgrasp_cell__*.so
    cmake --install "$BUILD"
  ) >"$log" 2>&1
  rc=$?
  set -e
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    die "interface build failed; full log: $log"
  fi
  stamp_set interfaces "$h"
  say "  interfaces built and installed ($(since "$t0"))"
}

# --- (e) the package itself, editable -------------------------------------------------------
install_package() {
  local site h dirs
  site="$(site_packages)"
  mapfile -t dirs < <(existing_dirs launch config models)
  # setup.py's data_files copy launch/ config/ models/ into <venv>/share/grasp_cell: reinstall
  # when the file list (or a file) there changes.
  h="$( { hash_files setup.py setup.cfg pyproject.toml resource/grasp_cell
          if [ "${#dirs[@]}" -gt 0 ]; then
            find "${dirs[@]}" -type f -not -path '*/__pycache__/*' -printf '%p %s %T@\n' | LC_ALL=C sort
          fi
        } | sha256sum | cut -d' ' -f1)"
  if stamp_ok package "$h" && compgen -G "$site/__editable__.grasp_cell-*.pth" >/dev/null; then return; fi
  say "pip install --no-deps -e ."
  # compat mode = a .pth that puts the checkout on sys.path, so grasp_cell/__init__.py runs and
  # its pkgutil.extend_path picks up the generated site-packages/grasp_cell/{msg,srv,action}.
  # (The default finder mode would import grasp_cell as a namespace package from site-packages
  # and never run grasp_cell/__init__.py.) The build backend is the pinned setuptools in the venv.
  pip_run install --progress-bar off --no-deps --no-build-isolation \
    --config-settings editable_mode=compat -e "$ROOT"
  stamp_set package "$h"
}

setup() {  # setup [deps]: everything, or only up to requirements.txt
  local t0="$EPOCHREALTIME" py only="${1:-}"
  py="$(pick_python)"
  mkdir -p "$(dirname "$BUILD")"
  # Several shells (tests, demo) may run setup at once on one venv: serialise.
  if command -v flock >/dev/null 2>&1 && [ -z "${_GRASP_CELL_SETUP_LOCKED:-}" ]; then
    exec 9>"$(dirname "$BUILD")/.cell-setup.lock"
    flock 9
    export _GRASP_CELL_SETUP_LOCKED=1
  fi
  check_system "$py"
  make_venv "$py"
  install_requirements
  if [ "$only" != deps ]; then
    build_interfaces
    install_package
  fi
  say "$VENV ready ($(since "$t0"))"
  if [ -n "${_GRASP_CELL_SETUP_LOCKED:-}" ]; then exec 9>&-; unset _GRASP_CELL_SETUP_LOCKED; fi
}

cmd="${1:-help}"
[ "$#" -gt 0 ] && shift
case "$cmd" in
  setup)
    setup
    ;;
  deps)
    setup deps
    ;;
  demo)
    setup
    # keep DDS traffic on this machine unless asked otherwise
    export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
    exec "$VENV/bin/grasp-cell" launch "$@"
    ;;
  test)
    setup
    export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
    export ROS_DOMAIN_ID="${GRASP_CELL_TEST_DOMAIN_ID:-$(( (RANDOM % 101) + 1 ))}"  # 1..101: safe on Linux
    echo "[test] ROS_DOMAIN_ID=$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST"
    # Run test/ unless a path (file, folder or node id) was given.
    paths=(test)
    for a in "$@"; do
      if [ -e "${a%%::*}" ]; then paths=(); break; fi
    done
    exec "$VENV/bin/python" -m pytest "${paths[@]}" "$@"
    ;;
  help|-h|--help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac

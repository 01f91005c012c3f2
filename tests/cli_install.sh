# cli_install.sh - gen installed like a real tool (issue 18): `cmake
# --install` into a scratch prefix puts gen, its man page, bash and zsh
# completions, docs and the data fetcher in place; the man page names every
# option that `gen CMD FAMILY --help` and `gen TOOL --help` (TOOL: a command
# without a family) print, in the sections of that command; the bash
# completion offers the families after `gen train `, a family's options
# after `gen train vae --` and a tool's after `gen TOOL --`, file names for
# a tool's operands, and the zsh completion hands _arguments every option
# of a tool; and gen, run from an empty
# folder, finds a data set by name in $GEN_DATA and in the XDG data folder,
# or says where it looked.
# Usage: bash tests/cli_install.sh PATH_TO_GEN (in the build folder it installs from)
set -u
GEN=${1:?usage: cli_install.sh PATH_TO_GEN}
. "$(dirname "$0")/testlib.sh"
. "$(dirname "$0")/idxlib.sh"
BUILD=$(cd "$(dirname "$GEN")" && pwd)
P=$TMP/prefix

cmake --install "$BUILD" --prefix "$P" >"$TMP/install.log" 2>&1 ||
    { fail "cmake --install: $(tail -5 "$TMP/install.log")"; finish cli_install; }
for f in bin/gen share/man/man1/gen.1 share/bash-completion/completions/gen \
    share/zsh/site-functions/_gen share/doc/gen/README.md share/doc/gen/docs/DESIGN.md \
    share/gen/fetch-data.sh; do
    [ -s "$P/$f" ] || fail "not installed: $f"
done
G=$P/bin/gen
"$G" --version >/dev/null || fail "the installed gen does not run"

# The commands and families, as gen --help lists them.
"$G" --help >"$TMP/help"
families=$(sed -n '/^Families:/,/^$/s/^  \([a-z][a-z0-9_-]*\) .*/\1/p' "$TMP/help")
[ -n "$families" ] || fail "no families in gen --help"
commands="train sample eval"
# the commands without a family (info, plot, report, export)
tools=$(sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z0-9_-]*\) .*/\1/p' "$TMP/help" |
    grep -vxE "${commands// /|}")
[ -n "$tools" ] || fail "no commands without a family in gen --help"
# options_of ARGS...: the long options that `gen ARGS... --help` lists.
options_of() {
    "$G" "$@" --help | sed -n 's/^ *\(-[a-zA-Z], \)\{0,1\}\(--[a-z0-9-]*\).*/\2/p'
}

# ---- the man page --------------------------------------------------------
MAN=$P/share/man/man1/gen.1
if command -v man >/dev/null; then
    MANWIDTH=200 LC_ALL=C man -l "$MAN" 2>"$TMP/man.err" | col -bx >"$TMP/man.txt"
elif command -v groff >/dev/null; then
    LC_ALL=C groff -man -Tascii -rLL=200n "$MAN" 2>"$TMP/man.err" | col -bx >"$TMP/man.txt"
else # the roff itself, its escapes undone
    sed 's/\\-/-/g; s/\\f[BIRP]//g' "$MAN" >"$TMP/man.txt"
    : >"$TMP/man.err"
fi
[ -s "$TMP/man.err" ] && fail "man page warnings: $(head -3 "$TMP/man.err")"
for s in NAME SYNOPSIS COMMANDS FAMILIES OPTIONS "EXIT STATUS" ENVIRONMENT FILES EXAMPLES; do
    grep -q "^$s" "$TMP/man.txt" || fail "man page has no $s section"
done
for v in GEN_THREADS GEN_ISA GEN_DATA XDG_DATA_HOME; do
    grep -q "$v" "$TMP/man.txt" || fail "man page ENVIRONMENT lacks $v"
done
for k in $families $tools; do
    grep -q "^       $k\b" "$TMP/man.txt" || fail "man page does not list '$k'"
done
# section TITLE: the lines of one subsection of OPTIONS.
section() { awk -v t="   $1" '$0 == t { on = 1; next } on && /^   [^ ]|^[^ ]/ { on = 0 } on' "$TMP/man.txt"; }
for c in $commands; do
    for fam in $families; do
        "$G" "$c" "$fam" --help >"$TMP/opts" || { fail "gen $c $fam --help"; continue; }
        { section "gen $c FAMILY: every family"; section "gen $c $fam"; } >"$TMP/sect"
        for o in $(sed -n 's/^ *\(-[a-zA-Z], \)\{0,1\}\(--[a-z0-9-]*\).*/\2/p' "$TMP/opts"); do
            grep -qE -- "$o([^a-z0-9-]|\$)" "$TMP/sect" || fail "man page: gen $c $fam: $o missing"
        done
    done
done
for t in $tools; do
    opts=$(options_of "$t")
    echo "$opts" | grep -qx -- --help || fail "gen $t --help does not list --help: $opts"
    section "gen $t" >"$TMP/sect"
    for o in $opts; do
        grep -qE -- "$o([^a-z0-9-]|\$)" "$TMP/sect" || fail "man page: gen $t: $o missing"
    done
done

# ---- bash completion -----------------------------------------------------
# complete WORDS...: what the completion offers for the last word.
complete_words() {
    bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _gen; printf "%s\n" "${COMPREPLY[@]}"' \
        _ "$P/share/bash-completion/completions/gen" "$@"
}
offered=$(complete_words gen train "")
for fam in $families; do
    echo "$offered" | grep -qx "$fam" || fail "completion after 'gen train ': no $fam (offered: $offered)"
done
offered=$(complete_words gen "")
for c in $commands $tools; do
    echo "$offered" | grep -qx "$c" || fail "completion after 'gen ': no $c"
done
offered=$(complete_words gen train vae --)
"$G" train vae --help >"$TMP/opts"
for o in $(sed -n 's/^ *\(-[a-zA-Z], \)\{0,1\}\(--[a-z0-9-]*\).*/\2/p' "$TMP/opts"); do
    echo "$offered" | grep -qx -- "$o" || fail "completion after 'gen train vae --': no $o"
done
[ "$(complete_words gen train vae --schedule "")" = "$(printf 'constant\ncosine')" ] ||
    fail "completion of --schedule: $(complete_words gen train vae --schedule "")"
mkdir -p "$TMP/cwd/runs-here"
offered=$(cd "$TMP/cwd" && complete_words gen sample vae --ckpt ru)
[ "$offered" = runs-here ] || fail "completion of --ckpt: not file names: $offered"
for t in $tools; do
    offered=$(complete_words gen "$t" --)
    for o in $(options_of "$t"); do
        echo "$offered" | grep -qx -- "$o" || fail "completion after 'gen $t --': no $o (offered: $offered)"
    done
    got=$(cd "$TMP/cwd" && complete_words gen "$t" ru)
    [ "$got" = runs-here ] || fail "completion of gen $t's operand: not file names: $got"
    got=$(cd "$TMP/cwd" && complete_words gen "$t" runs-here -)
    echo "$got" | grep -qx -- --help || fail "completion after 'gen $t OPERAND -': no options: $got"
done
[ "$(cd "$TMP/cwd" && complete_words gen plot runs-here -o ru)" = runs-here ] ||
    fail "completion of gen plot -o: not file names"
[ "$(complete_words gen export x --dtype "")" = "$(printf 'f32\nf16\nbf16')" ] ||
    fail "completion of export --dtype: $(complete_words gen export x --dtype "")"
[ -z "$(complete_words gen report x --snapshots "")" ] || fail "completion of --snapshots: not a number"

# ---- zsh completion --------------------------------------------------------
# The specs the zsh completion hands _arguments for `gen TOOL --`, one a
# line (_arguments stubbed: no interactive shell needed).
ZSH_COMP=$P/share/zsh/site-functions/_gen
if command -v zsh >/dev/null; then
    zsh -n "$ZSH_COMP" || fail "zsh completion: syntax error"
    for t in $tools; do
        zsh -f -c '_arguments() { print -rl -- "$@"; }; _files() { :; }
            words=(gen "$1" --); CURRENT=3; source "$2"' \
            _ "$t" "$ZSH_COMP" >"$TMP/zspec" 2>&1 || fail "zsh completion of gen $t: $(head -3 "$TMP/zspec")"
        for o in $(options_of "$t"); do
            grep -qE -- "^(\([^)]*\))?$o(=|\+|\[|\$)" "$TMP/zspec" || fail "zsh completion of gen $t: no $o"
        done
        grep -q ':_files$' "$TMP/zspec" || fail "zsh completion of gen $t: operands are not file names"
    done
else
    echo "cli_install: zsh absent: zsh completion checks skipped"
fi

# ---- data sets by name, from an empty folder ---------------------------
mkdir -p "$TMP/empty" "$TMP/store" "$TMP/xdg/gen"
mnist "$TMP/store/tiny" train 40
mnist "$TMP/store/tiny" t10k 20
VAE=(--steps 1 --batch 8 --hidden 8 --threads 1 --quiet)
cd "$TMP/empty" || exit 1
for name in tiny data/tiny; do
    expect 0 "--data $name from \$GEN_DATA" "" -- env GEN_DATA="$TMP/store" \
        "$G" train vae --data "$name" --out "$TMP/run-${name//\//-}" "${VAE[@]}"
done
mv "$TMP/store/tiny" "$TMP/xdg/gen/tiny"
expect 0 "--data tiny from \$XDG_DATA_HOME/gen" "" -- env -u GEN_DATA XDG_DATA_HOME="$TMP/xdg" \
    "$G" train vae --data tiny --out "$TMP/run-xdg" "${VAE[@]}"
mkdir -p "$TMP/home/.local/share"
mv "$TMP/xdg/gen" "$TMP/home/.local/share/gen"
# eval finds the model's data set (stored by name) the same way
expect 0 "eval: the model's data from ~/.local/share/gen" "" -- \
    env -u GEN_DATA -u XDG_DATA_HOME HOME="$TMP/home" \
    "$G" eval vae --ckpt "$TMP/run-xdg/checkpoint.safetensors" --threads 1 --quiet
# found nowhere: exit 1, one line naming every place and the fetch script
expect 1 "a data set found nowhere" "fetch-data.sh" -- \
    env -u XDG_DATA_HOME HOME="$TMP/nohome" GEN_DATA="$TMP/store" \
    "$G" train vae --data data/nowhere --out "$TMP/run-none" "${VAE[@]}"
for place in "data/nowhere" "$TMP/store/nowhere" "$TMP/nohome/.local/share/gen/nowhere"; do
    grep -q "$place" "$TMP/err" || fail "missing data: message does not name $place: $(cat "$TMP/err")"
done
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "missing data: more than one line: $(cat "$TMP/err")"
# Fashion-MNIST from the Debian package, when it is installed
if [ -d /usr/share/datasets/fashion-mnist ]; then
    expect 0 "default data from Debian's Fashion-MNIST" "" -- \
        env -u GEN_DATA -u XDG_DATA_HOME HOME="$TMP/nohome" "$G" train vae --out "$TMP/run-debian" "${VAE[@]}"
else
    echo "cli_install: /usr/share/datasets/fashion-mnist absent: that check skipped"
fi
finish cli_install

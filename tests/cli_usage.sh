# cli_usage.sh - end-to-end checks of the command line: help, version,
# usage errors (exit 2, one message line + a hint) and `gen info` on good,
# missing, truncated and garbage files.
# Usage: bash tests/cli_usage.sh PATH_TO_GEN
set -u
GEN=${1:?usage: cli_usage.sh PATH_TO_GEN}
. "$(dirname "$0")/testlib.sh"

# run ARGS...: runs gen, keeping stdout, stderr and the exit code.
run() {
    "$GEN" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
}

# expect_exit CODE ARGS...
expect_exit() {
    local want=$1
    shift
    run "$@"
    if [ "$rc" != "$want" ]; then
        fail "gen $*: exit $rc, want $want (stderr: $(head -c 300 "$TMP/err"))"
        return 1
    fi
}

# usage_error 'MESSAGE' ARGS...: exit 2, stderr is "gen: MESSAGE" then a Try line.
usage_error() {
    local msg=$1
    shift
    expect_exit 2 "$@" || return
    local first second lines
    first=$(sed -n 1p "$TMP/err")
    second=$(sed -n 2p "$TMP/err")
    lines=$(wc -l <"$TMP/err")
    [ "$first" = "gen: $msg" ] || fail "gen $*: stderr '$first', want 'gen: $msg'"
    case $second in "Try 'gen "*"--help'.") ;; *) fail "gen $*: no Try line: '$second'" ;; esac
    [ "$lines" -eq 2 ] || fail "gen $*: $lines lines on stderr, want 2"
    [ ! -s "$TMP/out" ] || fail "gen $*: wrote to stdout on a usage error"
}

# ---- help and version ------------------------------------------------------
expect_exit 0 --help && {
    for fam in gan vae transformer diffusion; do
        grep -Eq "^  $fam +[a-zA-Z]" "$TMP/out" || fail "gen --help does not list $fam"
    done
    for cmd in train sample eval info plot; do
        grep -q "^  $cmd " "$TMP/out" || fail "gen --help does not list command $cmd"
    done
    grep -q "130" "$TMP/out" || fail "gen --help does not give the exit codes"
}
expect_exit 0 -h
expect_exit 0 --version && {
    grep -Eq '^gen [0-9]+\.[0-9]+\.[0-9]+' "$TMP/out" || fail "gen --version: '$(cat "$TMP/out")'"
}
# Idle OpenMP threads spin briefly, then sleep: gen sets GOMP_SPINCOUNT and
# executes itself again where the user set neither it nor OMP_WAIT_POLICY
# (libgomp's default spin made two runs sharing the cores 10-60x slower).
if ! grep -q "^idle threads: none" "$TMP/out"; then
    env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY "$GEN" --version >"$TMP/out" 2>&1
    grep -qx "idle threads: GOMP_SPINCOUNT=3000 spins, then sleep" "$TMP/out" ||
        fail "gen --version without GOMP_SPINCOUNT: '$(cat "$TMP/out")'"
    GOMP_SPINCOUNT=77 "$GEN" --version >"$TMP/out" 2>&1
    grep -qx "idle threads: GOMP_SPINCOUNT=77 spins, then sleep" "$TMP/out" ||
        fail "gen --version does not keep the user's GOMP_SPINCOUNT: '$(cat "$TMP/out")'"
    env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive "$GEN" --version >"$TMP/out" 2>&1
    grep -qx "idle threads: OMP_WAIT_POLICY=passive" "$TMP/out" ||
        fail "gen --version under OMP_WAIT_POLICY=passive: '$(cat "$TMP/out")'"
    # Asked to bind threads, libgomp binds the first one to the first place
    # as it loads; executed again with that mask, gen's libgomp built its
    # places from one CPU and put every thread there (a step twice as long).
    # The places of the gen executed must be those of the first.
    # And the threads a run gets by default are counted from all the places,
    # not from the first thread's mask (one place: gen ran on one thread, a
    # step twice as long), executed again or not; under taskset -c 0, one.
    unbound=$(env -u GEN_THREADS "$GEN" --version | grep "^threads: ")
    for bind in OMP_PROC_BIND=true OMP_PLACES=cores "OMP_PLACES={1},{0}"; do
        env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY "$bind" OMP_DISPLAY_ENV=true "$GEN" --version \
            >"$TMP/out" 2>&1
        places=$(grep "OMP_PLACES = " "$TMP/out" | sort -u)
        [ "$(grep -c "OMP_PLACES = " "$TMP/out")" = 2 ] &&
            [ "$(printf '%s\n' "$places" | wc -l)" = 1 ] ||
            fail "$bind gen --version: places of the gen executed differ: '$(cat "$TMP/out")'"
        for how in executed-again as-started; do
            spin=(-u GOMP_SPINCOUNT)
            [ "$how" = as-started ] && spin=(GOMP_SPINCOUNT=99)
            got=$(env -u GEN_THREADS "${spin[@]}" "$bind" "$GEN" --version | grep "^threads: ")
            [ "$got" = "$unbound" ] ||
                fail "$bind gen --version ($how): '$got', unbound '$unbound'"
        done
    done
    if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
        got=$(env -u GEN_THREADS -u OMP_NUM_THREADS taskset -c 0 "$GEN" --version | grep "^threads: ")
        [ "$got" = "threads: 1 by default" ] || fail "taskset -c 0 gen --version: '$got'"
    fi
    # started through the dynamic loader, gen must not execute the loader
    loader=$(readelf -l "$GEN" 2>/dev/null | sed -n 's/.*interpreter: \([^]]*\)].*/\1/p')
    if [ -n "$loader" ] && [ -x "$loader" ]; then
        env -u GOMP_SPINCOUNT -u OMP_WAIT_POLICY "$loader" "$GEN" --version >"$TMP/out" 2>&1
        grep -Eq '^gen [0-9]+\.[0-9]+\.[0-9]+' "$TMP/out" ||
            fail "$loader gen --version: '$(head -c 300 "$TMP/out")'"
    fi
fi
expect_exit 2                      # no command: help on stderr
grep -q "Usage:" "$TMP/err" || fail "gen with no command prints no usage"

for cmd in train sample eval; do
    for fam in gan vae transformer diffusion; do
        expect_exit 0 "$cmd" "$fam" --help && {
            grep -q -- "--threads" "$TMP/out" || fail "gen $cmd $fam --help lacks --threads"
            grep -q "Usage: gen $cmd $fam" "$TMP/out" || fail "gen $cmd $fam --help: no usage"
        }
    done
    expect_exit 0 "$cmd" --help
done
run train vae --help
grep -q -- "--batch N .*(default: 128)" "$TMP/out" || fail "vae --batch default is not 128"
grep -q -- "--latent N .*(default: 20)" "$TMP/out" || fail "vae --latent not listed"
run train gan --help
grep -q -- "--lr X .*(default: 2e-4)" "$TMP/out" || fail "gan --lr default is not 2e-4"
run train transformer --help
grep -q -- "--steps N .*(default: 5000)" "$TMP/out" || fail "transformer --steps default"
run sample diffusion --help
grep -q -- "--sampler ddpm|ddim" "$TMP/out" || fail "diffusion --sampler not listed"

# ---- usage errors ------------------------------------------------------------
usage_error "unknown command 'frobnicate'" frobnicate
usage_error "unknown option '--bogus'" --bogus
usage_error "train: missing FAMILY (one of gan, vae, transformer, diffusion, classifier)" train
usage_error "train: unknown family 'vea' (one of gan, vae, transformer, diffusion, classifier)" train vea
usage_error "sample: unknown family 'x' (one of gan, vae, transformer, diffusion, classifier)" sample x
usage_error "unknown option '--bogus'" train vae --bogus
usage_error "unknown option '-z'" sample vae -z 3
usage_error "--lr: missing value" train vae --lr
usage_error "--lr: missing value" train vae --lr --batch 3
usage_error "--batch: must be an integer in [1, 65536], got '0'" train vae --batch 0
usage_error "--batch: must be an integer in [1, 65536], got '0'" train gan --batch=0
usage_error "--lr: not a number: 'abc'" train vae --lr abc
usage_error "--seed: must be an integer >= 0, got '-1'" train vae --seed -1
usage_error "--seed: must be an integer >= 0, got '-1'" sample diffusion --seed -1
usage_error "-n: must be an integer in [1, 100000], got '0'" sample diffusion -n 0
usage_error "--epochs: must be an integer >= 1, got '1.5'" train vae --epochs 1.5
usage_error "--epochs and --steps cannot be used together" train vae --epochs 2 --steps 5
usage_error "--arch: must be one of mlp|conv, got 'rnn'" train vae --arch rnn
usage_error "--sampler: must be one of ddpm|ddim, got 'euler'" sample diffusion --sampler euler
usage_error "--top-p: must be in [0, 1], got '1.5'" sample transformer --top-p 1.5
usage_error "--json: takes no value" train vae --json=yes
usage_error "unexpected argument 'stray'" train vae stray
usage_error "unexpected argument 'extra'" eval vae --ckpt a extra
usage_error "unknown option '--latent'" sample vae --latent 3   # train-only option
usage_error "info: missing CKPT (a checkpoint file or run directory)" info
usage_error "unexpected argument 'b'" info a b
usage_error "unknown option '--bogus'" info --bogus
usage_error "unknown option '--bogus'" info a --bogus
# the commands without a family parse their option tables like the others
usage_error "plot: missing RUN_DIR (a run directory with metrics.jsonl)" plot
usage_error "plot: missing RUN_DIR (a run directory with metrics.jsonl)" plot -q -o x.png
usage_error "unexpected argument 'b'" plot a b
usage_error "unknown option '--bogus'" plot a --bogus
usage_error "-o: missing value" plot a -o
usage_error "--output: missing value" plot a --output --quiet
usage_error "--quiet: takes no value" plot a --quiet=yes
usage_error "report: missing RUN_DIR (a run directory with metrics.jsonl)" report -o x.html
usage_error "--snapshots: must be an integer in [1, 1000], got '0'" report a --snapshots 0
usage_error "--snapshots: must be an integer in [1, 1000], got 'x'" report a --snapshots=x
usage_error "--output: an empty path" report a -o ""
usage_error "export: missing CKPT (a checkpoint file or run directory)" export -o x.safetensors
for cmd in info plot report export; do
    expect_exit 0 "$cmd" --help && {
        grep -q "^Usage: gen $cmd " "$TMP/out" || fail "gen $cmd --help: no usage line"
        grep -q "^  -h, --help  *this help" "$TMP/out" || fail "gen $cmd --help: no -h, --help"
    }
    expect_exit 0 "$cmd" x -h
done
grep -q "Try 'gen train vae --help'." <(run train vae --batch 0; cat "$TMP/err") ||
    fail "usage error does not point at 'gen train vae --help'"

# ---- gen info ------------------------------------------------------------------
# info_error FILE: exit 1 and one line on stderr that names the file.
info_error() {
    expect_exit 1 info "$1" || return
    grep -qF "$1" "$TMP/err" || fail "gen info $1: message does not name the file: $(cat "$TMP/err")"
    [ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "gen info $1: more than one line on stderr"
    grep -q "^gen: " "$TMP/err" || fail "gen info $1: message does not start with 'gen: '"
}
info_error "$TMP/missing.safetensors"
: >"$TMP/empty.safetensors"
info_error "$TMP/empty.safetensors"
head -c 4096 /dev/urandom >"$TMP/garbage.safetensors"
info_error "$TMP/garbage.safetensors"
printf 'not a checkpoint at all, just some text\n' >"$TMP/text.safetensors"
info_error "$TMP/text.safetensors"
mkdir "$TMP/dir.safetensors"
info_error "$TMP/dir.safetensors"

# A small valid checkpoint, written by hand: 8-byte LE header length, the
# JSON header padded with spaces to a multiple of 8, then 2x3 + 4 floats.
write_ckpt() { # FILE [DATA_BYTES]
    local header='{"__metadata__":{"format":"gen","format_version":"1","gen_version":"0.1.0","family":"vae","config":"{\"latent\":20,\"arch\":\"mlp\"}","step":"42"},"enc.fc1.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"enc.fc1.bias":{"dtype":"F32","shape":[4],"data_offsets":[24,40]},"optim.m.enc.fc1.bias":{"dtype":"F32","shape":[4],"data_offsets":[40,56]}}'
    while [ $((${#header} % 8)) -ne 0 ]; do header="$header "; done
    local n=${#header}
    {
        printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)))"
        printf '\0\0\0\0'
        printf '%s' "$header"
        head -c "${2:-56}" /dev/zero
    } >"$1"
}
write_ckpt "$TMP/good.safetensors"
expect_exit 0 info "$TMP/good.safetensors" && {
    grep -Eq "^family: +vae" "$TMP/out" || fail "gen info: no family line"
    grep -Eq "^step: +42" "$TMP/out" || fail "gen info: no step line"
    grep -Eq "^parameters: +10 in 2 tensors" "$TMP/out" || fail "gen info: parameter count"
    grep -Eq "enc\.fc1\.weight +\[2, 3\] +6" "$TMP/out" || fail "gen info: tensor table row"
    grep -Eq "latent +20" "$TMP/out" || fail "gen info: config not shown"
    grep -q "version 1" "$TMP/out" || fail "gen info: format version not shown"
}
write_ckpt "$TMP/truncated.safetensors" 30
info_error "$TMP/truncated.safetensors"
head -c 100 "$TMP/good.safetensors" >"$TMP/cut-header.safetensors"
info_error "$TMP/cut-header.safetensors"

# sample and eval before any training (no runs/FAMILY/checkpoint.safetensors
# here): one line that says what to do, exit 1
mkdir -p "$TMP/fresh"
want="gen: runs/diffusion/checkpoint.safetensors: no checkpoint (train one with"
want="$want 'gen train diffusion', or name one with --ckpt)"
for cmd in "sample diffusion -n 16 -o g.png" "eval diffusion"; do
    # shellcheck disable=SC2086 # the words of the command
    (cd "$TMP/fresh" && "$GEN" $cmd >"$TMP/out" 2>"$TMP/err")
    rc=$?
    [ "$rc" = 1 ] && [ "$(cat "$TMP/err")" = "$want" ] ||
        fail "gen $cmd before training: exit $rc: $(cat "$TMP/err")"
done

finish cli_usage

# cli_precision.sh - --precision fp32|bf16 of train, sample and eval: a
# bad value is a usage error; bf16 where it cannot run (GEN_ISA forcing
# other kernels, or a CPU without AVX512-BF16) is one line naming what is
# missing; a bf16 run trains and resumes (keeping its precision, or taking
# another from the command line), gives the same bytes on 1 and 2 threads,
# differs from fp32, and its checkpoint samples and evaluates in either
# precision.
# Usage: bash tests/cli_precision.sh PATH_TO_GEN   (needs data/mnist; skips, exit 77, without it)
set -u
GEN=${1:?usage: cli_precision.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
DATA=$SRC/data/mnist
. "$(dirname "$0")/testlib.sh"
needs cli_precision "$DATA"
VAE=(--data "$DATA" --batch 8 --hidden 16 --latent 2 --quiet --seed 3)
DIF=(--data "$DATA" --batch 2 --base 8 --mults 1,1,1 --no-attn --sample-steps 2 --warmup 2 --quiet)

expect 2 "bad value" "--precision: must be one of fp32|bf16" -- \
    "$GEN" train vae "${VAE[@]}" --steps 1 --precision bf32 --out "$TMP/bad"
expect 1 "other kernels forced" "--precision bf16: .*AVX" -- \
    env GEN_ISA=avx2 "$GEN" train vae "${VAE[@]}" --steps 1 --precision bf16 --out "$TMP/isa"
[ "$(wc -l <"$TMP/err")" = 1 ] || fail "other kernels forced: not one line: $(cat "$TMP/err")"
expect 1 "sample, other kernels forced" "--precision bf16: .*AVX" -- \
    env GEN_ISA=scalar "$GEN" sample vae --ckpt "$TMP/none.safetensors" --precision bf16 -o "$TMP/x.png"
# --version does not offer bf16 beside kernels that refuse it
GEN_ISA=scalar "$GEN" --version 2>/dev/null | grep -q "kernels: scalar; --precision bf16: not " ||
    fail "--version under GEN_ISA=scalar: $(GEN_ISA=scalar "$GEN" --version 2>&1 | tail -1)"

"$GEN" train vae "${VAE[@]}" --steps 1 --precision bf16 --out "$TMP/probe" 2>"$TMP/err"
if [ $? != 0 ]; then
    grep -q -- "--precision bf16: .*AVX512_BF16\|--precision bf16: this build" "$TMP/err" ||
        fail "no bf16 here, and the message does not say why: $(cat "$TMP/err")"
    echo "cli_precision: no AVX512-BF16 on this CPU or build ($(cat "$TMP/err")): the bf16 runs skipped"
    finish cli_precision
fi

# the same bytes on 1 and 2 threads; not the bytes of fp32
for t in 1 2; do
    "$GEN" train vae "${VAE[@]}" --steps 6 --precision bf16 --threads $t --out "$TMP/vae-t$t" ||
        fail "vae bf16 on $t threads"
    "$GEN" train diffusion "${DIF[@]}" --steps 3 --precision bf16 --threads $t --out "$TMP/dif-t$t" ||
        fail "diffusion bf16 on $t threads"
done
cmp -s "$TMP/vae-t1/checkpoint.safetensors" "$TMP/vae-t2/checkpoint.safetensors" ||
    fail "vae bf16: 1 and 2 threads differ"
cmp -s "$TMP/dif-t1/checkpoint.safetensors" "$TMP/dif-t2/checkpoint.safetensors" ||
    fail "diffusion bf16: 1 and 2 threads differ"
"$GEN" train vae "${VAE[@]}" --steps 6 --out "$TMP/vae-fp32" || fail "vae fp32"
cmp -s "$TMP/vae-t1/checkpoint.safetensors" "$TMP/vae-fp32/checkpoint.safetensors" &&
    fail "vae: bf16 and fp32 gave the same checkpoint"

# a resumed run keeps bf16 (4 + 2 steps = 6 at once), or takes fp32 when told
"$GEN" train vae "${VAE[@]}" --steps 4 --precision bf16 --threads 1 --out "$TMP/res" || fail "vae 4 steps"
"$GEN" train vae --steps 6 --resume --threads 1 --quiet --out "$TMP/res" || fail "resume, bf16 kept"
cmp -s "$TMP/vae-t1/checkpoint.safetensors" "$TMP/res/checkpoint.safetensors" ||
    fail "resumed bf16 run differs from the uninterrupted one"
"$GEN" info "$TMP/res/checkpoint.safetensors" >"$TMP/info" 2>&1
grep -q '"precision":"bf16"\|precision.*bf16' "$TMP/info" || fail "info: the stored precision: $(cat "$TMP/info")"
expect 0 "resume in fp32" "" -- "$GEN" train vae --steps 8 --resume --precision fp32 --out "$TMP/res"
grep -q -- "--precision: bf16 -> fp32" "$TMP/err" || fail "resume in fp32: not announced: $(cat "$TMP/err")"

# the checkpoint samples and evaluates in both precisions
for p in fp32 bf16; do
    expect 0 "sample $p" "" -- "$GEN" sample vae --ckpt "$TMP/res/checkpoint.safetensors" -n 4 \
        --precision $p -o "$TMP/s-$p.png"
    expect 0 "eval $p" "" -- "$GEN" eval vae --ckpt "$TMP/res/checkpoint.safetensors" --data "$DATA" \
        --precision $p --iw 0 --json
done
finish cli_precision

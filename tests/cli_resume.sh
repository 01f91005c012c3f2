# cli_resume.sh - every family through the one trainer: N steps, then
# --resume to 2N, writes the same checkpoint bytes as 2N steps at once (a
# conditional model too); the resumed run keeps its data set and model
# options without being told them again, and its log's elapsed time goes
# on from where it stopped.
# Usage: bash tests/cli_resume.sh PATH_TO_GEN   (needs data/mnist; skips, exit 77, without it)
set -u
GEN=${1:?usage: cli_resume.sh PATH_TO_GEN}
SRC=${GEN_SOURCE_DIR:-$(dirname "$0")/..}
DATA=$SRC/data/mnist
. "$(dirname "$0")/testlib.sh"
needs cli_resume "$DATA"
head -c 4000 "$SRC/README.md" >"$TMP/text.txt"

check() { # [--as TAG] family data options...
    local tag=""
    [ "$1" = --as ] && tag=$2 && shift 2
    local fam=$1 data=$2
    shift 2
    tag=${tag:-$fam}
    local common=(--data "$data" --threads 1 --quiet --seed 7 "$@")
    "$GEN" train "$fam" --steps 4 --out "$TMP/$tag-a" "${common[@]}" || { fail "$tag: 4 steps"; return; }
    "$GEN" train "$fam" --steps 2 --out "$TMP/$tag-b" "${common[@]}" || { fail "$tag: 2 steps"; return; }
    # only the new length: data, seed and model options come from the checkpoint
    "$GEN" train "$fam" --steps 4 --out "$TMP/$tag-b" --resume --threads 1 --quiet ||
        { fail "$tag: resume"; return; }
    cmp -s "$TMP/$tag-a/checkpoint.safetensors" "$TMP/$tag-b/checkpoint.safetensors" ||
        fail "$tag: resumed checkpoint differs from the uninterrupted one"
    # elapsed never goes back in the resumed run's log
    awk -F'"elapsed":' 'NF > 1 { split($2, a, /[,}]/); e = a[1] + 0; if (e < last) bad = 1; last = e }
                        END { exit bad }' "$TMP/$tag-b/metrics.jsonl" ||
        fail "$tag: elapsed went back after the resume: $(cat "$TMP/$tag-b/metrics.jsonl")"
}

check vae "$DATA" --batch 8 --hidden 8 --latent 2
check gan "$DATA" --batch 8 --g-width 4 --d-width 4 --latent 4 --ema 0.9
check --as cond-vae vae "$DATA" --batch 8 --hidden 8 --latent 2 --conditional
check --as cond-gan gan "$DATA" --batch 8 --g-width 4 --d-width 4 --latent 4 --ema 0.9 --conditional
check diffusion "$DATA" --batch 4 --base 8 --mults 1,1,1 --no-attn --sample-steps 2 --warmup 2
check --as cond-diffusion diffusion "$DATA" --batch 4 --base 8 --mults 1,1,1 --no-attn --sample-steps 2 --warmup 2 --conditional
check transformer "$TMP/text.txt" --batch 2 --layers 1 --heads 2 --width 16 --context 16 --eval-every 2
# The classifier's default cosine schedule spans the run's --steps, so a
# run asked for 2 steps decays differently from one asked for 4: compare
# with a constant rate.
check classifier "$DATA" --batch 8 --filters 2 --schedule constant

finish cli_resume

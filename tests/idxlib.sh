# idxlib.sh - small IDX (MNIST-format) data sets for the shell tests,
# sourced by those that need one.
# be32 N: N as 4 big-endian bytes on stdout.
be32() { printf "\\x$(printf %02x $(($1 >> 24 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 & 255)))"; }
# mnist DIR PREFIX N: IDX images (N, 28, 28) of random bytes and labels
# 0..9 in DIR, as PREFIX-images-idx3-ubyte and PREFIX-labels-idx1-ubyte.
mnist() {
    local dir=$1 prefix=$2 n=$3 i
    mkdir -p "$dir"
    { printf '\x00\x00\x08\x03'; be32 "$n"; be32 28; be32 28; head -c $((n * 784)) /dev/urandom; } \
        >"$dir/$prefix-images-idx3-ubyte"
    { printf '\x00\x00\x08\x01'; be32 "$n"; for i in $(seq "$n"); do printf "\\x0$((i % 10))"; done; } \
        >"$dir/$prefix-labels-idx1-ubyte"
}

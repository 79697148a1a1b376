#!/usr/bin/env bash
# Data-parallel scaling on this machine: the same global batch (16 examples per optimizer step) trained by one
# process (batch 8 × accumulation 2) and by `mpirun -np 2` (2 ranks × batch 8 × accumulation 1), on the README's
# embedded model (samples/models/wordnet-llama, 4.5 M parameters) with LoRA r 16 on every linear layer.
# Prints the throughput of each (input tokens/s over steps 6-N, the first 5 are warm-up) and the scaling efficiency
# = throughput(2 ranks) / (2 × throughput(1 rank)). Usage: bench/distributed/scaling.sh [steps]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
steps=${1:-30}
dotnet build src/Lora.Cli -c Release -tl:off -v q >/dev/null
lora=src/Lora.Cli/bin/Release/net10.0/lora
work=$(mktemp -d)
common=(train --model samples/models/wordnet-llama --data samples/data/wordnet/train.json --template alpaca --device cpu
        --r 16 --alpha 32 --targets all-linear --lora-dropout 0 --max-length 256 --max-steps "$steps" --logging-steps 5
        --save-steps 0 --batch-size 8)
throughput() { # mean tokens_per_s of the rows after the first (warm-up)
    python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; t=[x["tokens_per_s"] for x in r if "tokens_per_s" in x][1:]; print(f"{sum(t)/len(t):.0f}")' "$1/metrics.jsonl"
}
"$lora" "${common[@]}" --grad-accum 2 --out "$work/one" >/dev/null
one=$(throughput "$work/one")
mpirun --allow-run-as-root --oversubscribe -np 2 "$lora" "${common[@]}" --grad-accum 1 --out "$work/two" >/dev/null
two=$(throughput "$work/two")
python3 - "$one" "$two" <<'PY'
import sys
one, two = float(sys.argv[1]), float(sys.argv[2])
print(f"1 rank : {one:.0f} tok/s")
print(f"2 ranks: {two:.0f} tok/s (global, both ranks)")
print(f"speed-up {two/one:.2f}x, scaling efficiency {two/(2*one)*100:.0f}%")
PY
rm -rf "$work"

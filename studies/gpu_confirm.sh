#!/usr/bin/env bash
# The frontier's confirmation on one CUDA card, in calls of a few minutes (a lent GPU machine's 10-minute calls):
# grows the committed stores in the order the open questions need them, then packs every confirmation store into
# one archive (unpack it in the repository root and commit; the stores resume wherever a call stopped).
#   1. the confirmation's own budget check at eps 0.3, then at eps 0.2: four times the frontier's iterations, on its
#      64 images;
#   2. the eps 0.3 confirmation (256 images), then the eps 0.2 one (128), at twice the frontier's iterations.
#   bash studies/gpu_confirm.sh MINUTES [ARCHIVE]      # e.g. bash studies/gpu_confirm.sh 8 "$OUT/stores.tar.gz"
# Each run is stopped (SIGTERM, which it records in its store's runs.jsonl) when the minutes are spent, and killed
# 15 s later if still going; a stop loses only the attack it interrupted. Not SIGINT: a process started in the
# background of a non-interactive shell ignores it.
set -u
minutes=${1:?usage: gpu_confirm.sh MINUTES [ARCHIVE]}
archive=${2:-stores.tar.gz}
deadline=$((SECONDS + minutes * 60))
grow() {  # the flags of one studies.frontier run
  local left=$((deadline - SECONDS - 35))  # 35 s kept for a stop that needs the kill, and for packing
  if [ "$left" -gt 0 ]; then
    timeout --kill-after=15 "$left" python -m studies.frontier --step 64 --batches-per-pass 4 "$@" \
      --note "one CUDA card, in calls of $minutes minutes (studies/gpu_confirm.sh)"
  fi
}
grow --config configs/mnist-confirm-eps0.3-4x.yaml --points mimic-gs4-up diffpure-t0.3
grow --config configs/mnist-confirm-eps0.2-4x.yaml --points mimic-gs4-up diffpure-t0.2
grow --config configs/mnist-confirm-eps0.3.yaml --points mimic-gs4-up diffpure-t0.3
grow --config configs/mnist-confirm-eps0.2.yaml --points mimic-gs4-up diffpure-t0.2
tar czf "$archive" benchmarks/results/confirm-eps0.*
echo "packed $(tar tzf "$archive" | grep -c 'results.rank') record shards into $archive"

#!/usr/bin/env bash
# The main benches on one CUDA machine, then one table: bench, figure, seconds. Each step is
# bounded (the limits sum to 13 minutes; most finish well inside theirs).
#
#     bash bench/gpu.sh              # needs CUDA; refuses (exit 2) without it
#     bash bench/gpu.sh --dry-run    # any machine: prints every command, checks each bench's
#                                    # flags, runs the zoo train steps on tiny data (CPU)
#
# GPU options: every command takes --device (auto: CUDA when present) and its precision
# "auto" means bf16 autocast there; the `zoo train` steps pass `--precision bf16` explicitly.
# zoo has no channels_last or torch.compile option (zoo/training/config.py), so none is
# passed. DDP: torchrun --nproc-per-node=<GPU count>, skipped (with a line saying so) on one
# GPU. The {train,predict,eval,serve}-{cuda,cpu} rows run bench_device.py on each device
# (the digits model of train-bf16; train fine-tunes every layer) and a last line gives the
# cuda/cpu ratios; the dry run parses the cuda rows' flags and runs the cpu rows on tiny data.
# bench_encoders compares zoo with the plain libraries on the CPU (both sides there); the
# serve row's `zoo serve` runs on the GPU (--device auto).
#
# Env: PYTHON (default .venv/bin/python), ZOO_BENCH_DIR (default /tmp/zoo-bench-gpu).
set -uo pipefail

DRY=0
for a in "$@"; do
    case "$a" in
        --dry-run) DRY=1 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "gpu.sh: unknown argument $a (only --dry-run)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
# the steps run from bench/: a relative PYTHON (or a bare name on PATH) is made absolute first
case "$PY" in /*) ;; */*) d="$(cd "$(dirname "$PY")" 2>/dev/null && pwd)" \
    || { echo "gpu.sh: no folder $(dirname "$PY") (PYTHON=$PY)" >&2; exit 2; }
    PY="$d/$(basename "$PY")" ;;
    *) PY="$(command -v "$PY" || echo "$PY")" ;; esac
TORCHRUN="$(dirname "$PY")/torchrun"
[ -x "$TORCHRUN" ] || TORCHRUN="$PY -m torch.distributed.run"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    if [ "$DRY" = 0 ]; then
        echo "gpu.sh: no CUDA device (torch.cuda.is_available() is False); use --dry-run" >&2
        exit 2
    fi
    NGPU=0
else
    NGPU="$("$PY" -c "import torch; print(torch.cuda.device_count())")"
fi

if [ "$DRY" = 1 ]; then
    WORK="$(mktemp -d /tmp/zoo-gpu-dry.XXXXXX)"
    trap '[ "$FAILED" = 0 ] && rm -rf "$WORK"' EXIT  # kept when a step failed
    LIMIT=5 EPOCHS=1 BATCH=2 NPROC=$([ "$NGPU" = 0 ] && echo 2 || echo "$NGPU")  # CPU: gloo
    CPU_LIMIT=3 REQUESTS=8 CLIENTS=2
else
    WORK="${ZOO_BENCH_DIR:-/tmp/zoo-bench-gpu}"
    LIMIT=1797 EPOCHS=3 BATCH=64 NPROC="$NGPU"
    CPU_LIMIT=256 REQUESTS=512 CLIENTS=32  # the CPU rows train on 256 examples: ex/s alike
fi
export ZOO_BENCH_DIR="$WORK"
mkdir -p "$WORK/logs"
rm -f "$WORK/results"/device-*.json  # the cuda/cpu line reads only this run's figures
DATA="$WORK/digits-gpu"
ROWS="$WORK/logs/rows.tsv"
: > "$ROWS"
FAILED=0

# step NAME TIMEOUT_S KIND -- COMMAND...   (run from bench/; TIMEOUT_S on the GPU, the
# fifteen sum to 780 s; none in the dry run, which must not fail on a slow or loaded CPU: set
# ZOO_GPU_DRY_TIMEOUT=N to bound each dry step anyway). KIND: run (always runs) | bench (dry run: its
# flags parsed by its own parser, not run) | bench-noargs (takes no flags; dry run: compiled)
step() {
    local name="$1" limit="$2" kind="$3"; shift 4
    local log="$WORK/logs/$name.log" rc t0 t1 fig
    [ "$DRY" = 1 ] && limit="${ZOO_GPU_DRY_TIMEOUT:-0}"  # timeout 0: no limit
    printf "$"; printf " %q" "$@"; echo
    t0=$(date +%s.%N)
    if [ "$DRY" = 1 ] && [ "$kind" = bench ]; then
        (cd "$ROOT/bench" && "$PY" - "$@" <<'EOF') > "$log" 2>&1
# Parse the bench's flags with its own parser, then stop before it runs anything.
import argparse, runpy, sys
class Parsed(Exception):
    pass
orig = argparse.ArgumentParser.parse_args
def parse_only(self, args=None, namespace=None):
    ns = orig(self, args, namespace)  # a bad flag: exit status 2 with argparse's message
    raise Parsed(ns)
argparse.ArgumentParser.parse_args = parse_only
script, sys.argv = sys.argv[2], sys.argv[2:]
try:
    runpy.run_path(script, run_name="__main__")
except Parsed as p:
    print("flags ok:", vars(p.args[0]))
    sys.exit(0)
print("the bench never parsed its flags"); sys.exit(1)
EOF
        rc=$?
    elif [ "$DRY" = 1 ] && [ "$kind" = bench-noargs ]; then
        local extra=("${@:3}")
        if [ "${#extra[@]}" -gt 0 ]; then
            echo "$2 takes no flags, got: ${extra[*]}" > "$log"; rc=1
        else
            "$PY" -m py_compile "$ROOT/bench/$2" > "$log" 2>&1; rc=$?
        fi
    else
        (cd "$ROOT/bench" && timeout "$limit" "$@") > "$log" 2>&1; rc=$?
        [ "$rc" = 124 ] && echo "timed out after $limit s" >> "$log"
    fi
    t1=$(date +%s.%N)
    if [ "$rc" != 0 ]; then
        FAILED=1
        fig="FAILED (exit $rc; $log)"
        tail -n 15 "$log" | sed 's/^/    | /'
    else
        fig="$("$PY" - "$name" "$log" "$kind" "$DRY" "$@" <<'EOF'
import json, re, sys
from pathlib import Path
name, log, kind, dry, cmd = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", sys.argv[5:]
text = log.read_text(errors="replace")
if dry and kind == "bench":
    print("flags ok (not run)"); sys.exit()
if dry and kind == "bench-noargs":
    print("compiles (not run)"); sys.exit()
res = [json.loads(x[7:]) for x in text.splitlines() if x.startswith("RESULT ")]
r = res[-1] if res else {}
if r.get("bench", "").startswith("device-"):
    w = r["what"]
    print(f"{r['ex_per_s']} ex/s ({r['precision']}, {r['examples']} ex)" if w == "train" else
          f"{r['ex_per_s']} ex/s ({r['device']}, {r['examples']} ex)" if w == "predict" else
          f"accuracy {r['accuracy']}, {r['ex_per_s']} ex/s" if w == "eval" else
          f"{r['rps']} req/s ({r['device']}, {r['precision']}, {r['clients']} clients)")
elif name == "encoders":
    fw = re.findall(r"^(\S+) .*?(\d+\.\d+)\s+\(zoo throughput", text, re.M)
    ld = re.search(r"  ratio (\d+\.\d+)", text)
    print("zoo/plain " + " ".join(f"{n} {v}" for n, v in fw)
          + (f"; load {ld.group(1)}" if ld else ""))
elif name == "cache":
    print(f"cached epoch {r['ratio']}x faster ({r['cached_epoch_s']} vs {r['full_epoch_s']} s)")
elif name.startswith("image"):
    print(f"test acc {r['test_accuracy']} (train {r['train_s']} s)")
elif name == "serve":
    print(f"micro-batching {r['ratio']}x ({r['batched_rps']} vs {r['single_rps']} req/s)")
elif name.startswith("train"):
    s = json.loads((Path(cmd[cmd.index("--out") + 1]) / "training.json").read_text())
    print(f"val acc {s['best']['accuracy']:.3f}, {s['precision']}, world {s['world_size']}, "
          f"{s['steps']} steps")
else:
    print("ok")
EOF
)" || { FAILED=1; fig="FAILED (no figure in $log)"; }
    fi
    printf '%s\t%s\t%s\n' "$name" "$fig" "$(awk "BEGIN {printf \"%.1f\", $t1 - $t0}")" >> "$ROWS"
}

# the digits split of bench_image.py (60/20/20; LIMIT examples in the dry run)
prep_cmd=("$PY" -c "import sys; from zoo.testing.synthetic import digits_manifests
digits_manifests(sys.argv[1], size=32, limit=int(sys.argv[2]))" "$DATA" "$LIMIT")
train_args=(effnet-lite0-image-clf --train "$DATA/train.jsonl" --eval "$DATA/val.jsonl"
            --epochs "$EPOCHS" --batch-size "$BATCH" --freeze none --precision bf16
            --logger none --quiet)

echo "gpu.sh: $([ "$DRY" = 1 ] && echo "DRY RUN (CPU, tiny sizes)" || echo "$NGPU CUDA device(s)"); work folder $WORK"
step data 20 run -- "${prep_cmd[@]}"
step encoders 80 bench -- "$PY" bench_encoders.py --reps 3
step cache 90 bench-noargs -- "$PY" bench_cache.py
step image-finetune 90 bench -- "$PY" bench_image.py --mode finetune --size 128 --epochs 3
step train-bf16 70 run -- "$PY" -m zoo train "${train_args[@]}" --out "$WORK/train-bf16"
if [ "$NPROC" -ge 2 ]; then
    step train-ddp 70 run -- $TORCHRUN --standalone --nproc-per-node="$NPROC" -m zoo train \
        "${train_args[@]}" --out "$WORK/train-ddp"
else
    echo "train-ddp: skipped, only $NGPU GPU (DDP needs 2 or more)"
    printf 'train-ddp\tskipped: %s GPU\t0.0\n' "$NGPU" >> "$ROWS"
fi
step serve 60 bench -- "$PY" bench_serve.py --requests 256 --clients 32
# the same work on the GPU and on the CPU: training, prediction, evaluation, serving
MODEL="$WORK/train-bf16"
for what in train predict eval serve; do
    case "$what" in
        train) args=(--data "$DATA" --batch-size "$BATCH") limit=45 ;;
        serve) args=(--model "$MODEL" --data "$DATA" --requests "$REQUESTS" --clients "$CLIENTS")
               limit=45 ;;
        *) args=(--model "$MODEL" --data "$DATA" --batch-size "$BATCH") limit=30 ;;
    esac
    step "$what-cuda" "$limit" bench -- "$PY" bench_device.py "$what" --device cuda "${args[@]}"
    step "$what-cpu" "$limit" run -- "$PY" bench_device.py "$what" --device cpu "${args[@]}" \
        --limit "$CPU_LIMIT"
done

echo
printf '%-16s %-64s %8s\n' bench figure seconds
printf '%-16s %-64s %8s\n' ---------------- "$(printf '%.0s-' {1..64})" --------
while IFS=$'\t' read -r n f s; do printf '%-16s %-64s %8s\n' "$n" "$f" "$s"; done < "$ROWS"
total=$(awk -F'\t' '{s += $3} END {printf "%.1f", s}' "$ROWS")
printf '%-16s %-64s %8s\n' total "" "$total"
"$PY" - "$WORK/results" <<'EOF'
import json, sys
from pathlib import Path
r = {p.stem: json.loads(p.read_text()) for p in Path(sys.argv[1]).glob("device-*.json")}
key = {"train": "ex_per_s", "predict": "ex_per_s", "eval": "ex_per_s", "serve": "rps"}
got = [f"{w} {r[f'device-{w}-cuda'][k] / r[f'device-{w}-cpu'][k]:.1f}x" for w, k in key.items()
       if f"device-{w}-cuda" in r and f"device-{w}-cpu" in r and r[f"device-{w}-cpu"][k]]
print("cuda/cpu: " + (", ".join(got) if got else "no pair measured (the cuda rows need a GPU)"))
EOF
exit "$FAILED"

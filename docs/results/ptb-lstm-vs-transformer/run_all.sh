#!/bin/bash
# The LSTM-Transformer comparison of issue 36, every step from the committed configs: trainings, one
# sg-reproduce pass per model (all 367 validation windows, the same targets t >= 49 for every delay and
# context, classes in context), the runs' committed parts, and sg-compare with the seeds pooled.
#
# Usage, from the repository root (data/ptb and data/pos_tagged in place):
#     bash docs/results/ptb-lstm-vs-transformer/run_all.sh [lstm | transformer | compare | all]
# Every step resumes: main.py from its last epoch checkpoint (and does nothing once trained), sg-reproduce
# from its finished steps and the gradient pass from its last window, so the same command continues a run
# that a session's end cut off. The two lanes (lstm, transformer) can run side by side on 2 cores.
#
# LSTM1: the papers' model (default seed), trained by config/ptb-norm-wsj_64e_256h_steps200.config.
# The quality-matched LSTM is the seed-2 run's epoch-8 checkpoint (config/..._seed2_epoch8.config; the
# trainer keeps its last 5 checkpoints, so copy epoch-8 aside while seed 2 trains, as README.md says).
set -euo pipefail
LSTM1=${LSTM1:-models/ptb-norm-wsj_64e_256h_steps200}
RUNS=${RUNS:-runs/cmp}
OUT=docs/results/ptb-lstm-vs-transformer
LSTM=config/ptb-norm-wsj_64e_256h_steps200
TR=config/ptb_transformer_64e_256d_2l_steps200
mkdir -p "$RUNS"

timed() {   # name, command...: the command's wall time and peak memory into $RUNS/name.time
    local name=$1; shift
    /usr/bin/time -f "%e s wall, %M KB peak memory" -o "$RUNS/$name.time" "$@"
}

reproduce() {   # name, config, model folder
    timed "$1" sg-reproduce --config "$2" --model "$3" --pos-data data/pos_tagged --same-targets --out "$RUNS/$1" \
        > "$RUNS/$1.log" 2>&1
    du -sh "$RUNS/$1" > "$RUNS/$1.disk"
}

train() {   # config
    python tf_scripts/main.py --config "$1" >> "$RUNS/train_$(basename "$1" .config).log" 2>&1
}

lane_lstm() {
    reproduce lstm1 $LSTM.config "$LSTM1"
    reproduce lstm2e8 ${LSTM}_seed2_epoch8.config models/ptb-norm-wsj_64e_256h_steps200_seed2_epoch8
    train ${LSTM}_seed2.config
    reproduce lstm2 ${LSTM}_seed2.config models/ptb-norm-wsj_64e_256h_steps200_seed2
    train ${LSTM}_seed3.config
    reproduce lstm3 ${LSTM}_seed3.config models/ptb-norm-wsj_64e_256h_steps200_seed3
}

lane_transformer() {
    reproduce tr1 $TR.config models/ptb_transformer_64e_256d_2l_steps200
    train ${TR}_seed2.config
    reproduce tr2 ${TR}_seed2.config models/ptb_transformer_64e_256d_2l_steps200_seed2
    train ${TR}_seed3.config
    reproduce tr3 ${TR}_seed3.config models/ptb_transformer_64e_256d_2l_steps200_seed3
}

compare_all() {
    for run in lstm1 lstm2 lstm3 lstm2e8 tr1 tr2 tr3; do
        python docs/results/collect_run.py "$RUNS/$run" "$OUT/runs/$run"
    done
    r="$OUT/runs"
    sg-compare "$r/lstm1,$r/lstm2,$r/lstm3" "$r/tr1,$r/tr2,$r/tr3" "$r/lstm2e8" \
        --labels LSTM,Transformer,LSTM-matched --out "$OUT" --data data/ptb \
        --models "$LSTM1,models/ptb-norm-wsj_64e_256h_steps200_seed2,models/ptb-norm-wsj_64e_256h_steps200_seed3,models/ptb_transformer_64e_256d_2l_steps200,models/ptb_transformer_64e_256d_2l_steps200_seed2,models/ptb_transformer_64e_256d_2l_steps200_seed3,models/ptb-norm-wsj_64e_256h_steps200_seed2_epoch8"
}

case "${1:-all}" in
    lstm) lane_lstm ;;
    transformer) lane_transformer ;;
    compare) compare_all ;;
    all) lane_lstm & lane_transformer & wait; compare_all ;;
    *) echo "usage: $0 [lstm | transformer | compare | all]" >&2; exit 2 ;;
esac

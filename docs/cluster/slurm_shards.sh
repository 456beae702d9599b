#!/bin/bash
# A sharded gradient pass as a Slurm job array, then the merge once every shard has finished.
#
#   sbatch --array=1-8 docs/cluster/slurm_shards.sh config/ptb-norm-wsj_64e_256h_steps200_grad_all.config
#   (prints "Submitted batch job JOBID"), then:
#   sbatch --dependency=afterok:JOBID --wrap "sg-merge-gradients gradients/grad_ptb-norm-wsj_64e_256h_steps200_all"
#
# Each array task runs one shard in its own folder GRAD_DIR/shards/i-of-N/ (N = the array size);
# a task that dies is resubmitted alone (sbatch --array=I ...) and resumes. GRAD_DIR must be on a
# file system every node sees.
#SBATCH --job-name=sg-shards
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=logs/sg-shard-%A_%a.out
set -euo pipefail
config=${1:?usage: sbatch --array=1-N slurm_shards.sh GRADIENT_CONFIG}
export TF_NUM_INTRAOP_THREADS=${SLURM_CPUS_PER_TASK:-4}
sg-main --config "$config" --notrain --notest --shard "${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT}"

#!/bin/bash
# Rendered by seis-hpc slurm render from {{source}}. Run: bash THIS_FILE [sbatch options]
# Submits {{name}}: an array job of {{parts}} image parts, then a merge job that starts only
# if every part succeeded (--dependency=afterok). Extra sbatch options (e.g. --mail-type=END)
# apply to both jobs.
set -euo pipefail
{{mkdir_logs}}
array_id=$(sbatch --parsable "$@" <<'{{eof}}'
{{array_script}}
{{eof}}
)
array_id=${array_id%%;*}
echo "submitted array job $array_id"
merge_id=$(sbatch --parsable --dependency=afterok:"$array_id" "$@" <<'{{eof}}'
{{merge_script}}
{{eof}}
)
echo "submitted merge job ${merge_id%%;*} (after $array_id)"

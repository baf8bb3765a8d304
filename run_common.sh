# Sourced by the run scripts: one training run in its own folder, resumable, with its output in <dir>/log.txt.
# Uses the caller's PYTHON, common (flags of every run) and extra (the caller's own extra arguments).

run_in_folder() {  # run_in_folder <tag> <script> <dir> <flags...>
    local tag=$1 script=$2 dir=$3; shift 3
    mkdir -p "$dir"
    echo "[$tag] $dir"
    # appended, so the log of an interrupted run survives its --resume
    OMP_NUM_THREADS=1 "$PYTHON" "$script" --run_dir "$dir" --resume "${common[@]}" "$@" ${extra[@]+"${extra[@]}"} \
        >> "$dir/log.txt" 2>&1 || { echo "[$tag] $dir failed, see $dir/log.txt" >&2; return 1; }
}

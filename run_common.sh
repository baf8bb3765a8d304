# Sourced by the run scripts (after `cd` to the repo): their shared interface and one training run in its own folder.
# Being sourced, it reads and shifts the caller's arguments: sets PYTHON, invocation (the command line as typed, for
# the summaries) and mode (quick when the first argument is --quick: the CPU-scale version, else full).
PYTHON=${PYTHON:-python3}
invocation="bash $(basename "$0")${*:+ $*}"
mode=full
if [ "${1:-}" = "--quick" ]; then mode=quick; shift; fi

# run_in_folder uses the caller's common (flags of every run) and extra (the caller's own extra arguments); the run's
# output goes to <dir>/log.txt.

run_in_folder() {  # run_in_folder <tag> <script> <dir> <flags...>
    local tag=$1 script=$2 dir=$3; shift 3
    mkdir -p "$dir"
    echo "[$tag] $dir"
    # appended, so the log of an interrupted run survives its --resume
    OMP_NUM_THREADS=1 "$PYTHON" "$script" --run_dir "$dir" --resume "${common[@]}" "$@" ${extra[@]+"${extra[@]}"} \
        >> "$dir/log.txt" 2>&1 || { echo "[$tag] $dir failed, see $dir/log.txt" >&2; return 1; }
}

device_flag() {  # device_flag <args...>: the value of the last --device X or --device=X among them, else auto
    local device=auto
    while [ $# -gt 0 ]; do
        case $1 in
            --device) device=${2:-auto}; shift ;;
            --device=*) device=${1#--device=} ;;
        esac
        shift
    done
    echo "$device"
}

# A bounded job queue: start each run in the background after `wait_for_slot N` (at most N at a time), then
# `wait_for_all`; a failed run sets failed=1 and the others go on.
failed=0

wait_for_slot() {
    while [ "$(jobs -rp | wc -l)" -ge "$1" ]; do wait -n || failed=1; done
}

wait_for_all() {
    while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
}

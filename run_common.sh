# Sourced by the run scripts (after `cd` to the repo): their shared interface and their table of runs.
# Being sourced, it reads and shifts the caller's arguments: sets PYTHON, invocation (the command line as typed, for
# the summaries) and mode (quick when the first argument is --quick: the CPU-scale version, else full).
PYTHON=${PYTHON:-python3}
invocation="bash $(basename "$0")${*:+ $*}"
mode=full
if [ "${1:-}" = "--quick" ]; then mode=quick; shift; fi

# A subset of the table (TOY_RUNS="vae dae", IMAGE_RUNS=..., SYM_SETTINGS=...): subset_from VAR reads it into
# subset and records it in the summary's command; in_subset NAME is true for a listed name, or for all without one.
subset=
subset_from() {  # subset_from <variable name>
    subset=${!1:-}
    if [ -n "$subset" ]; then invocation="$1='$subset' $invocation"; fi
}
in_subset() { [ -z "$subset" ] || [[ " $subset " == *" $1 "* ]]; }

# The caller fills a table with add_run and hands it to launch.py, which runs it: a process per run, at most
# --jobs N at a time (default the caller's parallel, or its max_jobs, e.g. from TOY_JOBS), a GPU each with
# --gpus; or Slurm job arrays (python launch.py run --help). add_run uses the caller's root (the runs' parent folder)
# and common (flags of every run); the launch passes the caller's extra (its own extra arguments): launch.py keeps its
# flags and gives the rest to every run.
table=()

add_run() {  # add_run <name> <script> <flags...>: a run in $root/<name>; {other} in a flag is run other's folder
    local name=$1 script=$2; shift 2
    table+=("$(printf '%q ' "$name" "$script" ${common[@]+"${common[@]}"} "$@")")
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

launch_table() {  # launch_table <launch.py flags...>: the table's runs, and no summary
    printf '%s\n' "${table[@]}" | "$PYTHON" launch.py run --root "$root" --kind "$mode" --command "$invocation" \
        --default_jobs "${parallel:-1}" ${max_jobs:+--jobs "$max_jobs"} "$@" ${extra[@]+"${extra[@]}"}
}

# The last step of every run script, one call: the table's runs, then (launch.py, once every run is done; none when a
# run failed) its summary merged into results/ (a subset of the runs keeps the other runs' rows) and RESULTS.md
# re-rendered: python -m evaluation.summarize <family> $root --kind $mode --command ... --device <the runs' device>.
summarize_and_render() {  # summarize_and_render <family: toy image cvae lagvae sym>
    launch_table --summarize "$1" \
        --summary_device "$(device_flag ${common[@]+"${common[@]}"} ${extra[@]+"${extra[@]}"})"
}

#!/usr/bin/env bash
# Restores, builds and runs every test project, one after another, then prints
# "N passed, N failed, N skipped" and exits non-zero when any test failed or a project did not run.
set -uo pipefail
cd "$(dirname "$0")/.."
# Debian tools the tests run: yamllint (chart checks), prometheus and promtool (observability), chromium (status page).
missing_packages=()
command -v yamllint >/dev/null || missing_packages+=(yamllint)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing_packages+=(prometheus)
command -v chromium >/dev/null || missing_packages+=(chromium)
if [ ${#missing_packages[@]} -gt 0 ]; then
    sudo_prefix=""
    if [ "$(id -u)" != 0 ]; then sudo_prefix="sudo -n"; fi
    $sudo_prefix apt-get install -y -q "${missing_packages[@]}" \
        || { $sudo_prefix apt-get update -q && $sudo_prefix apt-get install -y -q "${missing_packages[@]}"; } \
        || echo "could not install ${missing_packages[*]}; the tests that need them will fail"
fi
# helm, which Debian does not package, and the Kubernetes schemas for the chart tests. scripts/install-chart-tools.sh
# explains where they come from.
scripts/install-chart-tools.sh || echo "could not install the chart tools; the chart rendering tests will fail"

results_directory=$(mktemp -d)
trap 'rm -rf "$results_directory"' EXIT

# A process that crashes (a native fault, an abort, an unhandled exception) writes a crash report with the stack of
# each thread. vstest prints nothing of a crashed test host's native stack, so the report is the only trace of it.
export DOTNET_DbgEnableMiniDump=1 DOTNET_DbgMiniDumpType=1 DOTNET_EnableCrashReport=1

crashes="$results_directory/crashes.txt"
touch "$crashes"

# Adds the crashing thread of each crash report in $2 to $crashes, under project $1: managed frames by method,
# native ones by library and offset. They are printed at the end, next to the totals, where a CI log's tail shows them.
collect_crash_reports() {
    local report
    for report in "$2"/*.crashreport.json; do
        [ -e "$report" ] || continue
        echo "$1: crash report $(basename "$report"), crashing thread:"
        if command -v jq >/dev/null; then
            jq -r '.payload.threads[] | select(.crashed == "true") | .stack_frames[:40][]
                | "    " + (.method_name // ((.native_module // "?") + "+" + (.native_image_offset // "?")))' "$report"
        else
            head -c 4000 "$report"
            echo
        fi
    done >>"$crashes"
}

# Each project's tests run in a process session of their own. The servers and brokers that tests start get no signal
# when the test host dies, so they stay in that session, and the script stops them after the project or when it is stopped.

# Prints the id and name of every process in session $1, from /proc, one per line.
session_processes() {
    local stat line fields
    for stat in /proc/[0-9]*/stat; do
        read -r line 2>/dev/null <"$stat" || continue
        # The name is in parentheses and may contain spaces. The fields after it are state, parent, group and session.
        read -r -a fields <<<"${line##*) }"
        # A zombie (state Z) has ended and waits only for its parent to collect it.
        if [ "${fields[3]}" = "$1" ] && [ "${fields[0]}" != Z ]; then
            local name=${line#*(}
            echo "${line%% *} ${name%)*}"
        fi
    done
}

# Stops every process left in session $1: SIGTERM, then SIGKILL for any still there after 5 s. Prints what it stopped.
stop_session() {
    local leftovers
    leftovers=$(session_processes "$1")
    [ -n "$leftovers" ] || return 0
    echo "$leftovers" | sed 's/^/    /'
    kill -TERM $(cut -d' ' -f1 <<<"$leftovers") 2>/dev/null
    local second
    for second in 1 2 3 4 5; do
        [ -n "$(session_processes "$1")" ] || return 0
        sleep 1
    done
    leftovers=$(session_processes "$1")
    [ -z "$leftovers" ] || kill -KILL $(cut -d' ' -f1 <<<"$leftovers") 2>/dev/null
}

stop_current_session() {
    local session
    session=$(cat "${session_file:-/nonexistent}" 2>/dev/null)
    if [ -n "$session" ]; then
        echo "interrupted: stopping the processes of the running tests"
        stop_session "$session"
    fi
    exit 130
}
# The test sessions have no controlling terminal, so a hangup (a closed terminal or ssh connection) reaches only this
# script. It stops the running project then, as it does on INT and TERM.
trap stop_current_session HUP INT TERM

if ! dotnet build ContinualServe.sln -c Release -nologo -v quiet; then
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

passed=0
failed=0
skipped=0
broken_projects=0
for project in tests/*/*.csproj; do
    name=$(basename "$project" .csproj)
    log="$results_directory/$name.log"
    echo "== $name"
    crash_directory="$results_directory/$name-crashes"
    mkdir -p "$crash_directory"
    export DOTNET_DbgMiniDumpName="$crash_directory/%e.%p"
    session_file="$results_directory/$name.session"
    : >"$log"
    # setsid makes the shell the leader of a new session, so the session id is its process id, which it writes down
    # before it becomes dotnet test. Build servers are off, because they would outlive the run in the session.
    setsid --wait bash -c 'echo $$ >"$0" && exec "$@"' "$session_file" \
        dotnet test "$project" -c Release --no-build -nologo --disable-build-servers --blame-hang-timeout 5m >"$log" 2>&1 &
    test_pid=$!
    tail -n +1 -f --pid="$test_pid" "$log" &
    tail_pid=$!
    wait "$test_pid"
    status=$?
    wait "$tail_pid"
    session=$(cat "$session_file" 2>/dev/null)
    if [ -n "$session" ] && [ -n "$(session_processes "$session")" ]; then
        echo "$name: stopped these processes, which its tests left running:" >>"$crashes"
        stop_session "$session" >>"$crashes"
    fi
    collect_crash_reports "$name" "$crash_directory"
    if grep -q "Test host process crashed" "$log" && ! compgen -G "$crash_directory/*.crashreport.json" >/dev/null; then
        echo "$name: the test host ended without a crash report, as a process killed by a signal such as SIGKILL does" >>"$crashes"
    fi
    # vstest ends each project with: "Passed!  - Failed: 0, Passed: 33, Skipped: 0, Total: 33, ..."
    summary=$(grep -E '(Passed|Failed)! +- Failed: +[0-9]+, Passed: +[0-9]+, Skipped: +[0-9]+' "$log" | tail -1)
    if [ -z "$summary" ]; then
        echo "$name: no test summary (exit code $status)"
        broken_projects=$((broken_projects + 1))
        continue
    fi
    project_failed=$(sed -E 's/.*Failed: +([0-9]+).*/\1/' <<<"$summary")
    project_passed=$(sed -E 's/.*Passed: +([0-9]+),.*/\1/' <<<"$summary")
    project_skipped=$(sed -E 's/.*Skipped: +([0-9]+).*/\1/' <<<"$summary")
    passed=$((passed + project_passed))
    failed=$((failed + project_failed))
    skipped=$((skipped + project_skipped))
    if [ "$status" != 0 ] && [ "$project_failed" = 0 ]; then
        echo "$name: dotnet test exited with $status"
        broken_projects=$((broken_projects + 1))
    fi
done

failed=$((failed + broken_projects))
cat "$crashes"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

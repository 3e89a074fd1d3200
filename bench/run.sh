#!/usr/bin/env bash
# rappel's benchmarks. Prints its figures; nothing here is a pass/fail test.
#
#   bench/run.sh            everything, then one summary table of every figure
#   bench/run.sh idle|scan|send|reports|reminders|sessions|attendance|attendance_mapped|dashboard|
#                           postgres|postgres_send (PostgreSQL: all its figures, or its send rate alone)
#                           one section, then the table of its figures
#   bench/run.sh summary    re-print the table of the last run (no build, no run)
#
# Needs: hyperfine, GNU time (/usr/bin/time), sqlite3, and postfix's smtp-sink
# and smtp-source; curl for the WhatsApp baseline
#   apt-get install hyperfine time sqlite3 postfix curl   (postfix: "No configuration")
# The binary is built into ${CARGO_TARGET_DIR:-target}/release/rappel; scratch
# files go to ${BENCH_DIR:-/tmp/rappel-bench}.
#
# 1. idle: a run with nothing due on a `demo --scale 100000` database (target <= 20 ms)
# 2. scan: check-delay-alerts on `demo --scale 1000000` (targets <= 2 s, <= 64 MB),
#    beside the time the sqlite3 CLI takes for the bare due query; then the
#    same an hour later, every due entry's alerts read again (same targets)
# 3. send: 10,000 digests (10,000 alert recipients) delivered to smtp-sink on
#    127.0.0.1 with each message's state committed (target >= 3,000 messages/s
#    and >= 60 % of smtp-source), over 4 and over 8 connections, the median
#    of three rounds of each side
#    (CONNECTIONS="8" for one of them),
#    then postfix's smtp-source sending 10,000 copies of one of those digests
#    (saved through the file transport) into the same smtp-sink over as many
#    sessions as rappel has connections: the sink's own limit, the baseline
# 4. reports: 1,000 due reports x 3 recipients with a 200 KB PDF each to
#    smtp-sink (messages/s, peak memory), beside smtp-source sending 3,000
#    copies of one of those messages into the same sink; and one 20 MB PDF to
#    10 recipients (target < 100 MB peak)
# 5. reminders: planning send-reminders over 100,000 loans with 10 % due
#    (time, peak memory), and 10,000 WhatsApp messages (planned first, then
#    timed: `deliver` alone) to a local HTTP server standing in for Twilio
#    (bench/fake_twilio.py): messages/s (target >= 75 % of curl), beside one curl
#    process posting 10,000 such messages over 4 keep-alive connections (as
#    many as rappel's workers) to the same server: the server's own limit
# 6. sessions: 50,000 students with 4 revision sessions a week (10 weeks, 2M
#    sessions): planning time and peak memory of send-reminders (target <= 1 s,
#    <= 64 MB) on a weekday evening (session_eve for the next day's sessions),
#    on Sunday 20:00 (every student's weekly digest as well: <= 2 s), and a run right
#    after with everything already planned; then 3,000 manual reminders of
#    300 KB each, planned (peak memory < 256 MB). Planning only: the email
#    transport's password cannot be had, so the run ends with exit 78 once it
#    has planned, sending nothing.
# 7. attendance: sync-attendance pushing 100,000 pending punches in batches of
#    100 to a local HTTP server standing in for the HR API (bench/fake_hr.py):
#    wall time (target <= 5 s) and peak memory, beside the same run over
#    10,000 punches (flat memory: the peaks should match), then a run with
#    nothing due over the 110,000 sent punches
# 8. attendance_mapped: the same on a Django time-clock server's own tables
#    (devices_terminal, devices_attendancelog), mapped as examples/django.toml
#    maps them, the model's sync columns kept up to date: 100,000 pending
#    punches pushed (target <= 5 s, as on rappel's own table); then a run with
#    nothing due over 1,000,000 punches all sent (those 100,000, and 900,000
#    the host's own job had sent: target <= 0.3 s); then the same 1,000,000
#    with sync_status not kept in the host's table (every punch is looked up
#    in rappel_punch_state, as rappel leaves it after sending them)
# 9. postgres: the same on a PostgreSQL server, each figure beside SQLite's
#    measured in the same section: a no-op run (demo --scale 100000; target
#    within 2x SQLite's), the 1M-ticket scan (a whole run: within 1.5x of
#    psql running the bare due query; and the scan alone, --dry-run, beside
#    it), 10,000 digests to smtp-sink over 8 connections (at
#    least 80 % of SQLite's rate) and 100,000 punches pushed (<= 5 s). The
#    server: RAPPEL_BENCH_POSTGRES (postgres://user@127.0.0.1:port/db, the
#    password in PGPASSWORD), else RAPPEL_TEST_POSTGRES and its password as
#    the tests take them, else a throwaway cluster started as .ci/run starts
#    CI's (root, Debian's postgresql). Not part of `all`.
#
# 10. dashboard: `rappel dashboard` over 100,000 deliveries spread over 30 days
#    (every status, channel and kind; 2,000 job runs; 20,000 punches):
#    time and peak memory of the page (target < 1 s) and its size (< 1 MB);
#    `rappel metrics` over the same (what each run adds under
#    [monitoring] textfile_dir); and, when Chromium is installed
#    (apt-get install chromium), a PNG of the page rendered headless at a
#    desktop width and at a phone's ($WORK/dashboard/*.png).
#
# Summary table: each section prints what it measures as it goes and appends
# one row per figure to $BENCH_DIR/figures.tsv (emptied when a run starts);
# the run ends with the table of those rows:
#   figure | value | peak mem | target | vs target | vs baseline
# Peak memory is GNU time's maximum RSS of the rappel process (one extra run
# under /usr/bin/time where hyperfine gives the time). "vs target" is how far
# under (or OVER) a ceiling, or the multiple of a floor ("BELOW" when short).
# "vs baseline": scan time / the sqlite3 CLI's bare due query; send and reports
# rates as a share of smtp-source's rate into the same sink; WhatsApp rate as
# a share of curl's rate into the same server; attendance 100k time and peak
# over the 10k run's (time should scale ~10x, memory stay ~1.0x).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
NOW=2026-11-21T07:00:00Z
WORK="${BENCH_DIR:-/tmp/rappel-bench}"
mkdir -p "$WORK"
FIGURES="$WORK/figures.tsv"   # figure, value, peak KB, target, vs target, vs baseline
TIMES="$WORK/time.out"        # GNU time's "wall peak" for the last timed command

# Prints the figures file as one aligned table.
summary() {
    [ -s "$FIGURES" ] || { echo "no figures in $FIGURES (run $0 first)"; return 0; }
    echo
    echo "== summary ($FIGURES)"
    awk -F '\t' '
        function mb(kb) { return kb ~ /^[0-9]+$/ ? sprintf("%.1f MB", kb / 1024) : "-" }
        BEGIN { n = 1; split("figure|value|peak mem|target|vs target|vs baseline", cell, "|")
                for (j = 1; j <= 6; j++) { t[1, j] = cell[j]; w[j] = length(cell[j]) } }
        NF >= 6 { n++
                  for (j = 1; j <= 6; j++) t[n, j] = (j == 3 ? mb($3) : ($j == "" ? "-" : $j))
                  for (j = 1; j <= 6; j++) if (length(t[n, j]) > w[j]) w[j] = length(t[n, j]) }
        END { for (i = 1; i <= n; i++) {
                  line = "|"
                  for (j = 1; j <= 6; j++) line = line sprintf(" %-" w[j] "s |", t[i, j])
                  print line
                  if (i == 1) { line = "|"; for (j = 1; j <= 6; j++) { d = ""; for (k = 0; k < w[j] + 2; k++) d = d "-"; line = line d "|" } print line }
              } }' "$FIGURES"
}

case "$what" in
    summary) summary; exit 0 ;;
    all|idle|scan|send|reports|reminders|sessions|attendance|attendance_mapped|postgres|postgres_send|dashboard) ;;
    *) echo "usage: $0 [idle|scan|send|reports|reminders|sessions|attendance|attendance_mapped|postgres|postgres_send|dashboard|summary]"; exit 64 ;;
esac

cargo build --release --quiet
B="${CARGO_TARGET_DIR:-$PWD/target}/release/rappel"
for tool in hyperfine sqlite3 /usr/bin/time python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see the header of $0)"; exit 1; }
done
: > "$FIGURES"

# Runs a command under GNU time, its wall time and peak RSS going to $TIMES
# (not into the command's output); the command's exit status is kept.
timed() { /usr/bin/time -f "%e %M" -o "$TIMES" "$@"; }
# Sets WALL (s) and PEAK (KB) from the last `timed` (GNU time writes a
# "Command exited with non-zero status" line first when the command failed).
read_times() { read -r WALL PEAK < <(tail -n 1 "$TIMES"); }
# Appends a row to the figures file: figure, value, peak KB, target, vs target, vs baseline.
row() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "${3:--}" "${4:--}" "${5:--}" "${6:--}" >> "$FIGURES"; }
# The median of the numbers given.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Floating point in one place: `calc 'expr'` prints awk's value of expr.
calc() { awk "BEGIN { print $1 }"; }
# Against a ceiling: "4.2x under" or "1.05x OVER" (two decimals below 2x).
under() {
    awk -v v="$1" -v l="$2" 'function x(r) { return sprintf(r < 2 ? "%.2fx" : "%.1fx", r) }
        BEGIN { if (v <= 0) print "n/a"; else if (v <= l) print x(l / v) " under"; else print x(v / l) " OVER" }'
}
# Against a floor: "1.4x target" or "0.71x target, BELOW".
above() {
    awk -v v="$1" -v t="$2" 'BEGIN { if (v >= t) printf "%.1fx target\n", v / t; else printf "%.2fx target, BELOW\n", v / t }'
}
# A rate as a share of a baseline rate: "62% of smtp-source (4800/s)".
share() {
    awk -v v="$1" -v b="$2" -v name="$3" 'BEGIN { if (b <= 0) print "n/a"; else printf "%.0f%% of %s (%.0f/s)\n", 100 * v / b, name, b }'
}
# A share of a baseline against a floor: "64% >= 60%" or "22% BELOW 60%".
share_floor() {
    awk -v v="$1" -v b="$2" -v f="$3" 'BEGIN { if (b <= 0) print "n/a"; else { p = 100 * v / b; printf "%.0f%% %s %d%%\n", p, (p >= f ? ">=" : "BELOW"), f } }'
}
# Seconds between two `date +%s.%N` stamps.
elapsed() { calc "$2 - $1"; }
# Mean and standard deviation (ms) of the first command in a hyperfine JSON export.
hyperfine_ms() {
    python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["results"][0]; print("%.1f %.1f" % (r["mean"] * 1000, r["stddev"] * 1000))' "$1"
}

# A run with nothing to do, as one figure: hyperfine over $3 runs of rappel
# with the arguments after the fourth (mean and deviation, its JSON export
# in $WORK/$2.json), one more run under GNU time for the peak, then a row
# named $1 with the ceiling $4 ms ("-" for none).
noop_figure() {
    local figure="$1" json="$WORK/$2.json" runs="$3" ceiling="$4"
    shift 4
    hyperfine -N --warmup 3 --runs "$runs" --export-json "$json" "$B $*" 2>/dev/null | grep -E "Time|Range"
    timed "$B" "$@" >/dev/null 2>&1
    read_times
    echo "one run under GNU time: wall $WALL s, peak RSS $PEAK KB"
    local mean sd
    read -r mean sd < <(hyperfine_ms "$json")
    if [ "$ceiling" = - ]; then
        row "$figure" "$mean +- $sd ms" "$PEAK"
    else
        row "$figure" "$mean +- $sd ms" "$PEAK" "<= $ceiling ms" "$(under "$mean" "$ceiling")"
    fi
}

idle() {
    echo "== idle: nothing due, demo --scale 100000"
    rm -rf "$WORK/s100k"
    "$B" --now "$NOW" demo --dir "$WORK/s100k" --scale 100000 --no-run >/dev/null
    "$B" --config "$WORK/s100k/rappel.toml" --now "$NOW" -q check-delay-alerts   # alerts what is due
    hyperfine -N --warmup 5 --runs 50 --export-json "$WORK/idle.json" \
        "$B --config $WORK/s100k/rappel.toml --now $NOW check-delay-alerts" 2>&1 | grep -E "Time|Range"
    timed "$B" --config "$WORK/s100k/rappel.toml" --now "$NOW" check-delay-alerts
    read_times
    echo "one run under GNU time: wall $WALL s, peak RSS $PEAK KB"
    local mean sd
    read -r mean sd < <(hyperfine_ms "$WORK/idle.json")
    row "idle: no-op run (demo 100k)" "$mean +- $sd ms" "$PEAK" "<= 20 ms" "$(under "$mean" 20)"
}

scan() {
    echo "== scan: check-delay-alerts, demo --scale 1000000"
    if [ ! -f "$WORK/s1m.db" ]; then
        rm -rf "$WORK/s1m"
        "$B" --now "$NOW" demo --dir "$WORK/s1m" --scale 1000000 --no-run >/dev/null
        cp "$WORK/s1m/rappel.db" "$WORK/s1m.db"
    fi
    rm -rf "$WORK/s1m/outbox/email"/* "$WORK/s1m/rappel.db-wal" "$WORK/s1m/rappel.db-shm"
    cp "$WORK/s1m.db" "$WORK/s1m/rappel.db"
    echo "tickets: $(sqlite3 "$WORK/s1m/rappel.db" 'SELECT count(*) FROM tickets'), active: $(sqlite3 "$WORK/s1m/rappel.db" 'SELECT count(*) FROM tickets WHERE closed_at IS NULL'), events: $(sqlite3 "$WORK/s1m/rappel.db" 'SELECT count(*) FROM ticket_events')"
    timed "$B" --config "$WORK/s1m/rappel.toml" --now "$NOW" check-delay-alerts
    read_times
    local wall=$WALL peak=$PEAK
    echo "rappel check-delay-alerts: wall $wall s, peak RSS $peak KB"
    echo "sqlite3 CLI, bare due query (current stage per active ticket past its threshold):"
    timed sqlite3 "$WORK/s1m/rappel.db" <<SQL | tee "$WORK/scan-sqlite3.out"
.timer on
SELECT count(*) AS due FROM (
  SELECT e.stage, e.entered_at,
         row_number() OVER (PARTITION BY t.id ORDER BY unixepoch(e.entered_at) DESC, e.id DESC) AS rn
  FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id
  WHERE t.closed_at IS NULL
) WHERE rn = 1
  AND unixepoch('$NOW') - unixepoch(entered_at) > 86400 * (CASE stage WHEN 'Attente pièce' THEN 21 ELSE 14 END);
SQL
    read_times
    # The query's own time (.timer), else the whole sqlite3 process's.
    local query
    query=$(awk '/^Run Time: real/ { t = $4 } END { print t }' "$WORK/scan-sqlite3.out")
    query=${query:-$WALL}
    echo "sqlite3 process: wall $WALL s, peak RSS $PEAK KB"
    row "scan: check-delay-alerts (1M tickets)" "$wall s" "$peak" "<= 2 s, <= 64 MB" \
        "time $(under "$wall" 2); mem $(under "$peak" 65536)" \
        "$(awk -v r="$wall" -v q="$query" 'BEGIN { if (q > 0) printf "%.1fx the sqlite3 query\n", r / q; else print "n/a" }')"
    row "scan baseline: sqlite3 CLI bare due query" "$query s" "$PEAK" "-" "-" "(baseline)"
    # An hour later: nothing new is due, and each due entry's alerts (a
    # digest of 26,000 entries, some megabytes) are read again.
    timed "$B" --config "$WORK/s1m/rappel.toml" --now "$(date -u -d "$NOW + 1 hour" +%Y-%m-%dT%H:%M:%SZ)" check-delay-alerts
    read_times
    echo "rappel check-delay-alerts, an hour later: wall $WALL s, peak RSS $PEAK KB"
    row "scan: an hour later, 26k entries alerted (1M tickets)" "$WALL s" "$PEAK" "<= 2 s, <= 64 MB" \
        "time $(under "$WALL" 2); mem $(under "$PEAK" 65536)"
}

start_sink() {
    local as_root=(); [ "$(id -u)" = 0 ] && as_root=(-u postfix)
    smtp-sink "${as_root[@]}" 127.0.0.1:2525 1000 &
    SINK=$!
    sleep 0.3
}

send() {
    local n
    for n in ${CONNECTIONS:-4 8}; do send_with "$n"; done
}

# The send section over $1 connections.
send_with() {
    local conns="$1"
    echo "== send: 10,000 emails to smtp-sink with connections = $conns"
    command -v smtp-sink >/dev/null || { echo "missing smtp-sink (apt-get install postfix)"; exit 1; }
    local dir="$WORK/send"
    rm -rf "$dir" && mkdir -p "$dir"
    # Planning's config: an email transport whose password cannot be had, so
    # the job plans its digests and they wait as pending rows (exit 78).
    cat > "$dir/plan.toml" <<TOML
database = "rappel.db"
[email]
from = "Bench <bench@example.com>"
[email.smtp]
host = "127.0.0.1"
username = "bench"
password_env = "RAPPEL_BENCH_NO_SUCH_PASSWORD"
[delay_alerts]
threshold_days = 14
TOML
    cat > "$dir/rappel.toml" <<TOML
database = "rappel.db"
[email]
from = "Bench <bench@example.com>"
[email.smtp]
host = "127.0.0.1"
port = 2525
security = "none"
connections = $conns
TOML
    "$B" --config "$dir/plan.toml" db migrate >/dev/null
    sqlite3 "$dir/rappel.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
INSERT INTO contacts (id, name, email) SELECT i, 'Staff ' || i, 'staff' || i || '@example.com' FROM n;
INSERT INTO alert_recipients (contact_id) SELECT id FROM contacts;
INSERT INTO tickets (id, reference, device, customer, created_at) VALUES (1, 'T-1', 'Phone', 'Customer', '2026-10-01T00:00:00Z');
INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-10-01T00:00:00Z');
SQL
    # Plan without a usable transport: the 10,000 digests wait as pending rows.
    "$B" --config "$dir/plan.toml" --now "$NOW" -q check-delay-alerts || true
    # One of those digests, as rappel formats it, for smtp-source to send.
    local message
    message=$(sample_message "$dir" deliver \
        "DELETE FROM rappel_deliveries WHERE status = 'pending' AND id > (SELECT min(id) FROM rappel_deliveries WHERE status = 'pending')")
    start_sink
    trap "kill $SINK 2>/dev/null || true; trap - RETURN" RETURN
    # Three rounds, each rappel's delivery of the same 10,000 planned rows
    # then smtp-source's: a single pair's ratio varied by ten points from
    # one run to the next on this machine, so each side's median is taken.
    sqlite3 "$dir/rappel.db" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
    cp "$dir/rappel.db" "$dir/planned.db"
    local round start end rates=() bases=() peak=0
    for round in 1 2 3; do
        cp "$dir/planned.db" "$dir/rappel.db"
        rm -f "$dir/rappel.db-wal" "$dir/rappel.db-shm"
        start=$(date +%s.%N)
        timed "$B" --config "$dir/rappel.toml" --now "$NOW" deliver
        end=$(date +%s.%N)
        read_times
        echo "round $round: sent $(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM rappel_deliveries WHERE status = 'sent'") of 10000"
        python3 -c "import sys; s, e = float(sys.argv[1]), float(sys.argv[2]); print(f'wall {e - s:.2f} s: {10000 / (e - s):.0f} messages/s')" "$start" "$end"
        echo "peak RSS $PEAK KB"
        [ "$PEAK" -gt "$peak" ] && peak=$PEAK
        rates+=("$(calc "10000 / $(elapsed "$start" "$end")")")
        bases+=("$(sink_limit "$message" "$conns" 10000)")
    done
    local rate base
    rate=$(median "${rates[@]}")
    base=$(median "${bases[@]}")
    echo "medians: rappel $(printf '%.0f' "$rate") msg/s, smtp-source $(printf '%.0f' "$base") msg/s"
    row "send: 10k digests to smtp-sink ($conns conn.)" "$(printf '%.0f msg/s' "$rate")" "$peak" \
        ">= 3000 msg/s, >= 60% of smtp-source" "$(above "$rate" 3000); $(share_floor "$rate" "$base" 60)" "$(share "$rate" "$base" smtp-source)"
    row "send baseline: smtp-source, same sink" "$(printf '%.0f msg/s' "$base")" "-" "-" "-" "(sink's limit)"
}

# Saves one message as rappel formats it: a copy of $1/rappel.db trimmed by
# the SQL in $3, run through the file transport with `rappel $2`. Prints the
# message's path, with LF line ends (smtp-source -F adds the CRs back).
sample_message() {
    local dir="$1" job="$2" trim="$3" sample="$1/sample"
    rm -rf "$sample" "$dir/sample.toml" && mkdir -p "$sample"
    sqlite3 "$dir/rappel.db" ".backup '$sample/rappel.db'"
    sqlite3 "$sample/rappel.db" "$trim"
    # rappel.toml's [email] with the file transport; [reports] (last) as is.
    { printf 'database = "sample/rappel.db"\n[email]\nfrom = "Bench <bench@example.com>"\n'
      printf 'transport = "file"\noutbox_dir = "sample/outbox"\n'
      sed -n '/^\[reports\]/,$p' "$dir/rappel.toml"; } > "$dir/sample.toml"
    "$B" --config "$dir/sample.toml" --now "$NOW" -q "$job" >/dev/null || return 1
    local eml
    eml=$(find "$sample/outbox" -type f | head -n 1)
    [ -n "$eml" ] || { echo "no message in $sample/outbox" >&2; return 1; }
    tr -d '\r' < "$eml" > "$sample/message.txt"
    echo "one message as rappel sends it: $(wc -c < "$eml") bytes" >&2
    echo "$sample/message.txt"
}

# The sink's own limit: smtp-source sending $3 copies of the message in $1
# over $2 parallel sessions that stay open (-d) to the running smtp-sink.
# Prints messages/s.
sink_limit() {
    local start end
    start=$(date +%s.%N)
    smtp-source -d -s "$2" -m "$3" -f bench@example.com -t staff@example.com -F "$1" 127.0.0.1:2525 || return 1
    end=$(date +%s.%N)
    local rate
    rate=$(calc "$3 / $(elapsed "$start" "$end")")
    printf 'smtp-source, %s messages over %s sessions to the same sink: wall %.2f s: %.0f messages/s\n' \
        "$3" "$2" "$(elapsed "$start" "$end")" "$rate" >&2
    echo "$rate"
}


reports() {
    command -v smtp-sink >/dev/null || { echo "missing smtp-sink (apt-get install postfix)"; exit 1; }
    local dir="$WORK/reports"
    rm -rf "$dir" && mkdir -p "$dir/reports"
    cat > "$dir/rappel.toml" <<TOML
database = "rappel.db"
[email]
from = "Bench <bench@example.com>"
[email.smtp]
host = "127.0.0.1"
port = 2525
security = "none"
connections = ${CONNECTIONS:-4}
[reports]
attachments_dir = "reports"
TOML
    "$B" --config "$dir/rappel.toml" db migrate >/dev/null
    head -c 204800 /dev/urandom > "$dir/reports/r200k.pdf"
    head -c 20971520 /dev/urandom > "$dir/reports/r20m.pdf"
    sqlite3 "$dir/rappel.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
INSERT INTO scheduled_reports (title, recipients, scheduled_at, attachment_path)
SELECT 'Report ' || i, 'a' || i || '@example.com, b' || i || '@example.com, c' || i || '@example.com',
       '2026-11-21T06:00:00Z', 'r200k.pdf' FROM n;
SQL
    echo "== reports: 1,000 reports x 3 recipients, 200 KB PDF, connections = ${CONNECTIONS:-4}"
    local message
    message=$(sample_message "$dir" send-reports \
        "DELETE FROM scheduled_reports WHERE id > (SELECT min(id) FROM scheduled_reports)")
    start_sink
    trap "kill $SINK 2>/dev/null || true; trap - RETURN" RETURN
    local start end
    start=$(date +%s.%N)
    timed "$B" --config "$dir/rappel.toml" --now "$NOW" send-reports
    end=$(date +%s.%N)
    read_times
    echo "peak RSS $PEAK KB"
    echo "sent: $(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM rappel_deliveries WHERE status = 'sent'") of 3000"
    python3 -c "import sys; s, e = float(sys.argv[1]), float(sys.argv[2]); print(f'wall {e - s:.2f} s: {3000 / (e - s):.0f} messages/s')" "$start" "$end"
    local rate peak=$PEAK base
    rate=$(calc "3000 / $(elapsed "$start" "$end")")
    base=$(sink_limit "$message" "${CONNECTIONS:-4}" 3000)
    row "reports: 3k mails, 200 KB PDF (${CONNECTIONS:-4} conn.)" "$(printf '%.0f msg/s' "$rate")" "$peak" \
        "-" "-" "$(share "$rate" "$base" smtp-source)"
    row "reports baseline: smtp-source, same sink" "$(printf '%.0f msg/s' "$base")" "-" "-" "-" "(sink's limit)"

    echo "== reports: one 20 MB PDF to 10 recipients"
    sqlite3 "$dir/rappel.db" "INSERT INTO scheduled_reports (title, recipients, scheduled_at, attachment_path)
        VALUES ('Big', 'r1@example.com,r2@example.com,r3@example.com,r4@example.com,r5@example.com,r6@example.com,r7@example.com,r8@example.com,r9@example.com,r10@example.com', '2026-11-21T06:00:00Z', 'r20m.pdf')"
    timed "$B" --config "$dir/rappel.toml" --now "$NOW" send-reports
    read_times
    echo "wall $WALL s, peak RSS $PEAK KB"
    echo "sent: $(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM rappel_deliveries WHERE status = 'sent' AND recipient LIKE 'r%'") of 10"
    row "reports: one 20 MB PDF to 10 recipients" "$WALL s" "$PEAK" "< 100 MB peak" "mem $(under "$PEAK" 102400)"
}

reminders() {
    local dir="$WORK/reminders"
    rm -rf "$dir" && mkdir -p "$dir"
    echo "x" > "$dir/token"
    cat > "$dir/rappel.toml" <<TOML
database = "rappel.db"
timezone = "Africa/Libreville"
[whatsapp]
account_sid = "ACbench"
auth_token_file = "token"
from = "whatsapp:+14155238886"
api_base = "http://127.0.0.1:2526"
TOML
    # Planning only: no [email], WhatsApp off; 100,000 loans, one in ten due for a reminder.
    "$B" --config "$dir/rappel.toml" db migrate >/dev/null
    sqlite3 "$dir/rappel.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO contacts (id, name, email, email_enabled) SELECT i, 'P' || i, 'p' || i || '@example.com', 1 FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO loans (contact_id, item, term, lent_at, due_at)
SELECT i, 'Item ' || i, 'long', '2026-10-01T08:00:00Z',
       CASE WHEN i % 10 = 0 THEN '2026-11-22T17:00:00Z' ELSE '2026-12-20T17:00:00Z' END FROM n;
SQL
    echo "== reminders: planning over 100,000 loans, 10 % due"
    timed "$B" --config "$dir/rappel.toml" --now "$NOW" send-reminders --dry-run | tail -1
    read_times
    echo "wall $WALL s, peak RSS $PEAK KB"
    row "reminders: planning, 100k loans, 10% due" "$WALL s" "$PEAK"

    echo "== reminders: 10,000 WhatsApp messages to a local HTTP server"
    sqlite3 "$dir/rappel.db" "UPDATE contacts SET email_enabled = 0, whatsapp_enabled = 1, phone = '+241' || printf('%08d', id) WHERE id % 10 = 0"
    # Planned first, with a token file that is not there (the messages wait,
    # exit 78): the rate below is delivery's alone, as curl's is.
    sed 's/^auth_token_file = .*/auth_token_file = "no-such-token"/' "$dir/rappel.toml" > "$dir/plan.toml"
    "$B" --config "$dir/plan.toml" --now "$NOW" -q send-reminders || true
    python3 "$(dirname "$0")/fake_twilio.py" 2526 &
    local server=$!
    trap "kill $server 2>/dev/null || true; trap - RETURN" RETURN
    sleep 0.5
    local start end
    start=$(date +%s.%N)
    timed "$B" --config "$dir/rappel.toml" --now "$NOW" deliver | tail -1
    end=$(date +%s.%N)
    read_times
    local sent
    sent=$(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM rappel_deliveries WHERE status = 'sent' AND channel = 'whatsapp'")
    echo "sent: $sent"
    python3 -c "import sys; s, e, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]); print(f'wall {e - s:.2f} s: {n / (e - s):.0f} messages/s')" "$start" "$end" "$sent"
    echo "peak RSS $PEAK KB"
    local rate peak=$PEAK
    rate=$(calc "$sent / $(elapsed "$start" "$end")")
    # The server's own limit: one curl process (C, keep-alive) posting as many
    # messages like the last one sent over 4 connections, rappel's workers.
    local base="" vs="-"
    if command -v curl >/dev/null && [ "$sent" -gt 0 ]; then
        sqlite3 "$dir/rappel.db" "SELECT body FROM rappel_deliveries WHERE status = 'sent' AND channel = 'whatsapp' ORDER BY id DESC LIMIT 1" \
            > "$dir/wa-body.txt"
        { printf 'user = "ACbench:x"\ndata = "To=whatsapp%%3A%%2B24100000010&From=whatsapp%%3A%%2B14155238886"\n'
          printf 'data-urlencode = "Body@%s"\n' "$dir/wa-body.txt"
          local i
          for ((i = 0; i < sent; i++)); do
              printf 'url = "http://127.0.0.1:2526/2010-04-01/Accounts/ACbench/Messages.json"\noutput = "/dev/null"\n'
          done; } > "$dir/curl.cfg"
        start=$(date +%s.%N)
        curl --no-progress-meter --parallel --parallel-max 4 --config "$dir/curl.cfg" || return 1
        end=$(date +%s.%N)
        base=$(calc "$sent / $(elapsed "$start" "$end")")
        printf 'curl, %s posts over 4 keep-alive connections to the same server: wall %.2f s: %.0f messages/s\n' \
            "$sent" "$(elapsed "$start" "$end")" "$base"
        vs=$(share "$rate" "$base" curl)
    fi
    row "reminders: 10k WhatsApp to local HTTP (4 workers)" "$(printf '%.0f msg/s' "$rate")" "$peak" ">= 75% of curl" \
        "$([ -n "$base" ] && share_floor "$rate" "$base" 75 || echo -)" "$vs"
    [ -z "$base" ] || row "WhatsApp baseline: curl, same server" "$(printf '%.0f msg/s' "$base")" "-" "-" "-" "(server's limit)"
}

sessions() {
    local dir="$WORK/sessions"
    rm -rf "$dir" && mkdir -p "$dir"
    # An email transport whose password is not to be had: the job plans, and
    # its messages wait (exit 78) without a send, so planning alone is timed.
    printf 'database = "rappel.db"\ntimezone = "Europe/Paris"\nsite_url = "https://tutor.example.com"\n[email]\nfrom = "bench@example.com"\n[email.smtp]\nhost = "127.0.0.1"\nusername = "bench"\npassword_env = "RAPPEL_BENCH_NO_SUCH_PASSWORD"\n' > "$dir/rappel.toml"
    "$B" --config "$dir/rappel.toml" db migrate >/dev/null
    # Weeks -8..+1 around Monday 23 November 2026; session k of student i on
    # day (i + 2k) % 7 at 14:00 + i % 6 (Paris); past sessions 70 % completed;
    # one student in ten last seen five days ago.
    sqlite3 "$dir/rappel.db" <<SQL
PRAGMA journal_mode = WAL;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
INSERT INTO contacts (id, name, email, locale) SELECT i, 'Student ' || i, 's' || i || '@example.com',
       CASE WHEN i % 2 = 0 THEN 'fr' ELSE 'en' END FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
INSERT INTO students (id, contact_id, subscribed_at, last_active_at) SELECT i, i, '2026-09-01 08:00:00',
       CASE WHEN i % 10 = 0 THEN '2026-11-17T12:00:00Z' ELSE '2026-11-22T12:00:00Z' END FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000),
     w(w) AS (SELECT -8 UNION ALL SELECT w + 1 FROM w WHERE w < 1),
     k(k) AS (VALUES (0), (1), (2), (3))
INSERT INTO revision_sessions (student_id, subject, starts_at, objective, link, completed_at)
SELECT i, 'Subject ' || k, t, 'Objective ' || k, 'sessions/' || i || '/' || w || '/' || k,
       CASE WHEN w < 0 AND (i + k) % 10 < 7 THEN t END
FROM (SELECT i, w, k, strftime('%Y-%m-%dT%H:%M:%SZ', '2026-11-23T00:00:00Z',
             (w * 7 + (i + 2 * k) % 7) || ' days', (13 + i % 6) || ' hours') AS t FROM n, w, k);
SQL
    echo "sessions: $(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM revision_sessions")"
    # As if cron had run five minutes earlier (else a first run looks back a week).
    sqlite3 "$dir/rappel.db" "INSERT INTO rappel_job_runs (job, started_at, finished_at)
        VALUES ('send-reminders', '2026-11-21T17:30:00Z', '2026-11-21T17:30:01Z')"
    local run
    run() {
        echo "== sessions: $1"
        # Exits 78 once planned (no usable transport): the status is not the point.
        timed "$B" --config "$dir/rappel.toml" --now "$2" -v send-reminders 2>&1 \
            | grep -E "planned .* in" || true
        read_times
        echo "wall $WALL s, peak RSS $PEAK KB"
        row "sessions: $3" "$WALL s" "$PEAK" "<= $4 s, <= 64 MB" "time $(under "$WALL" "$4"); mem $(under "$PEAK" 65536)"
    }
    # Sunday 20:00 plans every student's weekly digest at once: its target
    # is 2 s (issue 18); the others' 1 s.
    run "Saturday 18:35, eve reminders for Sunday's sessions" 2026-11-21T17:35:00Z "Sat 18:35, eve reminders" 1
    run "Sunday 20:00, weekly digests and eve reminders for Monday" 2026-11-22T19:00:00Z "Sun 20:00, digests + eve" 2
    run "Sunday 20:05, everything already planned" 2026-11-22T19:05:00Z "Sun 20:05, all planned" 1
    echo "planned: $(sqlite3 "$dir/rappel.db" "SELECT kind || ' ' || count(*) FROM rappel_deliveries GROUP BY kind" | tr '\n' ' ')"

    # Long texts: 3,000 manual reminders of 300 KB each (a manual message's
    # text has no limit), planned with the same weekly digests and
    # inactivity reminders on Sunday 20:00: what planning holds at once is
    # bounded by bytes, not only by messages (target < 256 MB).
    echo "== sessions: 3,000 manual reminders of 300 KB, planned"
    local long="$WORK/long"
    rm -rf "$long" && mkdir -p "$long" && cp "$dir/rappel.toml" "$long/"
    "$B" --config "$long/rappel.toml" db migrate >/dev/null
    sqlite3 "$long/rappel.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
INSERT INTO contacts (id, name, email) SELECT i, 'P ' || i, 'p' || i || '@example.com' FROM n;
INSERT INTO students (id, contact_id, subscribed_at) SELECT id, id, '2026-01-01 00:00:00' FROM contacts;
INSERT INTO manual_reminders (student_id, message, created_at)
SELECT id, replace(hex(zeroblob(100000)), '00', 'ab '), '2026-11-22T18:00:00Z' FROM students;
SQL
    timed "$B" --config "$long/rappel.toml" --now 2026-11-22T19:00:00Z -q send-reminders 2>/dev/null || true
    read_times
    echo "wall $WALL s, peak RSS $PEAK KB, planned $(sqlite3 "$long/rappel.db" "SELECT count(*) FROM rappel_deliveries")"
    row "sessions: 3k manual reminders of 300 KB" "$WALL s" "$PEAK" "< 256 MB" "mem $(under "$PEAK" 262144)"
}

attendance() {
    local dir="$WORK/attendance"
    rm -rf "$dir" && mkdir -p "$dir"
    echo "bench-token" > "$dir/token"
    cat > "$dir/rappel.toml" <<TOML
database = "rappel.db"
[attendance.services.rh]
base_url = "http://127.0.0.1:2527"
users_endpoint = "/api/v1/employees"
attendance_endpoint = "/api/v1/attendance"
token_file = "token"
batch_size = 100
TOML
    "$B" --config "$dir/rappel.toml" db migrate >/dev/null
    python3 "$(dirname "$0")/fake_hr.py" 2527 &
    local server=$!
    trap "kill $server 2>/dev/null || true; trap - RETURN" RETURN
    sleep 0.5
    local n
    for n in 10000 100000; do
        sqlite3 "$dir/rappel.db" <<SQL
INSERT OR IGNORE INTO terminals (id, serial, name) VALUES (1, 'TM20-001', 'Entrance'), (2, 'TM20-002', 'Workshop'),
       (3, 'TM20-003', 'Office'), (4, 'TM20-004', 'Store');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $n)
INSERT INTO attendance_logs (terminal_id, enroll_id, user_name, punched_at, mode, inout, temperature)
SELECT 1 + i % 4, 1 + i % 500, 'User ' || (1 + i % 500),
       strftime('%Y-%m-%dT%H:%M:%SZ', '2026-11-01T06:00:00Z', (i * 7) || ' seconds', '$n minutes'),
       1, i % 2, CASE WHEN i % 3 = 0 THEN 36.5 END FROM n;
SQL
        echo "== attendance: $n pending punches in batches of 100"
        timed "$B" --config "$dir/rappel.toml" --now "$NOW" sync-attendance 2>&1 | tail -1
        read_times
        echo "wall $WALL s, peak RSS $PEAK KB"
        local "wall_$n=$WALL" "peak_$n=$PEAK"
    done
    echo "sent: $(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM attendance_logs WHERE sync_status = 'sent'") of $(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM attendance_logs")"
    row "attendance: 10k punches" "$wall_10000 s" "$peak_10000"
    row "attendance: 100k punches" "$wall_100000 s" "$peak_100000" "<= 5 s" "$(under "$wall_100000" 5)" \
        "$(awk -v t="$wall_100000" -v t0="$wall_10000" -v p="$peak_100000" -v p0="$peak_10000" \
            'BEGIN { printf "vs 10k: time %s, mem %.2fx\n", (t0 > 0 ? sprintf("%.1fx", t / t0) : "n/a"), p / p0 }')"
    echo "== attendance: a run with nothing due over 110,000 sent punches (users pull included)"
    noop_figure "attendance: nothing due (110k sent)" attendance-idle 30 - \
        --config "$dir/rappel.toml" --now "$NOW" sync-attendance
    echo "server: $(curl -s http://127.0.0.1:2527/count 2>/dev/null || python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:2527/count").read().decode())')"
}

# The Django time-clock tables (as /work/shared/hosts/django_app.sql has them)
# with $2 punches from id $3 on, sync_status $4: $1 is the database.
django_punches() {
    sqlite3 "$1" <<SQL
CREATE TABLE IF NOT EXISTS devices_terminal (id integer PRIMARY KEY AUTOINCREMENT, sn varchar(50) NOT NULL UNIQUE, nom varchar(100) NOT NULL);
CREATE TABLE IF NOT EXISTS devices_attendancelog (id integer PRIMARY KEY AUTOINCREMENT, terminal_id bigint NOT NULL REFERENCES devices_terminal(id),
  enrollid integer NOT NULL, user_name varchar(100) NOT NULL, "time" datetime NOT NULL, mode integer NOT NULL,
  "inout" integer NOT NULL, event integer NOT NULL, temperature decimal NULL, access_granted bool NOT NULL,
  sync_status varchar(10) NOT NULL DEFAULT 'pending', sync_attempts integer NOT NULL DEFAULT 0,
  synced_at datetime NULL, sync_error text NULL);
INSERT OR IGNORE INTO devices_terminal VALUES (1, 'TM20-001', 'Entrée'), (2, 'TM20-002', 'Atelier'),
       (3, 'TM20-003', 'Bureau'), (4, 'TM20-004', 'Magasin');
WITH RECURSIVE n(i) AS (SELECT $3 UNION ALL SELECT i + 1 FROM n WHERE i < $3 + $2 - 1)
INSERT INTO devices_attendancelog (id, terminal_id, enrollid, user_name, "time", mode, "inout", event, temperature,
                                   access_granted, sync_status, sync_attempts, synced_at)
SELECT i, 1 + i % 4, 1 + i % 500, 'User ' || (1 + i % 500),
       strftime('%Y-%m-%d %H:%M:%S', '2026-01-01 06:00:00', (i * 7) || ' seconds'),
       1, i % 2, 0, CASE WHEN i % 3 = 0 THEN 36.5 END, 1, '$4',
       CASE WHEN '$4' = 'sent' THEN 1 ELSE 0 END, CASE WHEN '$4' = 'sent' THEN '2026-11-01 00:00:00' END FROM n;
SQL
}

attendance_mapped() {
    local dir="$WORK/attendance-mapped"
    rm -rf "$dir" && mkdir -p "$dir"
    # The mapping and update columns of examples/django.toml.
    cat > "$dir/rappel.toml" <<TOML
database = "db.sqlite3"
naive_timezone = "UTC"
[attendance.services.rh]
base_url = "http://127.0.0.1:2528"
users_endpoint = "/api/v1/employees"
attendance_endpoint = "/api/v1/attendance"
auth = "none"
batch_size = 100
[sources.terminals]
table = "devices_terminal"
[sources.terminals.columns]
serial = "sn"
name = "nom"
[sources.attendance_logs]
table = "devices_attendancelog"
[sources.attendance_logs.columns]
enroll_id = "enrollid"
punched_at = "time"
[sources.attendance_logs.update]
sync_status = "sync_status"
sync_attempts = "sync_attempts"
synced_at = "synced_at"
sync_error = "sync_error"
TOML
    django_punches "$dir/db.sqlite3" 100000 1 pending
    "$B" --config "$dir/rappel.toml" db migrate >/dev/null
    python3 "$(dirname "$0")/fake_hr.py" 2528 &
    local server=$!
    trap "kill $server 2>/dev/null || true; trap - RETURN" RETURN
    sleep 0.5
    echo "== attendance_mapped: 100,000 pending punches in the host's table, batches of 100"
    timed "$B" --config "$dir/rappel.toml" --now "$NOW" sync-attendance 2>&1 | tail -1
    read_times
    echo "wall $WALL s, peak RSS $PEAK KB"
    echo "host says sent: $(sqlite3 "$dir/db.sqlite3" "SELECT count(*) FROM devices_attendancelog WHERE sync_status = 'sent'") of 100000"
    echo "server: $(python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:2528/count").read().decode())')"
    row "attendance mapped: 100k punches" "$WALL s" "$PEAK" "<= 5 s" "$(under "$WALL" 5)"

    echo "== attendance_mapped: nothing due over 1,000,000 sent punches (users pull included)"
    django_punches "$dir/db.sqlite3" 900000 100001 sent
    "$B" --config "$dir/rappel.toml" --now "$NOW" sync-attendance >/dev/null 2>&1
    noop_figure "attendance mapped: nothing due (1M sent)" attendance-mapped-idle 20 300 \
        --config "$dir/rappel.toml" --now "$NOW" sync-attendance

    echo "== attendance_mapped: the same 1,000,000, sync_status not kept in the host's table"
    # As rappel leaves them when it keeps no host column: the host's column
    # says pending, rappel_punch_state says sent.
    sqlite3 "$dir/db.sqlite3" "UPDATE devices_attendancelog SET sync_status = 'pending';
        INSERT OR IGNORE INTO rappel_punch_state (log_id, punched_at, sync_status, sync_attempts, synced_at)
        SELECT id, \"time\", 'sent', 1, '2026-11-01T00:00:00Z' FROM devices_attendancelog;"
    sed '/^\[sources.attendance_logs.update\]/,$d' "$dir/rappel.toml" > "$dir/unkept.toml"
    noop_figure "attendance mapped: nothing due, sync_status not kept (1M)" attendance-mapped-unkept 20 - \
        --config "$dir/unkept.toml" --now "$NOW" sync-attendance
    echo "server: $(python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:2528/count").read().decode())')"
}

# The PostgreSQL server the postgres section uses: sets PG (a URL without
# TLS: loopback) and exports PGPASSWORD.
pg_server() {
    local url="${RAPPEL_BENCH_POSTGRES:-}"
    if [ -z "$url" ] && [ -n "${RAPPEL_TEST_POSTGRES:-}" ]; then
        url="$RAPPEL_TEST_POSTGRES"
        export PGPASSWORD="${PGPASSWORD:-${RAPPEL_TEST_POSTGRES_PASSWORD:-}}"
    fi
    if [ -z "$url" ]; then
        # CI's own cluster (.ci/run), on its port, stopped when the bench ends.
        eval "$(sed -n '/^start_postgres() {/,/^}/p' .ci/run)"
        start_postgres
        url="$RAPPEL_TEST_POSTGRES"
        export PGPASSWORD="$RAPPEL_TEST_POSTGRES_PASSWORD"
    fi
    PG="$url?sslmode=disable"
    command -v psql >/dev/null || { echo "missing psql (apt-get install postgresql-client)"; exit 1; }
}

# A config for the postgres section: schema $1 (dropped first) on the
# server, then the TOML in $2.
pg_config() {
    psql -q "$PG" -c "DROP SCHEMA IF EXISTS \"$1\" CASCADE" >/dev/null 2>&1
    printf '%s\n[database]\nurl = "%s"\nschema = "%s"\n' "$2" "$PG" "$1"
}

postgres() {
    pg_server
    local dir="$WORK/pg"
    rm -rf "$dir" && mkdir -p "$dir"

    echo "== postgres: a run with nothing due, demo --scale 100000, SQLite then PostgreSQL"
    rm -rf "$dir/lite100k" "$dir/pg100k"
    "$B" --now "$NOW" demo --dir "$dir/lite100k" --scale 100000 --no-run >/dev/null
    psql -q "$PG" -c 'DROP SCHEMA IF EXISTS rappel_demo CASCADE' >/dev/null 2>&1
    "$B" --now "$NOW" demo --dir "$dir/pg100k" --scale 100000 --no-run --database "$PG" >/dev/null
    local name mean sd lite_ms
    for name in lite100k pg100k; do
        "$B" --config "$dir/$name/rappel.toml" --now "$NOW" -q check-delay-alerts || true
    done
    noop_figure "postgres: idle, SQLite (demo 100k)" pg-idle-lite 30 - \
        --config "$dir/lite100k/rappel.toml" --now "$NOW" check-delay-alerts
    read -r lite_ms sd < <(hyperfine_ms "$WORK/pg-idle-lite.json")
    noop_figure "postgres: idle, PostgreSQL (demo 100k)" pg-idle-pg 30 "$(calc "2 * $lite_ms")" \
        --config "$dir/pg100k/rappel.toml" --now "$NOW" check-delay-alerts

    echo "== postgres: check-delay-alerts over 1,000,000 tickets"
    rm -rf "$dir/pg1m"
    psql -q "$PG" -c 'DROP SCHEMA IF EXISTS rappel_demo CASCADE' >/dev/null 2>&1
    local start end
    start=$(date +%s.%N)
    "$B" --now "$NOW" demo --dir "$dir/pg1m" --scale 1000000 --no-run --database "$PG" >/dev/null
    end=$(date +%s.%N)
    printf 'generated in %.0f s\n' "$(elapsed "$start" "$end")"
    # The bare due query in psql, the baseline: three times, the median.
    # The scan alone (--dry-run: what is due, rendered, nothing written or
    # sent), three times after one run that warms the server's cache as the
    # first psql query does, the median; then the whole run, which also
    # writes each due entry's alert and sends the digests after their last
    # look (once: it writes).
    local query
    local times
    times=$(psql -q "$PG" <<SQL | awk '/^Time:/ { printf "%.3f\n", $2 / 1000 }'
SET search_path TO rappel_demo;
\\timing on
$(for _ in 1 2 3; do printf '%s\n' "SELECT count(*) AS due FROM (
  SELECT e.stage, e.entered_at,
         row_number() OVER (PARTITION BY t.id ORDER BY CAST(e.entered_at AS timestamptz) DESC, e.id DESC) AS rn
  FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id
  WHERE t.closed_at IS NULL
) AS current WHERE rn = 1
  AND extract(epoch FROM TIMESTAMPTZ '$NOW' - CAST(entered_at AS timestamptz))
      > 86400 * (CASE stage WHEN 'Attente pièce' THEN 21 ELSE 14 END);"; done)
SQL
)
    query=$(median $times)
    "$B" --config "$dir/pg1m/rappel.toml" --now "$NOW" -q check-delay-alerts --dry-run >/dev/null
    local dries=() dry_peak
    for _ in 1 2 3; do
        timed "$B" --config "$dir/pg1m/rappel.toml" --now "$NOW" -q check-delay-alerts --dry-run >/dev/null
        read_times
        dries+=("$WALL")
        dry_peak=$PEAK
    done
    local dry
    dry=$(median "${dries[@]}")
    echo "rappel check-delay-alerts --dry-run: wall ${dries[*]} s (median $dry s), peak RSS $dry_peak KB"
    timed "$B" --config "$dir/pg1m/rappel.toml" --now "$NOW" check-delay-alerts
    read_times
    local wall=$WALL peak=$PEAK
    echo "rappel check-delay-alerts: wall $wall s, peak RSS $peak KB"
    echo "psql, bare due query: $(echo $times) s (median $query s)"
    # The target is the scan's, what the bare query does: find what is due
    # (the dry run also renders the digests). The whole run writes and
    # sends besides, which the query does not: shown against it, no target.
    row "postgres: scan, --dry-run (1M tickets)" "$dry s" "$dry_peak" "<= 1.5x psql" \
        "$(awk -v r="$dry" -v q="$query" 'BEGIN { if (q > 0) printf "%.2fx the psql query%s\n", r / q, (r / q <= 1.5 ? "" : " (OVER)"); else print "n/a" }')"
    row "postgres: scan, alerts written, digests sent (1M)" "$wall s" "$peak" "-" "-" \
        "$(awk -v r="$wall" -v q="$query" 'BEGIN { if (q > 0) printf "%.1fx the psql query\n", r / q; else print "n/a" }')"
    row "postgres: scan baseline, psql bare due query" "$query s" "-" "-" "-" "(baseline)"

    postgres_send

    echo "== postgres: 100,000 pending punches in batches of 100"
    python3 "$(dirname "$0")/fake_hr.py" 2529 &
    local server=$!
    trap "kill $server 2>/dev/null || true; trap - RETURN" RETURN
    sleep 0.5
    echo "bench-token" > "$dir/token"
    pg_config rappel_bench_punches "[attendance.services.rh]
base_url = \"http://127.0.0.1:2529\"
users_endpoint = \"/api/v1/employees\"
attendance_endpoint = \"/api/v1/attendance\"
token_file = \"token\"
batch_size = 100" > "$dir/punches.toml"
    "$B" --config "$dir/punches.toml" db migrate >/dev/null
    psql -q "$PG" <<SQL
SET search_path TO rappel_bench_punches;
INSERT INTO terminals (id, serial, name) VALUES (1, 'TM20-001', 'Entrance'), (2, 'TM20-002', 'Workshop'),
       (3, 'TM20-003', 'Office'), (4, 'TM20-004', 'Store');
INSERT INTO attendance_logs (terminal_id, enroll_id, user_name, punched_at, mode, inout, temperature)
SELECT 1 + i % 4, 1 + i % 500, 'User ' || (1 + i % 500),
       to_char(TIMESTAMP '2026-11-01 06:00:00' + i * INTERVAL '7 seconds', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
       1, i % 2, CASE WHEN i % 3 = 0 THEN 36.5 END FROM generate_series(1, 100000) i;
ANALYZE;
SQL
    timed "$B" --config "$dir/punches.toml" --now "$NOW" sync-attendance 2>&1 | tail -1
    read_times
    echo "wall $WALL s, peak RSS $PEAK KB"
    echo "sent: $(psql -At "$PG" -c "SELECT count(*) FROM rappel_bench_punches.attendance_logs WHERE sync_status = 'sent'") of 100000"
    row "postgres: attendance, 100k punches" "$WALL s" "$PEAK" "<= 5 s" "$(under "$WALL" 5)"
}

# The postgres section's send rate, SQLite's beside it (also on its own:
# bench/run.sh postgres_send).
postgres_send() {
    echo "== postgres: 10,000 digests to smtp-sink over 8 connections, SQLite then PostgreSQL"
    command -v smtp-sink >/dev/null || { echo "missing smtp-sink (apt-get install postfix)"; exit 1; }
    local lite_rate pg_rate
    lite_rate=$(pg_deliver_rate lite)
    pg_rate=$(pg_deliver_rate pg)
    row "postgres: send, SQLite (8 conn.)" "$(printf '%.0f msg/s' "$lite_rate")" "-"
    row "postgres: send, PostgreSQL (8 conn.)" "$(printf '%.0f msg/s' "$pg_rate")" "-" ">= 80% of SQLite's" \
        "$(share_floor "$pg_rate" "$lite_rate" 80)"
}

# Delivers 10,000 planned digests to smtp-sink over 8 connections from a
# SQLite file ($1 = lite) or the PostgreSQL server ($1 = pg); prints
# messages/s.
pg_deliver_rate() {
    local dir="$WORK/pg/send-$1" schema=rappel_bench_send
    rm -rf "$dir" && mkdir -p "$dir"
    local smtp='[email]
from = "Bench <bench@example.com>"
[email.smtp]
host = "127.0.0.1"
port = 2525
security = "none"
connections = 8
[delay_alerts]
threshold_days = 14'
    local fill="INSERT INTO contacts (id, name, email) SELECT i, 'Staff ' || i, 'staff' || i || '@example.com' FROM n;
INSERT INTO alert_recipients (contact_id) SELECT id FROM contacts;
INSERT INTO tickets (id, reference, device, customer, created_at) VALUES (1, 'T-1', 'Phone', 'Customer', '2026-10-01T00:00:00Z');
INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-10-01T00:00:00Z');"
    if [ "$1" = pg ]; then
        pg_config "$schema" "$smtp" > "$dir/rappel.toml"
        "$B" --config "$dir/rappel.toml" db migrate >/dev/null
        psql -q "$PG" -c "SET search_path TO $schema; CREATE TEMP VIEW n AS SELECT generate_series(1, 10000) AS i; $fill" >/dev/null
    else
        printf 'database = "rappel.db"\n%s\n' "$smtp" > "$dir/rappel.toml"
        "$B" --config "$dir/rappel.toml" db migrate >/dev/null
        sqlite3 "$dir/rappel.db" "CREATE TEMP VIEW n AS WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 10000) SELECT i FROM s;
            $fill" >/dev/null
    fi
    # Planned without a usable transport (a password that cannot be had), then delivered.
    sed 's/^security = "none"$/security = "none"\nusername = "bench"\npassword_env = "RAPPEL_BENCH_NO_SUCH_PASSWORD"/' \
        "$dir/rappel.toml" > "$dir/plan.toml"
    "$B" --config "$dir/plan.toml" --now "$NOW" -q check-delay-alerts >/dev/null 2>&1 || true
    start_sink >&2
    local start end
    start=$(date +%s.%N)
    "$B" --config "$dir/rappel.toml" --now "$NOW" deliver >&2
    end=$(date +%s.%N)
    kill "$SINK" 2>/dev/null || true
    wait "$SINK" 2>/dev/null || true
    printf '%s: wall %.2f s\n' "$1" "$(elapsed "$start" "$end")" >&2
    calc "10000 / $(elapsed "$start" "$end")"
}

dashboard() {
    echo "== dashboard: 100,000 deliveries over 30 days"
    local dir="$WORK/dashboard"
    rm -rf "$dir" && mkdir -p "$dir"
    cat > "$dir/rappel.toml" <<TOML
database = "rappel.db"
timezone = "Europe/Paris"
locale = "fr"
[attendance.services.rh]
base_url = "http://127.0.0.1:9"
attendance_endpoint = "/punches"
auth = "none"
terminals = ["TM20-001"]
[attendance.services.paie]
base_url = "http://127.0.0.1:9"
attendance_endpoint = "/punches"
auth = "none"
TOML
    "$B" --config "$dir/rappel.toml" db migrate >/dev/null
    sqlite3 "$dir/rappel.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO rappel_deliveries (job, kind, dedupe_key, channel, recipient, subject, body, status, attempts,
                               last_error, created_at, sent_at)
SELECT CASE i % 4 WHEN 0 THEN 'check-delay-alerts' WHEN 1 THEN 'send-reports' ELSE 'send-reminders' END,
       CASE i % 9 WHEN 0 THEN 'delay_alert' WHEN 1 THEN 'report' WHEN 2 THEN 'loan_d1' WHEN 3 THEN 'loan_overdue'
                  WHEN 4 THEN 'session_day' WHEN 5 THEN 'weekly' WHEN 6 THEN 'inactivity' WHEN 7 THEN 'manual'
                  ELSE 'loan_created' END,
       'k' || i, CASE i % 5 WHEN 0 THEN 'sms' WHEN 1 THEN 'whatsapp' ELSE 'email' END,
       'person' || (i % 5000) || '@example.com', 'Subject ' || i, 'Body of message ' || i,
       CASE WHEN i % 50 = 0 THEN 'failed' WHEN i % 37 = 0 THEN 'cancelled' WHEN i > 99900 THEN 'pending' ELSE 'sent' END,
       1,
       CASE WHEN i % 50 = 0 THEN 'smtp: 550 mailbox unavailable (' || (i % 7) || ')'
            WHEN i % 37 = 0 THEN 'cancelled: the loan was returned' END,
       strftime('%Y-%m-%dT%H:%M:%SZ', '$NOW', '-' || (i * 25) || ' seconds'),
       strftime('%Y-%m-%dT%H:%M:%SZ', '$NOW', '-' || (i * 25 - 40) || ' seconds')
FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
INSERT INTO rappel_job_runs (job, started_at, finished_at, exit_code, sent)
SELECT CASE i % 4 WHEN 0 THEN 'check-delay-alerts' WHEN 1 THEN 'send-reports' WHEN 2 THEN 'send-reminders' ELSE 'sync-attendance' END,
       strftime('%Y-%m-%dT%H:%M:%SZ', '$NOW', '-' || (i * 1200) || ' seconds'),
       strftime('%Y-%m-%dT%H:%M:%SZ', '$NOW', '-' || (i * 1200 - 2) || ' seconds'),
       CASE WHEN i % 13 = 0 THEN 75 ELSE 0 END, i % 40
FROM n;
INSERT INTO terminals (id, serial) VALUES (1, 'TM20-001'), (2, 'TM20-002');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO attendance_logs (terminal_id, enroll_id, punched_at, sync_status)
SELECT 1 + i % 2, i % 300, strftime('%Y-%m-%dT%H:%M:%SZ', '$NOW', '-' || (i * 60) || ' seconds'),
       CASE WHEN i < 200 THEN 'pending' ELSE 'sent' END
FROM n;
INSERT INTO rappel_terminal_sync_state VALUES (1, 'rh', '$NOW', NULL), (2, 'paie', '$NOW', NULL);
SQL
    echo "deliveries: $(sqlite3 "$dir/rappel.db" 'SELECT count(*) FROM rappel_deliveries')"
    noop_figure "dashboard: page over 100k deliveries" dashboard 10 1000 \
        --config "$dir/rappel.toml" --now "$NOW" dashboard --out "$dir/dashboard.html"
    local size
    size=$(stat -c %s "$dir/dashboard.html")
    echo "page: $size bytes"
    row "dashboard: page size" "$(calc "$size / 1024" | xargs printf '%.0f KB')" "-" "< 1 MB" "$(under "$size" 1048576)"
    noop_figure "metrics: rappel.prom over 100k deliveries" metrics 10 - \
        --config "$dir/rappel.toml" --now "$NOW" metrics --textfile "$dir"
    local chromium
    chromium=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
    if [ -n "$chromium" ]; then
        for shot in desktop:1200,2600 phone:412,5200; do
            "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars \
                --screenshot="$dir/dashboard-${shot%%:*}.png" --window-size="${shot#*:}" \
                "file://$dir/dashboard.html" >/dev/null 2>&1 &&
                echo "screenshot: $dir/dashboard-${shot%%:*}.png"
        done
    else
        echo "no Chromium: no screenshot (apt-get install chromium)"
    fi
}

case "$what" in
    idle) idle ;;
    scan) scan ;;
    send) send ;;
    reports) reports ;;
    reminders) reminders ;;
    sessions) sessions ;;
    attendance) attendance ;;
    attendance_mapped) attendance_mapped ;;
    postgres) postgres ;;
    postgres_send) pg_server; postgres_send ;;
    dashboard) dashboard ;;
    all) idle; scan; send; reports; reminders; sessions; attendance; attendance_mapped; dashboard ;;
esac
summary

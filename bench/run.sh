#!/usr/bin/env bash
# rappel's benchmarks. Prints its figures; nothing here is a pass/fail test.
#
#   bench/run.sh            all three
#   bench/run.sh idle|scan|send|reports|reminders|sessions|attendance
#
# Needs: hyperfine, GNU time (/usr/bin/time), sqlite3, and postfix's smtp-sink
#   apt-get install hyperfine time sqlite3 postfix   (postfix: "No configuration")
#
# 1. idle: a run with nothing due on a `demo --scale 100000` database (target <= 20 ms)
# 2. scan: check-delay-alerts on `demo --scale 1000000` (targets <= 2 s, <= 64 MB),
#    beside the time the sqlite3 CLI takes for the bare due query
# 3. send: 10,000 digests (10,000 alert recipients) delivered to smtp-sink on
#    127.0.0.1 with each message's state committed (target >= 3,000 messages/s)
# 4. reports: 1,000 due reports x 3 recipients with a 200 KB PDF each to
#    smtp-sink (messages/s, peak memory), and one 20 MB PDF to 10 recipients
#    (target < 100 MB peak)
# 5. reminders: planning send-reminders over 100,000 loans with 10 % due
#    (time, peak memory), and 10,000 WhatsApp messages to a local HTTP server
#    standing in for Twilio (bench/fake_twilio.py): messages/s
# 6. sessions: 50,000 students with 4 revision sessions a week (10 weeks, 2M
#    sessions): planning time and peak memory of send-reminders (target <= 1 s,
#    <= 64 MB) on a weekday evening (session_eve for the next day's sessions),
#    on Sunday 20:00 (every student's weekly digest as well), and a run right
#    after with everything already planned. Planning only: no transport is
#    configured, so the run ends with exit 78 once it has planned.
# 7. attendance: sync-attendance pushing 100,000 pending punches in batches of
#    100 to a local HTTP server standing in for the HR API (bench/fake_hr.py):
#    wall time (target <= 5 s) and peak memory, beside the same run over
#    10,000 punches (flat memory: the peaks should match), then a run with
#    nothing due over the 110,000 sent punches
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
NOW=2026-11-21T07:00:00Z
WORK="${BENCH_DIR:-/tmp/rappel-bench}"
mkdir -p "$WORK"
cargo build --release --quiet
B="$PWD/target/release/rappel"
for tool in hyperfine sqlite3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (see the header of $0)"; exit 1; }
done

idle() {
    echo "== idle: nothing due, demo --scale 100000"
    rm -rf "$WORK/s100k"
    "$B" --now "$NOW" demo --dir "$WORK/s100k" --scale 100000 --no-run >/dev/null
    "$B" --config "$WORK/s100k/rappel.toml" --now "$NOW" -q check-delay-alerts   # alerts what is due
    hyperfine -N --warmup 5 --runs 50 \
        "$B --config $WORK/s100k/rappel.toml --now $NOW check-delay-alerts" 2>&1 | grep -E "Time|Range"
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
    /usr/bin/time -f "rappel check-delay-alerts: wall %e s, peak RSS %M KB" \
        "$B" --config "$WORK/s1m/rappel.toml" --now "$NOW" check-delay-alerts
    echo "sqlite3 CLI, bare due query (current stage per active ticket past its threshold):"
    sqlite3 "$WORK/s1m/rappel.db" <<SQL
.timer on
SELECT count(*) AS due FROM (
  SELECT e.stage, e.entered_at,
         row_number() OVER (PARTITION BY t.id ORDER BY unixepoch(e.entered_at) DESC, e.id DESC) AS rn
  FROM tickets t JOIN ticket_events e ON e.ticket_id = t.id
  WHERE t.closed_at IS NULL
) WHERE rn = 1
  AND unixepoch('$NOW') - unixepoch(entered_at) > 86400 * (CASE stage WHEN 'Attente pièce' THEN 21 ELSE 14 END);
SQL
}

start_sink() {
    local as_root=(); [ "$(id -u)" = 0 ] && as_root=(-u postfix)
    smtp-sink "${as_root[@]}" 127.0.0.1:2525 1000 &
    SINK=$!
    sleep 0.3
}

send() {
    echo "== send: 10,000 emails to smtp-sink with connections = ${CONNECTIONS:-8}"
    command -v smtp-sink >/dev/null || { echo "missing smtp-sink (apt-get install postfix)"; exit 1; }
    local dir="$WORK/send"
    rm -rf "$dir" && mkdir -p "$dir"
    cat > "$dir/plan.toml" <<TOML
database = "rappel.db"
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
connections = ${CONNECTIONS:-8}
TOML
    "$B" --config "$dir/plan.toml" db migrate >/dev/null
    sqlite3 "$dir/rappel.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
INSERT INTO contacts (id, name, email) SELECT i, 'Staff ' || i, 'staff' || i || '@example.com' FROM n;
INSERT INTO alert_recipients (contact_id) SELECT id FROM contacts;
INSERT INTO tickets (id, reference, device, customer, created_at) VALUES (1, 'T-1', 'Phone', 'Customer', '2026-10-01T00:00:00Z');
INSERT INTO ticket_events (ticket_id, stage, entered_at) VALUES (1, 'Diagnostic', '2026-10-01T00:00:00Z');
SQL
    # Plan with no transport configured: the 10,000 digests wait as pending rows.
    "$B" --config "$dir/plan.toml" --now "$NOW" -q check-delay-alerts || true
    start_sink
    trap "kill $SINK 2>/dev/null" RETURN
    local start end
    start=$(date +%s.%N)
    "$B" --config "$dir/rappel.toml" --now "$NOW" deliver
    end=$(date +%s.%N)
    echo "sent: $(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM deliveries WHERE status = 'sent'") of 10000"
    python3 -c "import sys; s, e = float(sys.argv[1]), float(sys.argv[2]); print(f'wall {e - s:.2f} s: {10000 / (e - s):.0f} messages/s')" "$start" "$end"
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
    start_sink
    trap "kill $SINK 2>/dev/null" RETURN
    echo "== reports: 1,000 reports x 3 recipients, 200 KB PDF, connections = ${CONNECTIONS:-4}"
    local start end
    start=$(date +%s.%N)
    /usr/bin/time -f "peak RSS %M KB" "$B" --config "$dir/rappel.toml" --now "$NOW" send-reports
    end=$(date +%s.%N)
    echo "sent: $(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM deliveries WHERE status = 'sent'") of 3000"
    python3 -c "import sys; s, e = float(sys.argv[1]), float(sys.argv[2]); print(f'wall {e - s:.2f} s: {3000 / (e - s):.0f} messages/s')" "$start" "$end"

    echo "== reports: one 20 MB PDF to 10 recipients"
    sqlite3 "$dir/rappel.db" "INSERT INTO scheduled_reports (title, recipients, scheduled_at, attachment_path)
        VALUES ('Big', 'r1@example.com,r2@example.com,r3@example.com,r4@example.com,r5@example.com,r6@example.com,r7@example.com,r8@example.com,r9@example.com,r10@example.com', '2026-11-21T06:00:00Z', 'r20m.pdf')"
    /usr/bin/time -f "wall %e s, peak RSS %M KB" "$B" --config "$dir/rappel.toml" --now "$NOW" send-reports
    echo "sent: $(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM deliveries WHERE status = 'sent' AND recipient LIKE 'r%'") of 10"
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
    /usr/bin/time -f "wall %e s, peak RSS %M KB" "$B" --config "$dir/rappel.toml" --now "$NOW" send-reminders --dry-run | tail -1

    echo "== reminders: 10,000 WhatsApp messages to a local HTTP server"
    sqlite3 "$dir/rappel.db" "UPDATE contacts SET email_enabled = 0, whatsapp_enabled = 1, phone = '+241' || printf('%08d', id) WHERE id % 10 = 0"
    python3 "$(dirname "$0")/fake_twilio.py" 2526 &
    local server=$!
    trap "kill $server 2>/dev/null" RETURN
    sleep 0.5
    local start end
    start=$(date +%s.%N)
    "$B" --config "$dir/rappel.toml" --now "$NOW" send-reminders | tail -1
    end=$(date +%s.%N)
    local sent
    sent=$(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM deliveries WHERE status = 'sent' AND channel = 'whatsapp'")
    echo "sent: $sent"
    python3 -c "import sys; s, e, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]); print(f'wall {e - s:.2f} s: {n / (e - s):.0f} messages/s')" "$start" "$end" "$sent"
}

sessions() {
    local dir="$WORK/sessions"
    rm -rf "$dir" && mkdir -p "$dir"
    printf 'database = "rappel.db"\ntimezone = "Europe/Paris"\nsite_url = "https://tutor.example.com"\n' > "$dir/rappel.toml"
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
    sqlite3 "$dir/rappel.db" "INSERT INTO job_runs (job, started_at, finished_at)
        VALUES ('send-reminders', '2026-11-21T17:30:00Z', '2026-11-21T17:30:01Z')"
    local run
    run() {
        echo "== sessions: $1"
        /usr/bin/time -f "wall %e s, peak RSS %M KB" "$B" --config "$dir/rappel.toml" --now "$2" -v send-reminders 2>&1 \
            | grep -E "planned .* in|peak RSS" || true
    }
    run "Saturday 18:35, eve reminders for Sunday's sessions" 2026-11-21T17:35:00Z
    run "Sunday 20:00, weekly digests and eve reminders for Monday" 2026-11-22T19:00:00Z
    run "Sunday 20:05, everything already planned" 2026-11-22T19:05:00Z
    echo "planned: $(sqlite3 "$dir/rappel.db" "SELECT kind || ' ' || count(*) FROM deliveries GROUP BY kind" | tr '\n' ' ')"
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
    trap "kill $server 2>/dev/null" RETURN
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
        /usr/bin/time -f "wall %e s, peak RSS %M KB" "$B" --config "$dir/rappel.toml" --now "$NOW" sync-attendance 2>&1 | tail -2
    done
    echo "sent: $(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM attendance_logs WHERE sync_status = 'sent'") of $(sqlite3 "$dir/rappel.db" "SELECT count(*) FROM attendance_logs")"
    echo "== attendance: a run with nothing due over 110,000 sent punches (users pull included)"
    hyperfine -N --warmup 3 --runs 30 "$B --config $dir/rappel.toml --now $NOW sync-attendance" 2>/dev/null | grep -E "Time|Range"
    echo "server: $(curl -s http://127.0.0.1:2527/count 2>/dev/null || python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:2527/count").read().decode())')"
}

case "$what" in
    idle) idle ;;
    scan) scan ;;
    send) send ;;
    reports) reports ;;
    reminders) reminders ;;
    sessions) sessions ;;
    attendance) attendance ;;
    all) idle; scan; send; reports; reminders; sessions; attendance ;;
    *) echo "usage: $0 [idle|scan|send|reports|reminders|sessions|attendance]"; exit 64 ;;
esac

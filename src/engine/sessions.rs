//! The database sessions a run's delivery workers share: each worker takes
//! one for a claim, a look or a lease renewal and gives it back before it
//! sends, so no session waits on a network call and a server has fewer
//! sessions than the run has workers (`limit`).

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex};

use crate::db::Database;
use crate::store;

/// Sessions on a PostgreSQL server for a run's workers, however many
/// workers it has. Each server session is a process of its own, and
/// sessions claiming at once contend for the same rows and pages: 8
/// workers with a session each sent 10,000 digests to a local sink at a
/// median 12,800 messages a second, sharing 3 at 14,050, sharing 2 at
/// 13,300, and 1 held them back (10,300; `bench/run.sh postgres_send`'s
/// run, 2 cores, 4 runs each). A worker holds a session for well under a
/// millisecond a message, so a few serve many.
const SERVER_SESSIONS: usize = 3;

/// How many sessions the workers of a run on `db` share: one each on
/// SQLite (a session there is a file handle, and its reads go on in
/// parallel), at most `SERVER_SESSIONS` on a server.
pub fn limit(db: &Database, workers: usize) -> usize {
    if db.server().is_some() {
        workers.clamp(1, SERVER_SESSIONS)
    } else {
        workers.max(1)
    }
}

/// Up to `limit` sessions on `db`, each opened when first needed.
pub struct Sessions<'a> {
    db: &'a Database,
    limit: usize,
    state: Mutex<Idle>,
    given_back: Condvar,
}

/// The sessions not in use, and how many are open in all.
struct Idle {
    free: Vec<store::Conn>,
    open: usize,
}

impl<'a> Sessions<'a> {
    /// No session open yet; at most `limit` (at least 1) at once.
    pub fn new(db: &'a Database, limit: usize) -> Self {
        Sessions {
            db,
            limit: limit.max(1),
            state: Mutex::new(Idle {
                free: Vec::new(),
                open: 0,
            }),
            given_back: Condvar::new(),
        }
    }

    /// A session for this thread until the guard is dropped: a free one,
    /// a new one while fewer than `limit` are open, or else the first given
    /// back. Errors: a new session could not be opened (`Database::connect`:
    /// exit 74, or 78 for a mapping that does not read).
    pub fn take(&self) -> anyhow::Result<Session<'_, 'a>> {
        let mut idle = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(conn) = idle.free.pop() {
                return Ok(Session {
                    sessions: self,
                    conn: Some(conn),
                });
            }
            if idle.open < self.limit {
                idle.open += 1;
                drop(idle);
                return match self.db.connect() {
                    Ok(conn) => Ok(Session {
                        sessions: self,
                        conn: Some(conn),
                    }),
                    Err(e) => {
                        let mut idle = self.state.lock().unwrap_or_else(|e| e.into_inner());
                        idle.open -= 1;
                        self.given_back.notify_one();
                        Err(e)
                    }
                };
            }
            idle = self.given_back.wait(idle).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Sessions opened so far (at most `limit`).
    #[cfg(test)]
    fn opened(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).open
    }
}

/// A session taken from `Sessions`, given back when dropped.
pub struct Session<'s, 'a> {
    sessions: &'s Sessions<'a>,
    conn: Option<store::Conn>,
}

impl Deref for Session<'_, '_> {
    type Target = store::Conn;

    fn deref(&self) -> &store::Conn {
        // Some from `take` until `drop`.
        self.conn.as_ref().expect("a session is held until dropped")
    }
}

impl DerefMut for Session<'_, '_> {
    fn deref_mut(&mut self) -> &mut store::Conn {
        self.conn.as_mut().expect("a session is held until dropped")
    }
}

impl Drop for Session<'_, '_> {
    /// Gives the session back; one the server ended (or whose connection
    /// broke) is closed instead, and the next `take` opens another: the
    /// worker that met the loss stops (exit 74), the others go on.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.sessions.state.lock().unwrap_or_else(|e| e.into_inner());
            if conn.is_closed() {
                idle.open -= 1;
            } else {
                idle.free.push(conn);
            }
            self.sessions.given_back.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database(dir: &std::path::Path) -> Database {
        let db = Database::new(dir.join("rappel.db"), false).creating();
        db.connect_current().unwrap();
        db
    }

    #[test]
    fn sessions_are_opened_when_needed_and_never_beyond_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        let sessions = Sessions::new(&db, 2);
        {
            let first = sessions.take().unwrap();
            assert_eq!(sessions.opened(), 1);
            drop(first);
            // Given back, then taken again: no second session.
            let _again = sessions.take().unwrap();
            assert_eq!(sessions.opened(), 1);
            let _second = sessions.take().unwrap();
            assert_eq!(sessions.opened(), 2);
        }
        // Eight threads taking sessions at once share the two.
        let taken = std::sync::atomic::AtomicUsize::new(0);
        let at_once = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let session = sessions.take().unwrap();
                        let now = at_once.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                        assert_eq!(session.dialect(), store::Dialect::Sqlite);
                        std::thread::yield_now();
                        taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        at_once.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(taken.into_inner(), 400);
        assert!(most.into_inner() <= 2, "never more than the limit in use");
        assert_eq!(sessions.opened(), 2);
    }

    #[test]
    fn on_sqlite_each_worker_has_a_session_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(dir.path());
        assert_eq!(limit(&db, 8), 8);
        assert_eq!(limit(&db, 0), 1);
    }
}

-- rappel schema 13 on PostgreSQL (its own step, as 9, 11 and 12): pages of
-- rappel_deliveries are filled to half when rows are written, so that a
-- row's next versions (claimed, then sent: each a new version of the row,
-- as status is indexed) go on the row's own page. The server then logs
-- only what changed, dirties one page where it dirtied two, and prunes the
-- old versions in place: 10,000 digests over 8 workers went at 15,400
-- messages a second instead of 14,500 (`bench/run.sh postgres_send`). The
-- table takes up to twice the space for the rows planned after it.
-- Pages written before keep their rows as they are. SQLite is unchanged.
ALTER TABLE rappel_deliveries SET (fillfactor = 50);

-- rappel schema 11 on PostgreSQL (its own step, as 9): rappel_instant(text)
-- catches a value that is not an instant in an EXCEPTION block, which starts
-- a subtransaction, and a parallel query may start none: declared PARALLEL
-- SAFE by migration 9, any parallel plan that called it failed ("cannot
-- start subtransactions during a parallel operation"). PostgreSQL's rule:
-- a function that changes the transaction state even for a moment is
-- PARALLEL UNSAFE. Its results, and the index on them, are unchanged.
ALTER FUNCTION rappel_instant(text) PARALLEL UNSAFE;

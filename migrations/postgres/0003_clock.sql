-- Which clock closed each day (issue 13): 'real' (the system's) or
-- 'shifted' (`serve --now`). A closing charges real meals whatever the
-- clock, so `serve` refuses to run a clock set by hand on a database
-- closed under the real one (unless told `--now-on-real-data`), and the
-- real clock on one closed ahead of the real date by a clock set by hand
-- (runtime::clock::check_clocks). NULL for a day not closed.
ALTER TABLE days ADD COLUMN clock TEXT CHECK (clock IN ('real', 'shifted'));

-- Days closed before this migration: a closing time still in the future
-- can only come from a clock set ahead; anything else counts as real (the
-- careful reading: `serve --now` then asks for the explicit flag).
UPDATE days SET clock = CASE
    WHEN closed_at_ms > CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT) THEN 'shifted'
    ELSE 'real' END
WHERE closed_at_ms IS NOT NULL;

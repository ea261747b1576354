"""Developer and CI tools around dse (not pipeline stages): e.g. a throwaway PostgreSQL server
for RDB-backed studies (:mod:`dse.tools.postgres`)."""

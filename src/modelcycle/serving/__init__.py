"""Serving the champion: ``modelcycle serve`` and the load check the cycle runs before the
champion alias moves.

loader    one registered version loaded for serving (Served, load_version, check_serves)
inputs    a request body to checked columns; client mistakes as InputError (4xx)
batcher   concurrent requests predicted together, one predict call at a time
follower  the thread that follows the champion alias and swaps a new version in
info      what GET /model says (lineage, redacted)
app       the HTTP app (FastAPI; POST /predict answered straight from ASGI)
runner    listen, load, follow, write .modelcycle/serving.json, stop gracefully
"""

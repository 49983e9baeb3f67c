#!/bin/sh
# The crash-loop fault leaves this marker in the container's writable layer,
# so every restart by the restart policy fails the same way until reset.
if [ -f /app/crashloop ]; then
    echo "FATAL: cannot load settings: DATABASE_URL is malformed" >&2
    exit 3
fi
exec python3 -m uvicorn app:app --host 0.0.0.0 --port 8000 --log-level warning

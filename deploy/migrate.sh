#!/usr/bin/env bash
# The migrations step of the deploy alone, after a snapshot: deploy/deploy.sh --only migrations
# (policies and the context key untouched). The whole deploy is deploy/deploy.sh.
# Usage: DATABASE_OWNER_URL=postgres://... deploy/migrate.sh [--skip-snapshot]
exec "$(dirname "$0")/deploy.sh" "$@" --only migrations

#!/bin/sh
# The temporal-schema job (temporalio/admin-tools): creates Temporal's two
# databases and brings both schemas to the newest version this admin-tools
# image ships, which is the version its server release expects. Safe to run
# again, and that is how an upgrade is applied: bump both Temporal image
# tags in docker-compose.yml, then `docker compose up -d`.
#
# `exportd cluster` runs this same script outside Docker, with the pinned
# tool and the schema files of the same release from .tools.
#
# Environment: POSTGRES_SEEDS (host), DB_PORT, POSTGRES_USER, and
# SQL_PASSWORD, which temporal-sql-tool reads itself. Outside the image:
# TEMPORAL_SQL_TOOL (the binary) and TEMPORAL_SCHEMA_DIR (the release's
# schema/postgresql/v12).
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS must be set}"
: "${POSTGRES_USER:?POSTGRES_USER must be set}"
: "${SQL_PASSWORD:?SQL_PASSWORD must be set}"
schema=${TEMPORAL_SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}
tool=${TEMPORAL_SQL_TOOL:-temporal-sql-tool}

sqltool() {
	"$tool" --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "${DB_PORT:-5432}" -u "$POSTGRES_USER" "$@"
}

# database name, then its directory under $schema
for pair in temporal:temporal temporal_visibility:visibility; do
	db=${pair%%:*}
	dir=${pair#*:}
	echo "temporal-schema: $db"
	# create answers an error for a database that exists on some versions;
	# setup-schema right after fails anyway if it really is missing.
	sqltool --db "$db" create || echo "temporal-schema: could not create $db, assuming it exists"
	# Creates the version tables; a no-op once the schema is past 0.0.
	sqltool --db "$db" setup-schema -v 0.0
	sqltool --db "$db" update-schema -d "$schema/$dir/versioned"
done
echo "temporal-schema: done"

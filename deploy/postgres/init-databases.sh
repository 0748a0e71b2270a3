#!/bin/sh
# Runs once, when the postgres container initialises an empty data
# directory (docker-entrypoint-initdb.d): one role per tenant of this
# server, so that neither exportd nor Temporal can touch the other's data.
#
#   exportd   owns the database exportd (exportd migrate creates the tables)
#   temporal  may create databases: the temporal-schema job creates
#             temporal and temporal_visibility, owned by it
#
# Changing DB_EXPORTD_PASSWORD or DB_TEMPORAL_PASSWORD later does not
# change the roles: run ALTER ROLE ... PASSWORD by hand (deploy/README.md).
#
# The entrypoint may source this file rather than run it, so it neither
# calls exit nor changes shell options.

: "${DB_EXPORTD_PASSWORD:?DB_EXPORTD_PASSWORD must be set}"
: "${DB_TEMPORAL_PASSWORD:?DB_TEMPORAL_PASSWORD must be set}"

# The passwords go in as psql variables, which :'name' quotes as literals.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-postgres}" \
	-v exportd_password="$DB_EXPORTD_PASSWORD" \
	-v temporal_password="$DB_TEMPORAL_PASSWORD" <<'SQL'
CREATE ROLE exportd LOGIN PASSWORD :'exportd_password';
CREATE DATABASE exportd OWNER exportd;
REVOKE ALL ON DATABASE exportd FROM PUBLIC;
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
SQL

// Package cluster tests the production topology that `make cluster` runs
// (docker-compose.yml's, without Docker): two APIs and two workers on the
// Temporal server with PostgreSQL persistence and visibility, result files
// in an S3 server. Its test is behind the build tag "cluster", so that
// only `make test-cluster` waits for the Temporal server build:
//
//	go test -tags cluster ./e2e/cluster/
package cluster

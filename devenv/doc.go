// Package devenv runs the local dependencies of `exportd dev` and of the
// tests (a private PostgreSQL cluster, the Temporal dev server) as child
// processes of this one, with their state in a data directory, so one
// command brings up a working stack without Docker or a system service.
package devenv

// Package deploy holds what docker-compose.yml mounts into its containers:
// the database roles, Temporal's schema job and dynamic config, and the
// MinIO bucket job. Its test checks the compose stack and the Dockerfile
// without running Docker; the package has no code of its own.
package deploy

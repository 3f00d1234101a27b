// Package deploy holds no Go code: its directory is the configuration that
// docker-compose.yml mounts (Mosquitto, Prometheus, HAProxy, the
// check-config script) and that scripts/services.sh derives the local
// broker's from. Its tests check that configuration: what the compose file
// publishes and on which addresses, the broker's TLS listener, that
// check-config refuses placeholder and short secrets, the cluster
// profile's instances and balancer, and HAProxy running its file.
package deploy

// Package grafana holds the operators' Grafana set-up that
// docker-compose.yml mounts: provisioning/ (the Prometheus data source and
// the dashboard provider) and dashboards/ (the dashboards, as JSON). It has
// no Go code; its test checks that every dashboard query asks Prometheus
// for metrics and labels that patientpulse really exports, and that the
// provisioning files agree with docker-compose.yml and
// deploy/prometheus/prometheus.yml.
package grafana

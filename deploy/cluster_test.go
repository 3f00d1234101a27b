package deploy

import (
	"bufio"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The cluster profile's instances, in docker-compose.yml.
var clusterInstances = []string{"pp-a", "pp-b"}

// service is one service of compose's output.
type service map[string]any

// env is the service's environment, in either form compose prints.
func (s service) env() map[string]string {
	out := map[string]string{}
	switch e := s["environment"].(type) {
	case map[string]any:
		for k, v := range e {
			if v == nil {
				v = ""
			}
			out[k] = fmt.Sprint(v)
		}
	case []any:
		for _, item := range e {
			k, v, _ := strings.Cut(fmt.Sprint(item), "=")
			out[k] = v
		}
	}
	return out
}

// mount is one volume of a service.
type mount struct {
	source, target string
	readOnly       bool
}

// mounts reads a service's volumes in the short form (docker-compose
// 1.x) or the long one (docker compose 2.x).
func (s service) mounts() []mount {
	list, _ := s["volumes"].([]any)
	var out []mount
	for _, v := range list {
		switch v := v.(type) {
		case string:
			parts := strings.Split(v, ":")
			m := mount{source: parts[0]}
			if len(parts) > 1 {
				m.target = parts[1]
			}
			m.readOnly = len(parts) > 2 && strings.Contains(parts[2], "ro")
			out = append(out, m)
		case map[string]any:
			ro, _ := v["read_only"].(bool)
			out = append(out, mount{source: fmt.Sprint(v["source"]), target: fmt.Sprint(v["target"]), readOnly: ro})
		}
	}
	return out
}

// networks names the networks a service is on.
func (s service) networks() []string {
	var out []string
	switch n := s["networks"].(type) {
	case map[string]any:
		for name := range n {
			out = append(out, name)
		}
	case []any:
		for _, name := range n {
			out = append(out, fmt.Sprint(name))
		}
	}
	if len(out) == 0 {
		out = []string{"default"}
	}
	slices.Sort(out)
	return out
}

// dependsOn is the condition on which s waits for dep ("" when it does not).
func (s service) dependsOn(dep string) string {
	deps, _ := s["depends_on"].(map[string]any)
	d, _ := deps[dep].(map[string]any)
	if d == nil {
		return ""
	}
	return fmt.Sprint(d["condition"])
}

// clusterProfile is compose's output with --profile cluster.
func clusterProfile(t *testing.T) (map[string]service, composeDoc) {
	t.Helper()
	doc := composeFile(t, ".env.example", "cluster")
	services := map[string]service{}
	for name, s := range doc.Services {
		m, _ := s.(map[string]any)
		services[name] = m
	}
	for _, name := range append([]string{"postgres", "balancer", "check-cluster-config"}, clusterInstances...) {
		if services[name] == nil {
			t.Fatalf("the cluster profile has no service %s", name)
		}
	}
	return services, doc
}

// subnet is a network's fixed subnet in compose's output (invalid when
// it has none).
func subnet(doc composeDoc, network string) netip.Prefix {
	n, _ := doc.Networks[network].(map[string]any)
	ipam, _ := n["ipam"].(map[string]any)
	configs, _ := ipam["config"].([]any)
	for _, c := range configs {
		c, _ := c.(map[string]any)
		if p, err := netip.ParsePrefix(fmt.Sprint(c["subnet"])); err == nil {
			return p
		}
	}
	return netip.Prefix{}
}

// The cluster profile's instances share a Postgres registry (its password
// out of the DSN), the MQTT client id base, the share group and the
// cluster settings; each has its own data volume; neither is published;
// both trust the balancer's network as a proxy, and nothing else.
func TestComposeClusterInstances(t *testing.T) {
	services, doc := clusterProfile(t)
	example := envExample(t)
	shared := []string{"PATIENTPULSE_DB", "PGPASSWORD", "PATIENTPULSE_MQTT_CLIENT_ID", "PATIENTPULSE_MQTT_SHARE_GROUP",
		"PATIENTPULSE_CLUSTER_PARTITIONS", "PATIENTPULSE_CLUSTER_SESSIONS", "PATIENTPULSE_CLUSTER_HEARTBEAT",
		"PATIENTPULSE_CLUSTER_LEASE_TTL", "PATIENTPULSE_TRUSTED_PROXIES", "PATIENTPULSE_MQTT_URL", "PATIENTPULSE_INFLUX_URL",
		"PATIENTPULSE_INFLUX_BUCKET", "PATIENTPULSE_MQTT_USERNAME"}
	first := services[clusterInstances[0]].env()
	dataVolumes := map[string]string{}
	balancerNets := services["balancer"].networks()
	for _, name := range clusterInstances {
		s := services[name]
		env := s.env()
		for _, k := range shared {
			if env[k] == "" {
				t.Errorf("%s: %s is not set", name, k)
			} else if env[k] != first[k] {
				t.Errorf("%s: %s is %q, %s has %q: the instances must agree", name, k, env[k], clusterInstances[0], first[k])
			}
		}
		u, err := url.Parse(env["PATIENTPULSE_DB"])
		if err != nil || u.Scheme != "postgres" || u.Hostname() != "postgres" {
			t.Errorf("%s: PATIENTPULSE_DB is not the postgres service's (postgres://...@postgres:5432/...)", name)
		} else if _, ok := u.User.Password(); ok {
			t.Errorf("%s: PATIENTPULSE_DB carries the password: give it in PGPASSWORD", name)
		}
		if env["PGPASSWORD"] != example["POSTGRES_PASSWORD"] {
			t.Errorf("%s: PGPASSWORD is not POSTGRES_PASSWORD from .env", name)
		}
		if s.dependsOn("postgres") != "service_healthy" {
			t.Errorf("%s does not wait for postgres to be healthy", name)
		}
		if s.dependsOn("check-cluster-config") != "service_completed_successfully" {
			t.Errorf("%s does not wait for check-cluster-config", name)
		}
		if s["build"] == nil || fmt.Sprint(s["build"]) != fmt.Sprint(services["patientpulse"]["build"]) {
			t.Errorf("%s is not built as the patientpulse service is: %v", name, s["build"])
		}
		if p := ports(t, map[string]any(s)); len(p) > 0 {
			t.Errorf("%s publishes %v: only the balancer should", name, p)
		}
		for _, m := range s.mounts() {
			if m.target == "/data" {
				if other, ok := dataVolumes[m.source]; ok {
					t.Errorf("%s and %s share the data volume %s", name, other, m.source)
				}
				dataVolumes[m.source] = name
			}
		}

		// Every network the balancer is on is trusted, and nothing wider
		// than the networks themselves.
		proxies := commaSplit(env["PATIENTPULSE_TRUSTED_PROXIES"])
		for _, net := range balancerNets {
			sub := subnet(doc, net)
			if !sub.IsValid() {
				t.Errorf("the balancer's network %s has no fixed subnet: the instances cannot name it in --trusted-proxies", net)
				continue
			}
			if !slices.Contains(s.networks(), net) {
				t.Errorf("%s is not on the balancer's network %s", name, net)
			}
			covered := false
			for _, p := range proxies {
				if pp, err := netip.ParsePrefix(p); err == nil && pp.Contains(sub.Addr()) && pp.Bits() <= sub.Bits() {
					covered = true
				}
			}
			if !covered {
				t.Errorf("%s: --trusted-proxies %q does not cover the balancer's network %s (%s)", name, proxies, net, sub)
			}
		}
		for _, p := range proxies {
			pp, err := netip.ParsePrefix(p)
			if err != nil {
				t.Errorf("%s: trusted proxy %q is not a CIDR", name, p)
				continue
			}
			if sub := subnet(doc, "cluster"); !sub.IsValid() || pp.Bits() < sub.Bits() || !sub.Contains(pp.Addr()) {
				t.Errorf("%s trusts %s, wider than the cluster network %s: anyone there could name any client", name, pp, sub)
			}
		}
	}
	if len(dataVolumes) != len(clusterInstances) {
		t.Errorf("data volumes %v: want one per instance", dataVolumes)
	}
}

// commaSplit splits a comma-separated list.
func commaSplit(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Postgres is the official image with a volume and a healthcheck, on the
// cluster network only; the balancer is the official HAProxy image with
// deploy/haproxy/haproxy.cfg, published where patientpulse is (the
// loopback), and sends to exactly the instances.
func TestComposeClusterServices(t *testing.T) {
	services, _ := clusterProfile(t)
	pg := services["postgres"]
	if img := fmt.Sprint(pg["image"]); img != "postgres:15" {
		t.Errorf("postgres image %s, want postgres:15", img)
	}
	if pg["healthcheck"] == nil {
		t.Error("postgres has no healthcheck: the instances cannot wait for it")
	}
	var data bool
	for _, m := range pg.mounts() {
		data = data || m.target == "/var/lib/postgresql/data"
	}
	if !data {
		t.Error("postgres keeps its data in no volume")
	}
	if p := ports(t, map[string]any(pg)); len(p) > 0 {
		t.Errorf("postgres publishes %v", p)
	}
	for name, s := range services {
		profiles, _ := s["profiles"].([]any)
		inCluster := slices.ContainsFunc(profiles, func(p any) bool { return p == "cluster" })
		if want := name == "postgres" || name == "balancer" || name == "check-cluster-config" || name == "prometheus-cluster" ||
			slices.Contains(clusterInstances, name); want != inCluster {
			t.Errorf("%s: in the cluster profile %v, want %v", name, inCluster, want)
		}
	}

	lb := services["balancer"]
	if img := fmt.Sprint(lb["image"]); !strings.HasPrefix(img, "haproxy:") {
		t.Errorf("balancer image %s, want the official haproxy", img)
	}
	var cfg bool
	for _, m := range lb.mounts() {
		cfg = cfg || (m.target == "/usr/local/etc/haproxy/haproxy.cfg" && m.readOnly &&
			strings.HasSuffix(m.source, filepath.Join("deploy", "haproxy", "haproxy.cfg")))
	}
	if !cfg {
		t.Errorf("the balancer does not mount deploy/haproxy/haproxy.cfg read-only: %v", lb.mounts())
	}
	p := ports(t, map[string]any(lb))
	if len(p) != 1 || p[0].hostIP != "127.0.0.1" || p[0].port != "8080" {
		t.Fatalf("balancer publishes %v, want 8080 on 127.0.0.1 only (where patientpulse would)", p)
	}

	hc := readHAProxy(t)
	if hc.bind != p[0].target {
		t.Errorf("haproxy.cfg binds :%s, the balancer publishes %s", hc.bind, p[0].target)
	}
	var want []string
	for _, name := range clusterInstances {
		want = append(want, name+":8080")
		if !strings.HasSuffix(services[name].env()["PATIENTPULSE_HTTP_ADDR"], ":8080") {
			t.Errorf("%s does not listen on 8080", name)
		}
		if lb.dependsOn(name) == "" {
			t.Errorf("the balancer does not start after %s", name)
		}
	}
	if !slices.Equal(hc.servers, want) {
		t.Errorf("haproxy.cfg sends to %v, want %v", hc.servers, want)
	}
	for _, d := range []string{"option forwardfor", "http-request del-header X-Forwarded-For", "option httpchk GET /readyz", "timeout tunnel"} {
		if !hc.has(d) {
			t.Errorf("haproxy.cfg lacks %q", d)
		}
	}
}

// haproxyConfig is what the tests read of deploy/haproxy/haproxy.cfg.
type haproxyConfig struct {
	lines   []string // every directive, comments and indentation dropped
	bind    string   // the frontend's port
	servers []string // the backend's servers' addresses
}

func (c haproxyConfig) has(prefix string) bool {
	return slices.ContainsFunc(c.lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
}

func readHAProxy(t *testing.T) haproxyConfig {
	t.Helper()
	f, err := os.Open(filepath.Join("haproxy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var c haproxyConfig
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		c.lines = append(c.lines, strings.Join(fields, " "))
		switch {
		case fields[0] == "bind" && len(fields) > 1:
			_, c.bind, _ = strings.Cut(fields[1], ":")
		case fields[0] == "server" && len(fields) > 2:
			c.servers = append(c.servers, fields[2])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

// A clinic's .env from before the cluster profile has no POSTGRES_*
// settings: the one-instance stack must still start (compose resolves
// every service's variables, even those of a profile not in use), and
// check-cluster-config, not compose, refuses a missing or placeholder
// POSTGRES_PASSWORD.
func TestComposeWithoutClusterSettings(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	var old []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "POSTGRES_") {
			old = append(old, line)
		}
	}
	envFile := filepath.Join(t.TempDir(), "old.env")
	if err := os.WriteFile(envFile, []byte(strings.Join(old, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := composeFile(t, envFile)
	pp, _ := doc.Services["patientpulse"].(map[string]any)
	if env := service(pp).env(); env["PATIENTPULSE_DB"] != "" || env["PATIENTPULSE_TRUSTED_PROXIES"] != "" {
		t.Errorf("the one-instance patientpulse has cluster settings: %v", env)
	}

	code, out := checkConfig(t, map[string]string{"SECRETS": "POSTGRES_PASSWORD", "CHECK_CERTS": "no"}, t.TempDir())
	if code == 0 || !strings.Contains(out, "POSTGRES_PASSWORD is not set") {
		t.Errorf("check-cluster-config without POSTGRES_PASSWORD: exit %d:\n%s", code, out)
	}
	code, out = checkConfig(t, map[string]string{"SECRETS": "POSTGRES_PASSWORD", "CHECK_CERTS": "no",
		"POSTGRES_PASSWORD": envExample(t)["POSTGRES_PASSWORD"]}, t.TempDir())
	if code == 0 || !strings.Contains(out, "POSTGRES_PASSWORD is still the placeholder") {
		t.Errorf("check-cluster-config with .env.example's POSTGRES_PASSWORD: exit %d:\n%s", code, out)
	}
	code, out = checkConfig(t, map[string]string{"SECRETS": "POSTGRES_PASSWORD", "CHECK_CERTS": "no",
		"POSTGRES_PASSWORD": "4b9d0c2e7f1a3b5c6d8e9f0a1b2c3d4e"}, t.TempDir())
	if code != 0 {
		t.Errorf("check-cluster-config with a generated POSTGRES_PASSWORD and no certificates: exit %d:\n%s", code, out)
	}

	services, _ := clusterProfile(t)
	env := services["check-cluster-config"].env()
	if env["SECRETS"] != "POSTGRES_PASSWORD" || env["POSTGRES_PASSWORD"] != envExample(t)["POSTGRES_PASSWORD"] {
		t.Errorf("check-cluster-config does not check POSTGRES_PASSWORD from .env: %v", env["SECRETS"])
	}
	for _, name := range append([]string{"postgres"}, clusterInstances...) {
		if services[name].dependsOn("check-cluster-config") != "service_completed_successfully" {
			t.Errorf("%s does not wait for check-cluster-config", name)
		}
	}
}

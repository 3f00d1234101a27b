package deploy

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// scrapeConfig is what the tests read of a Prometheus configuration.
type scrapeConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		Scheme        string `yaml:"scheme"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// targets is each job's targets, in order.
func (c scrapeConfig) targets() map[string][]string {
	out := map[string][]string{}
	for _, j := range c.ScrapeConfigs {
		for _, s := range j.StaticConfigs {
			out[j.JobName] = append(out[j.JobName], s.Targets...)
		}
	}
	return out
}

// prometheusConfig reads the file a Prometheus service of compose's
// output mounts read-only where its --config.file says; it returns the
// configuration and the file's path relative to deploy/.
func prometheusConfig(t *testing.T, name string, s service) (scrapeConfig, string) {
	t.Helper()
	if s == nil {
		t.Fatalf("no service %s", name)
	}
	var path string
	cmd, _ := s["command"].([]any)
	for _, a := range cmd {
		if v, ok := strings.CutPrefix(fmt.Sprint(a), "--config.file="); ok {
			path = v
		}
	}
	var file string
	for _, m := range s.mounts() {
		if m.target == path && m.readOnly {
			file = m.source
		}
	}
	rel, err := filepath.Rel(mustAbs(t, "."), file)
	if path == "" || file == "" || err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("%s does not mount a file of deploy/ read-only at its --config.file %q: %v", name, path, s.mounts())
	}
	b, err := os.ReadFile(rel)
	if err != nil {
		t.Fatal(err)
	}
	var c scrapeConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return c, rel
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// httpTarget is a patientpulse service's /metrics address as its
// Prometheus names it: the service's name and the port of
// PATIENTPULSE_HTTP_ADDR.
func httpTarget(t *testing.T, name string, s service) string {
	t.Helper()
	_, port, err := net.SplitHostPort(s.env()["PATIENTPULSE_HTTP_ADDR"])
	if err != nil {
		t.Fatalf("%s: PATIENTPULSE_HTTP_ADDR: %v", name, err)
	}
	return net.JoinHostPort(name, port)
}

// dashboardJobs is every job the Grafana dashboards select (job="...").
func dashboardJobs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "dashboards", "grafana", "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Grafana dashboards: %v", err)
	}
	re := regexp.MustCompile(`job=\\"([^"\\]+)\\"`)
	var jobs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(jobs, m[1]) {
				jobs = append(jobs, m[1])
			}
		}
	}
	return jobs
}

// grafanaDatasource is the host and port of the Grafana data source's URL.
func grafanaDatasource(t *testing.T) (host, port string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "dashboards", "grafana", "provisioning", "datasources", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Datasources []struct {
			URL string `yaml:"url"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &ds); err != nil || len(ds.Datasources) != 1 {
		t.Fatalf("the Grafana data source: %v (%d)", err, len(ds.Datasources))
	}
	u, err := url.Parse(ds.Datasources[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname(), u.Port()
}

// Each stack's Prometheus scrapes the patientpulse instances that stack
// runs, and none that it does not (a target that never answers is an
// `up == 0` that cannot be told from a dead instance): the one-instance
// prometheus patientpulse, the cluster profile's prometheus-cluster pp-a
// and pp-b, both under the job the dashboards select.
func TestPrometheusScrapeTargets(t *testing.T) {
	one := map[string]service{}
	for name, s := range composeConfig(t) {
		m, _ := s.(map[string]any)
		one[name] = m
	}
	cluster, _ := clusterProfile(t)
	jobs := dashboardJobs(t)
	if len(jobs) == 0 {
		t.Fatal("the dashboards select no job: this test reads job=\"...\" out of them")
	}

	var instances []string
	for _, name := range clusterInstances {
		instances = append(instances, httpTarget(t, name, cluster[name]))
		if got := cluster[name].env()["PATIENTPULSE_CLUSTER_ADDRESS"]; got != instances[len(instances)-1] {
			t.Errorf("%s announces itself as %q in the cluster, Prometheus would scrape %s", name, got, instances[len(instances)-1])
		}
	}
	for _, tc := range []struct {
		name     string
		services map[string]service
		want     []string // the patientpulse job's targets
		others   []string // targets of patientpulse services this stack does not run
	}{
		{"prometheus", one, []string{httpTarget(t, "patientpulse", one["patientpulse"])}, instances},
		{"prometheus-cluster", cluster, instances, []string{httpTarget(t, "patientpulse", one["patientpulse"])}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, file := prometheusConfig(t, tc.name, tc.services[tc.name])
			targets := c.targets()
			for _, job := range jobs {
				if got := targets[job]; !slices.Equal(got, tc.want) {
					t.Errorf("%s: job %s scrapes %v, want %v", file, job, got, tc.want)
				}
			}
			for _, j := range c.ScrapeConfigs {
				if slices.Contains(jobs, j.JobName) && ((j.MetricsPath != "" && j.MetricsPath != "/metrics") || (j.Scheme != "" && j.Scheme != "http")) {
					t.Errorf("%s: job %s scrapes %s://...%s, want http://...:8080/metrics", file, j.JobName, j.Scheme, j.MetricsPath)
				}
				for _, sc := range j.StaticConfigs {
					for _, target := range sc.Targets {
						if slices.Contains(tc.others, target) {
							t.Errorf("%s: job %s scrapes %s, which this stack does not run", file, j.JobName, target)
						}
					}
				}
			}
			p := ports(t, map[string]any(tc.services[tc.name]))
			if len(p) != 1 || p[0].hostIP != "127.0.0.1" || p[0].port != "9090" || p[0].target != "9090" {
				t.Errorf("%s publishes %v, want 9090 on 127.0.0.1 only", tc.name, p)
			}
		})
	}

	// Grafana's data source reaches prometheus-cluster by the name and port
	// it reaches the one-instance prometheus by.
	host, port := grafanaDatasource(t)
	if host != "prometheus" || port != "9090" {
		t.Errorf("the Grafana data source is %s:%s, want prometheus:9090", host, port)
	}
	pc := cluster["prometheus-cluster"]
	nets, _ := pc["networks"].(map[string]any)
	aliased := false
	for _, net := range cluster["grafana"].networks() {
		n, _ := nets[net].(map[string]any)
		aliases, _ := n["aliases"].([]any)
		aliased = aliased || slices.Contains(aliases, any(host))
	}
	if !aliased {
		t.Errorf("prometheus-cluster is not %q on a network of Grafana's (%v): networks %v", host, cluster["grafana"].networks(), nets)
	}
	for _, name := range clusterInstances {
		shared := slices.ContainsFunc(pc.networks(), func(n string) bool { return slices.Contains(cluster[name].networks(), n) })
		if !shared {
			t.Errorf("prometheus-cluster shares no network with %s", name)
		}
	}
}

// The README's command for the cluster profile names the services it
// starts; with what they wait for, they include prometheus-cluster and
// Grafana, and neither the one-instance patientpulse nor its Prometheus.
func TestClusterStartsWithoutOneInstance(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`docker compose --profile cluster up -d --build ([a-z0-9 -]+)`)
	m := re.FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("README.md has no `docker compose --profile cluster up -d --build ...`")
	}
	services, _ := clusterProfile(t)
	started := map[string]bool{}
	var start func(string)
	start = func(name string) {
		if started[name] {
			return
		}
		started[name] = true
		s, ok := services[name]
		if !ok {
			t.Errorf("README.md starts %s, which the cluster profile does not have", name)
			return
		}
		deps, _ := s["depends_on"].(map[string]any)
		for dep := range deps {
			start(dep)
		}
	}
	for _, name := range strings.Fields(m[1]) {
		start(name)
	}
	for _, name := range append([]string{"balancer", "prometheus-cluster", "grafana"}, clusterInstances...) {
		if !started[name] {
			t.Errorf("README.md's %q does not start %s", m[0], name)
		}
	}
	for _, name := range []string{"patientpulse", "prometheus"} {
		if started[name] {
			t.Errorf("README.md's %q starts the one-instance %s (through depends_on)", m[0], name)
		}
	}
}

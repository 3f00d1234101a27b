package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/patientpulse/patientpulse/internal/testservices"
)

// composeConfig is `docker-compose --env-file .env.example config` (or
// `docker compose`), decoded: the file as compose itself reads it.
func composeConfig(t *testing.T) map[string]any {
	t.Helper()
	return composeFile(t, ".env.example").Services
}

// composeDoc is the part of compose's output the tests read.
type composeDoc struct {
	Services map[string]any `yaml:"services"`
	Networks map[string]any `yaml:"networks"`
}

// composeFile is `docker-compose --env-file envFile [--profile p]... config`
// (envFile relative to the repository's root, or absolute), decoded.
func composeFile(t *testing.T, envFile string, profiles ...string) composeDoc {
	t.Helper()
	args := []string{"--env-file", envFile}
	for _, p := range profiles {
		args = append(args, "--profile", p)
	}
	args = append(args, "config")
	var cmd *exec.Cmd
	if bin, err := exec.LookPath("docker-compose"); err == nil {
		cmd = exec.Command(bin, args...)
	} else if bin, err := exec.LookPath("docker"); err == nil && exec.Command(bin, "compose", "version").Run() == nil {
		cmd = exec.Command(bin, append([]string{"compose"}, args...)...)
	} else {
		testservices.Require(t, fmt.Errorf("docker-compose (make tools): %w", testservices.ErrMissingBinary))
	}
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.String())
	}
	var doc composeDoc
	if err := yaml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("compose config: %v", err)
	}
	return doc
}

// published is one port a service publishes on the host.
type published struct{ hostIP, port, target string }

// ports reads a service's ports in either form compose prints: the short
// "ip:published:target/proto" (docker-compose 1.x) or the long mapping
// (docker compose 2.x).
func ports(t *testing.T, service any) []published {
	t.Helper()
	list, _ := service.(map[string]any)["ports"].([]any)
	var out []published
	for _, p := range list {
		switch p := p.(type) {
		case string:
			p, _, _ = strings.Cut(p, "/")
			parts := strings.Split(p, ":")
			switch len(parts) {
			case 3:
				out = append(out, published{parts[0], parts[1], parts[2]})
			case 2:
				out = append(out, published{"", parts[0], parts[1]})
			default:
				out = append(out, published{"", parts[0], parts[0]})
			}
		case map[string]any:
			out = append(out, published{fmt.Sprint(p["host_ip"]), fmt.Sprint(p["published"]), fmt.Sprint(p["target"])})
		}
	}
	for i := range out {
		if out[i].hostIP == "<nil>" {
			out[i].hostIP = ""
		}
	}
	return out
}

// Plain MQTT and HTTP are published on the loopback only; MQTT over TLS
// on 8883 is published; nothing starts before check-config has passed.
func TestComposePublishing(t *testing.T) {
	services := composeConfig(t)
	want := map[string]map[string]string{ // service -> target port -> host address ("*": any)
		"mosquitto":    {"1883": "127.0.0.1", "8883": "*"},
		"patientpulse": {"8080": "127.0.0.1"},
		"influxdb":     {"8086": "127.0.0.1"},
		"prometheus":   {"9090": "127.0.0.1"},
		"grafana":      {"3000": "127.0.0.1"},
	}
	for name, targets := range want {
		s, ok := services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		got := map[string]string{}
		for _, p := range ports(t, s) {
			got[p.target] = p.hostIP
			switch w, ok := targets[p.target]; {
			case !ok:
				t.Errorf("%s publishes %s, which it should not", name, p.target)
			case w != "*" && p.hostIP != w:
				t.Errorf("%s publishes %s on %q, want %s only", name, p.target, p.hostIP, w)
			}
		}
		for target := range targets {
			if _, ok := got[target]; !ok {
				t.Errorf("%s does not publish %s", name, target)
			}
		}
	}

	for name, s := range services {
		if name == "check-config" {
			continue
		}
		deps, _ := s.(map[string]any)["depends_on"].(map[string]any)
		dep, _ := deps["check-config"].(map[string]any)
		if dep["condition"] != "service_completed_successfully" {
			t.Errorf("%s does not wait for check-config to succeed (depends_on: %v)", name, deps)
		}
	}

	vols, _ := services["mosquitto"].(map[string]any)["volumes"].([]any)
	var certs bool
	for _, v := range vols {
		if s, ok := v.(string); ok && strings.Contains(s, "deploy/mosquitto/certs:/mosquitto/certs:ro") {
			certs = true
		}
		if m, ok := v.(map[string]any); ok && m["target"] == "/mosquitto/certs" && strings.HasSuffix(fmt.Sprint(m["source"]), "deploy/mosquitto/certs") {
			certs = true
		}
	}
	if !certs {
		t.Errorf("mosquitto does not mount deploy/mosquitto/certs at /mosquitto/certs read-only: %v", vols)
	}
}

// The broker's configuration has a TLS listener on 8883 whose files are
// those mounted from deploy/mosquitto/certs.
func TestMosquittoTLSListener(t *testing.T) {
	f, err := os.Open(filepath.Join("mosquitto", "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listeners := map[string]map[string]string{} // port -> setting -> value
	var current map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if fields[0] == "listener" {
			current = map[string]string{}
			listeners[fields[1]] = current
			continue
		}
		if current != nil {
			current[fields[0]] = fields[1]
		}
	}
	if _, ok := listeners["1883"]; !ok {
		t.Error("no listener 1883")
	}
	tls, ok := listeners["8883"]
	if !ok {
		t.Fatal("no listener 8883")
	}
	for setting, path := range map[string]string{"certfile": "/mosquitto/certs/server.crt",
		"keyfile": "/mosquitto/certs/server.key", "cafile": "/mosquitto/certs/ca.crt"} {
		if tls[setting] != path {
			t.Errorf("listener 8883: %s %q, want %s", setting, tls[setting], path)
		}
	}
	if _, err := os.Stat(filepath.Join("mosquitto", "certs", "README.md")); err != nil {
		t.Errorf("the certificate directory's README: %v", err)
	}
}

// envExample reads .env.example's settings.
func envExample(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env
}

// checkConfig runs check-config.sh with env and the certificate directory
// certs; it returns the exit code and everything it printed.
func checkConfig(t *testing.T, env map[string]string, certs string) (int, string) {
	t.Helper()
	cmd := exec.Command("sh", "check-config.sh")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "CERTS_DIR=" + certs}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// check-config refuses .env.example's placeholders, short secrets and a
// missing certificate, names each problem, and quotes no secret.
func TestCheckConfigRefusesPlaceholders(t *testing.T) {
	secrets := []string{"MOSQUITTO_ADMIN_PASSWORD", "MOSQUITTO_PIPELINE_PASSWORD", "INFLUXDB_ADMIN_PASSWORD", "INFLUXDB_TOKEN", "GRAFANA_ADMIN_PASSWORD"}
	certs := t.TempDir()
	for _, f := range []string{"ca.crt", "server.crt", "server.key"} {
		if err := os.WriteFile(filepath.Join(certs, f), []byte("PEM\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	good := map[string]string{}
	for i, k := range secrets {
		good[k] = fmt.Sprintf("9f3c1e7a2b5d4c6e8a0b1c2d3e4f5a6b%d", i)
	}

	example := envExample(t)
	code, out := checkConfig(t, example, certs)
	if code == 0 {
		t.Fatalf("check-config passed .env.example's secrets:\n%s", out)
	}
	for _, k := range secrets {
		if !strings.Contains(out, k+" is still the placeholder") {
			t.Errorf("check-config does not name %s as a placeholder:\n%s", k, out)
		}
		if v := example[k]; v != "" && strings.Contains(out, v) {
			t.Errorf("check-config quotes %s's value:\n%s", k, out)
		}
	}

	short := map[string]string{}
	for k, v := range good {
		short[k] = v
	}
	short["MOSQUITTO_PIPELINE_PASSWORD"] = "Xy7-short"
	delete(short, "GRAFANA_ADMIN_PASSWORD")
	code, out = checkConfig(t, short, certs)
	if code == 0 || !strings.Contains(out, "MOSQUITTO_PIPELINE_PASSWORD is too short") ||
		!strings.Contains(out, "GRAFANA_ADMIN_PASSWORD is not set") || strings.Contains(out, "Xy7-short") {
		t.Errorf("check-config with a short and a missing secret: exit %d:\n%s", code, out)
	}

	code, out = checkConfig(t, good, t.TempDir())
	if code == 0 || !strings.Contains(out, "server.key is missing") || !strings.Contains(out, "mqtt-certs.sh") {
		t.Errorf("check-config without certificates: exit %d:\n%s", code, out)
	}

	if code, out := checkConfig(t, good, certs); code != 0 {
		t.Errorf("check-config with generated secrets and a certificate: exit %d:\n%s", code, out)
	}
}

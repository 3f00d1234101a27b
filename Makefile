# patientpulse: `make demo` runs the whole thing, `make test` runs every test.
GO ?= go
BIN := bin/patientpulse
COMPOSE ?= docker-compose

.PHONY: all build web test test-postgres tools check-compose demo services services-stop fuzz bench clean

all: build

# Long steps say what they do and how long they usually take
# (scripts/progress.sh), and every 20 seconds that they are still at it.
PROGRESS := bash scripts/progress.sh

build: web
	@$(PROGRESS) "building patientpulse ($(BIN)) with go build" \
		"1-3 minutes the first time, while Go downloads and compiles the modules; seconds after" \
		$(GO) build -trimpath -o $(BIN) ./cmd/patientpulse

# web installs the web app's charting library (uPlot, pinned by
# dashboards/package-lock.json) from npm and copies its bundle into
# dashboards/web/vendor/, which the binary embeds; nothing is fetched at
# run time. A binary built without it serves a page that says to run this.
WEB_VENDOR := dashboards/web/vendor
web:
	@command -v npm >/dev/null || bash scripts/services.sh apt-install npm
	@$(PROGRESS) "installing the web app's charting library (uPlot) and the browser tests' accessibility checker (axe-core) with npm ci" \
		"10-30 seconds the first time, to download it; a few seconds after" \
		sh -c "cd dashboards && npm ci --no-audit --no-fund"
	mkdir -p $(WEB_VENDOR)
	cp dashboards/node_modules/uplot/dist/uPlot.iife.min.js dashboards/node_modules/uplot/dist/uPlot.min.css $(WEB_VENDOR)/

# tools installs what the tests need when it is missing: Mosquitto (and
# its clients) from Debian's packages, influxd 1.8.10 and mailpit 1.33.1
# with go install, Debian's docker-compose to validate docker-compose.yml,
# Debian's haproxy to check and run deploy/haproxy/haproxy.cfg (in
# /usr/sbin, off some users' PATH), Debian's chromium for the browser
# tests, and Debian's poppler-utils (pdftotext, pdftoppm), with which they
# read the visit report's PDF and draw its first page.
tools:
	bash scripts/services.sh install
	@command -v docker-compose >/dev/null || bash scripts/services.sh apt-install docker-compose
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || bash scripts/services.sh apt-install haproxy
	@command -v chromium >/dev/null || bash scripts/services.sh apt-install chromium
	@command -v pdftoppm >/dev/null || bash scripts/services.sh apt-install poppler-utils

# REGISTRY_PKGS are the packages whose tests open a registry (through
# testservices.RegistryDSN, or cmd/patientpulse's --db): `make test` runs
# them a second time with it on Postgres (registry/ runs both on its own),
# where a postgres:// --db makes serve join a cluster (the partition feed,
# leases, fenced writes). So that the whole CI stays under 30 minutes on a
# 2-core machine, cmd/patientpulse's second run takes only the tests in
# POSTGRES_CMD_RUN: the registry through serve and the admin commands
# (roles and every endpoint, staff, plans, alerts to consoles and mail,
# ingest in every format, degraded starts, a killed instance's deliveries);
# `make test-postgres` runs all of it on Postgres, leaving out only
# POSTGRES_SKIP: the cluster tests (on Postgres in the first run already),
# the measurements (bench, and the opt-in outage memory test), and those
# that keep SQLite by nature.
REGISTRY_PKGS = ./alerts ./analysis ./api ./auth ./notify ./server
POSTGRES_CMD_RUN = ^(TestEveryRoleEveryEndpoint|TestStaff.*|TestPatientNames|TestPlansCommands|TestPlanChangeKeepsMonitoring|TestSilenceCountsFromStoredSample|TestPlanRuleFiresAndClears|TestHematocritRuleFiresFromFHIRLab|TestAlertsReachWebsockets|TestWebsocket.*|TestPagingByMail|TestAdminRegistryLineHidesPassword|TestServeUsesTestRegistry|TestMQTTSamplesStoredUnderPatient|TestHTTPIngestStatuses|TestFHIROverHTTPS|TestOpenMHealthOverHTTPS|TestWebhookDeliveriesSurviveKill|TestServeStartsWhile.*|TestMQTTDeviceRateLimit)$$
POSTGRES_SKIP = ^(TestCluster.*|TestBenchCommand|TestOutageMemory|TestReadyzRegistryCannotWrite|TestRegistryCopyCommand|TestAdminCommandsNeedARegistry)$$

# test runs every test against real Mosquitto, InfluxDB and Mailpit
# processes that the tests start on free loopback ports, in three lanes at
# once (scripts/test.sh says which): all with the race detector but the
# two longest, which mostly wait.
test: tools check-compose web
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$out" ]; then echo "gofmt needed on: $$out"; exit 1; fi
	$(GO) vet ./...
	@GO="$(GO)" REGISTRY_PKGS="$(REGISTRY_PKGS)" POSTGRES_CMD_RUN='$(POSTGRES_CMD_RUN)' bash scripts/test.sh

test-postgres: tools web
	PP_TEST_REGISTRY=postgres $(GO) test -race -count=1 -timeout 30m -skip '$(POSTGRES_SKIP)' $(REGISTRY_PKGS) ./cmd/patientpulse

check-compose:
	$(COMPOSE) --env-file .env.example config -q
	$(COMPOSE) --profile cluster --env-file .env.example config -q

# demo starts the local services, the pipeline and a simulated clinic, and
# prints the dashboard address and the demo logins. Ctrl-C stops everything
# it started. Its first run also builds a Mailpit with its web UI
# (scripts/services.sh install-ui, 1-3 minutes, once); the tests need only
# the API of the one that tools installs.
demo: tools web build
	bash scripts/demo.sh

services: tools
	bash scripts/services.sh start

services-stop:
	bash scripts/services.sh stop

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./ingest/

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin dashboards/node_modules $(WEB_VENDOR)

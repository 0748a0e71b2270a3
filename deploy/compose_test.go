package deploy_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
)

// The stack's services by kind. Jobs run once and exit; the others stay up
// and carry a healthcheck and a restart policy.
var (
	jobs = []string{
		"temporal-schema", "temporal-namespace", "temporal-search-attributes",
		"minio-setup", "exportd-migrate",
	}
	longRunning = []string{
		"postgres", "temporal", "temporal-ui", "minio", "exportd-worker", "exportd-api",
	}
	// exportdServices maps each exportd service to its subcommand.
	exportdServices = map[string]string{
		"exportd-migrate": "migrate",
		"exportd-worker":  "worker",
		"exportd-api":     "api",
	}
	// s3Names are what the worker and the API read to reach the bucket.
	s3Names = []string{
		"EXPORTD_BLOB_BACKEND", "EXPORTD_S3_ENDPOINT", "EXPORTD_S3_BUCKET", "EXPORTD_S3_ACCESS_KEY",
		"EXPORTD_S3_SECRET_KEY", "EXPORTD_S3_REGION", "EXPORTD_S3_USE_SSL",
	}
)

// testMasterKey stands in for the one setting without a default.
var testMasterKey = strings.Repeat("ab", 32)

// loadCompose reads docker-compose.yml with Compose's own loader
// (compose-go, which docker compose uses): schema validation, anchors and
// merge keys, interpolation with env as the environment, paths resolved
// against the repository, depends_on checked to name services.
func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	root := repoRoot(t)
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: env,
	}, func(o *loader.Options) { o.SetProjectName("exportd", true) })
}

// project is the stack as `docker compose up` would see it with only the
// master key set: every other variable takes its default.
func project(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadCompose(t, map[string]string{"EXPORTD_MASTER_KEY": testMasterKey})
	require.NoError(t, err, "docker-compose.yml")
	require.NotEmpty(t, p.Services, "docker-compose.yml has no services")
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	require.True(t, ok, "service %s is missing", name)
	return s
}

// env is a service's environment after interpolation.
func env(s types.ServiceConfig) map[string]string {
	m := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			m[k] = *v
		}
	}
	return m
}

// script is the service's entrypoint and command as one string, for
// looking into what a job runs.
func script(s types.ServiceConfig) string {
	return strings.Join(append(slices.Clone([]string(s.Entrypoint)), s.Command...), " ")
}

func TestComposeMasterKeyRequired(t *testing.T) {
	_, err := loadCompose(t, map[string]string{})
	require.Error(t, err, "the stack must refuse to start without EXPORTD_MASTER_KEY")
	require.ErrorContains(t, err, "EXPORTD_MASTER_KEY")
	p := project(t)
	for _, name := range []string{"exportd-worker", "exportd-api"} {
		require.Equal(t, testMasterKey, env(service(t, p, name))["EXPORTD_MASTER_KEY"], name)
	}
}

func TestComposeServices(t *testing.T) {
	p := project(t)
	for _, name := range jobs {
		if s := service(t, p, name); !isJob(s) {
			t.Errorf("job %s: restart %q would run it again after it completes; want \"no\" or on-failure", name, s.Restart)
		}
	}
	for _, name := range longRunning {
		s := service(t, p, name)
		if !hasHealthcheck(s) {
			t.Errorf("service %s has no healthcheck", name)
		}
		if s.Restart != types.RestartPolicyAlways && s.Restart != types.RestartPolicyUnlessStopped {
			t.Errorf("service %s: restart %q, want always or unless-stopped", name, s.Restart)
		}
	}

	w := service(t, p, "exportd-worker")
	if w.GetScale() < 2 {
		t.Errorf("exportd-worker: %d replicas, want at least 2", w.GetScale())
	}
	if w.ContainerName != "" {
		t.Error("exportd-worker: container_name prevents running replicas")
	}

	api := service(t, p, "exportd-api")
	if !slices.ContainsFunc(api.Ports, func(pc types.ServicePortConfig) bool { return pc.Target == 8080 }) {
		t.Errorf("exportd-api: port 8080 is not published (ports %+v)", api.Ports)
	}
	if api.HealthCheck == nil || !strings.Contains(strings.Join(api.HealthCheck.Test, " "), "/readyz") {
		t.Error("exportd-api: the healthcheck does not ask /readyz")
	}
}

func isJob(s types.ServiceConfig) bool {
	return s.Restart == types.RestartPolicyNo || s.Restart == "" || strings.HasPrefix(s.Restart, types.RestartPolicyOnFailure)
}

func hasHealthcheck(s types.ServiceConfig) bool {
	h := s.HealthCheck
	return h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] != "NONE"
}

func TestComposeImagesPinned(t *testing.T) {
	p := project(t)
	for name, s := range p.Services {
		if strings.Contains(s.Image, "temporalio/auto-setup") {
			t.Errorf("service %s uses %s: the deprecated auto-setup image; use temporalio/server with the admin-tools jobs", name, s.Image)
		}
		if _, ok := exportdServices[name]; ok {
			if s.Build == nil || filepath.Base(s.Build.Dockerfile) != "Dockerfile" {
				t.Errorf("service %s does not build exportd from the Dockerfile", name)
			}
			continue
		}
		if s.Build != nil {
			t.Errorf("service %s: only the exportd services are built here", name)
		}
		if err := pinned(s.Image); err != nil {
			t.Errorf("service %s: image %q: %v", name, s.Image, err)
		}
	}
	// The exportd services share one image, built once.
	var images []string
	for name := range exportdServices {
		images = append(images, service(t, p, name).Image)
	}
	slices.Sort(images)
	if len(slices.Compact(images)) != 1 || images[0] == "" {
		t.Errorf("exportd services name images %q; want one shared, named image", images)
	}
}

func TestComposeDependencies(t *testing.T) {
	p := project(t)
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			target := p.Services[dep] // the loader refuses unknown services
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if !hasHealthcheck(target) {
					t.Errorf("%s waits for %s to be healthy, which has no healthcheck", name, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if !isJob(target) {
					t.Errorf("%s waits for %s to complete, which is restarted instead", name, dep)
				}
			default:
				// The short list form loads as service_started, which waits
				// for nothing the dependant needs.
				t.Errorf("%s depends on %s with condition %q; want healthy or completed", name, dep, d.Condition)
			}
			if !d.Required {
				t.Errorf("%s depends on %s without required", name, dep)
			}
		}
	}
	// Compose refuses cycles itself; walk the order it would start in.
	order := []string{}
	require.NoError(t, p.ForEachService(nil, func(name string, _ *types.ServiceConfig) error {
		order = append(order, name)
		return nil
	}), "depends_on order")
	require.Len(t, order, len(p.Services))

	const healthy, completed = types.ServiceConditionHealthy, types.ServiceConditionCompletedSuccessfully
	exportd := map[string]string{
		"postgres":                   healthy,
		"exportd-migrate":            completed,
		"temporal":                   healthy,
		"temporal-search-attributes": completed,
		"minio-setup":                completed,
	}
	want := map[string]map[string]string{
		"temporal-schema":            {"postgres": healthy},
		"temporal":                   {"temporal-schema": completed},
		"temporal-namespace":         {"temporal": healthy},
		"temporal-search-attributes": {"temporal-namespace": completed},
		"temporal-ui":                {"temporal": healthy},
		"minio-setup":                {"minio": healthy},
		"exportd-migrate":            {"postgres": healthy},
		"exportd-worker":             exportd,
		"exportd-api":                exportd,
	}
	for name, deps := range want {
		for dep, cond := range deps {
			got, ok := service(t, p, name).DependsOn[dep]
			if !ok || got.Condition != cond {
				t.Errorf("%s must depend on %s with condition %s (has %q)", name, dep, cond, got.Condition)
			}
		}
	}
}

func TestComposeTemporalSetup(t *testing.T) {
	p := project(t)
	worker := env(service(t, p, "exportd-worker"))
	ns := worker["EXPORTD_TEMPORAL_NAMESPACE"]
	if ns == "" {
		ns = "default" // exportd's default
	}
	addr := worker["EXPORTD_TEMPORAL_ADDRESS"]

	sa := script(service(t, p, "temporal-search-attributes"))
	names := append([]string{"ExportMerchant", "ExportDataset", "ExportPhase"}, searchAttributeNames(t)...)
	slices.Sort(names)
	names = slices.Compact(names)
	for _, name := range names {
		re := regexp.MustCompile(`--name\s+` + regexp.QuoteMeta(name) + `\s+--type\s+Keyword\b`)
		if !re.MatchString(sa) {
			t.Errorf("temporal-search-attributes does not register %s as Keyword", name)
		}
	}
	nsJob := script(service(t, p, "temporal-namespace"))
	if !strings.Contains(nsJob, "namespace create") {
		t.Error("temporal-namespace does not create a namespace")
	}
	for job, s := range map[string]string{"temporal-namespace": nsJob, "temporal-search-attributes": sa} {
		if !strings.Contains(s, "--namespace "+ns) {
			t.Errorf("%s does not work on namespace %q, the one exportd uses", job, ns)
		}
		if !strings.Contains(s, "--address "+addr) {
			t.Errorf("%s does not reach Temporal at %q, where exportd does", job, addr)
		}
		// Compose turns $$ into $; a single $ would have been
		// interpolated by Compose, not by the job's shell.
		if strings.Contains(s, "$$") {
			t.Errorf("%s: $$ left after interpolation", job)
		}
	}

	schema, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "temporal", "setup-schema.sh"))
	require.NoError(t, err)
	for _, want := range []string{
		"temporal-sql-tool", "--plugin postgres12", "temporal:temporal", "temporal_visibility:visibility",
		" create", "setup-schema", "update-schema", "/etc/temporal/schema/postgresql/v12",
	} {
		if !strings.Contains(string(schema), want) {
			t.Errorf("setup-schema.sh does not contain %q", want)
		}
	}
	job := service(t, p, "temporal-schema")
	if !strings.Contains(script(job), "setup-schema.sh") || !mounts(job, "deploy/temporal/setup-schema.sh") {
		t.Error("temporal-schema does not run deploy/temporal/setup-schema.sh")
	}

	server := env(service(t, p, "temporal"))
	for k, v := range map[string]string{"DB": "postgres12", "POSTGRES_SEEDS": "postgres", "BIND_ON_IP": "0.0.0.0"} {
		if server[k] != v {
			t.Errorf("temporal: %s = %q, want %q", k, server[k], v)
		}
	}
	for _, k := range []string{"DB_PORT", "POSTGRES_USER", "POSTGRES_PWD", "DYNAMIC_CONFIG_FILE_PATH"} {
		if server[k] == "" {
			t.Errorf("temporal: %s is not set", k)
		}
	}
	if server["POSTGRES_PWD"] != env(job)["SQL_PASSWORD"] {
		t.Error("temporal and temporal-schema use different passwords for the temporal role")
	}
}

// mounts reports whether s bind-mounts the repository file rel.
func mounts(s types.ServiceConfig, rel string) bool {
	return slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeBind && strings.HasSuffix(filepath.ToSlash(v.Source), "/"+rel)
	})
}

// searchAttributeNames reads contract.SearchAttributeNames from its
// source rather than importing the package, so that these checks still run
// while other packages are being edited.
func searchAttributeNames(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(repoRoot(t), "contract", "contract.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	require.NoError(t, err)
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok || len(spec.Names) != 1 || spec.Names[0].Name != "SearchAttributeNames" || len(spec.Values) != 1 {
			return true
		}
		if lit, ok := spec.Values[0].(*ast.CompositeLit); ok {
			for _, e := range lit.Elts {
				if s, ok := e.(*ast.BasicLit); ok && s.Kind == token.STRING {
					name, err := strconv.Unquote(s.Value)
					require.NoError(t, err)
					names = append(names, name)
				}
			}
		}
		return false
	})
	require.NotEmpty(t, names, "no []string{...} literal SearchAttributeNames in %s", path)
	return names
}

// flagLine is a flag in `exportd <command> --help`: its name, then the
// environment variable that stands for it.
var flagLine = regexp.MustCompile(`(?m)^\s+--[a-z0-9-]+\s+(EXPORTD_[A-Z0-9_]+)\s*$`)

// exportdEnv returns, for each subcommand, the EXPORTD_* variables it
// reads, from the help of a freshly built binary.
func exportdEnv(t *testing.T) map[string][]string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err, "the go command is needed to build exportd")
	bin := filepath.Join(t.TempDir(), "exportd")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/exportd")
	build.Dir = repoRoot(t)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./cmd/exportd:\n%s", out)

	env := map[string][]string{}
	for _, cmd := range exportdServices {
		out, err := exec.Command(bin, cmd, "--help").CombinedOutput()
		require.NoError(t, err, "exportd %s --help:\n%s", cmd, out)
		for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
			env[cmd] = append(env[cmd], m[1])
		}
		require.NotEmpty(t, env[cmd], "no EXPORTD_* names in `exportd %s --help`; has its format changed?\n%s", cmd, out)
	}
	return env
}

func TestComposeExportdEnvironment(t *testing.T) {
	p := project(t)
	reads := exportdEnv(t)
	for name, cmd := range exportdServices {
		s := service(t, p, name)
		if got := script(s); got != cmd {
			t.Errorf("%s runs %q, want %q", name, got, cmd)
		}
		e := env(s)
		for k := range e {
			if strings.HasPrefix(k, "EXPORTD_") && !slices.Contains(reads[cmd], k) {
				t.Errorf("%s sets %s, which `exportd %s` does not read (it reads %s)", name, k, cmd, strings.Join(reads[cmd], ", "))
			}
		}
		if e["EXPORTD_DATABASE_URL"] == "" {
			t.Errorf("%s: EXPORTD_DATABASE_URL is not set", name)
		}
		if e["EXPORTD_LOG_FORMAT"] != "json" {
			t.Errorf("%s: EXPORTD_LOG_FORMAT = %q, want json", name, e["EXPORTD_LOG_FORMAT"])
		}
	}

	for _, name := range []string{"exportd-worker", "exportd-api"} {
		e := env(service(t, p, name))
		for _, k := range append([]string{"EXPORTD_TEMPORAL_ADDRESS", "EXPORTD_MASTER_KEY"}, s3Names...) {
			if e[k] == "" {
				t.Errorf("%s: %s is not set", name, k)
			}
		}
		if e["EXPORTD_BLOB_BACKEND"] != "s3" {
			t.Errorf("%s: EXPORTD_BLOB_BACKEND = %q, want s3", name, e["EXPORTD_BLOB_BACKEND"])
		}
		checkHosts(t, p, name, e)
	}
	if env(service(t, p, "exportd-api"))["EXPORTD_PUBLIC_URL"] == "" {
		t.Error("exportd-api: EXPORTD_PUBLIC_URL is not set")
	}

	// The bucket and the key exportd uses are those minio-setup creates.
	setup := env(service(t, p, "minio-setup"))
	worker := env(service(t, p, "exportd-worker"))
	for exportdName, setupName := range map[string]string{
		"EXPORTD_S3_BUCKET":     "S3_BUCKET",
		"EXPORTD_S3_ACCESS_KEY": "S3_ACCESS_KEY",
		"EXPORTD_S3_SECRET_KEY": "S3_SECRET_KEY",
	} {
		if worker[exportdName] != setup[setupName] {
			t.Errorf("exportd-worker %s = %q, but minio-setup sets up %s = %q", exportdName, worker[exportdName], setupName, setup[setupName])
		}
	}
}

// checkHosts checks that the addresses in env name services of the stack
// that the service waits for.
func checkHosts(t *testing.T, p *types.Project, name string, env map[string]string) {
	t.Helper()
	hosts := map[string]string{}
	if u, err := url.Parse(env["EXPORTD_DATABASE_URL"]); err != nil {
		t.Errorf("%s: EXPORTD_DATABASE_URL: %v", name, err)
	} else {
		hosts["EXPORTD_DATABASE_URL"] = u.Hostname()
	}
	for _, k := range []string{"EXPORTD_TEMPORAL_ADDRESS", "EXPORTD_S3_ENDPOINT"} {
		host, _, err := net.SplitHostPort(env[k])
		if err != nil {
			t.Errorf("%s: %s: %v", name, k, err)
		}
		hosts[k] = host
	}
	for k, host := range hosts {
		if _, ok := p.Services[host]; !ok {
			t.Errorf("%s: %s points at %q, which is not a service", name, k, host)
		} else if !dependsOnTransitively(p, name, host) {
			t.Errorf("%s: %s points at %s, which it does not wait for", name, k, host)
		}
	}
}

func dependsOnTransitively(p *types.Project, from, to string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(n string) bool {
		if seen[n] {
			return false
		}
		seen[n] = true
		for dep := range p.Services[n].DependsOn {
			if dep == to || walk(dep) {
				return true
			}
		}
		return false
	}
	return walk(from)
}

func TestComposeVolumes(t *testing.T) {
	p := project(t)
	root := repoRoot(t)
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeBind:
				rel, err := filepath.Rel(root, v.Source)
				if err != nil || strings.HasPrefix(rel, "..") {
					t.Errorf("%s mounts the host path %s; mount from the repository or a named volume", name, v.Source)
				} else if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s: %v", name, rel, err)
				}
				if !v.ReadOnly {
					t.Errorf("%s mounts %s writable; the repository's files are mounted read-only", name, v.Source)
				}
			case types.VolumeTypeVolume:
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s mounts the volume %s, which is not declared", name, v.Source)
				}
			}
		}
	}
	// Scripts the containers run must be readable by every user: the
	// containers run as other users.
	for _, f := range []string{"deploy/postgres/init-databases.sh", "deploy/temporal/setup-schema.sh", "deploy/minio/setup-bucket.sh"} {
		fi, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm()&0o444 != 0o444 {
			t.Errorf("%s is not readable by every user (the containers run as other users)", f)
		}
	}
}

// TestComposeConfigValidates asks Docker Compose itself, where it is
// installed: `docker compose config` reads the file without an engine.
func TestComposeConfigValidates(t *testing.T) {
	root := repoRoot(t)
	var compose []string
	for _, c := range [][]string{{"docker", "compose"}, {"docker-compose"}} {
		if composeV2(c) {
			compose = c
			break
		}
	}
	if compose == nil {
		t.Skip("neither the docker compose plugin nor docker-compose v2 is installed: " +
			"docker-compose.yml was checked by this package's other tests only, not by Compose itself")
	}
	bin, err := exec.LookPath(compose[0])
	require.NoError(t, err)
	args := append(compose[1:], "--project-directory", root, "-f", filepath.Join(root, "docker-compose.yml"), "config", "-q")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "EXPORTD_MASTER_KEY="+strings.Repeat("0", 64))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s config:\n%s", strings.Join(compose, " "), out)
}

// composeV2 reports whether the command (docker compose, or the standalone
// docker-compose) is Compose v2 or later: v1 predates parts of the
// Compose Specification this file uses, such as the top-level name.
func composeV2(c []string) bool {
	bin, err := exec.LookPath(c[0])
	if err != nil {
		return false
	}
	out, err := exec.Command(bin, append(c[1:], "version", "--short")...).Output()
	if err != nil {
		return false
	}
	major, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".")
	n, err := strconv.Atoi(major)
	return err == nil && n >= 2
}

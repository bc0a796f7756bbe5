// Package deploy_test checks the deployment files in deploy/: every YAML and JSON
// file parses, the Kubernetes, Compose, systemd, Redis and Prometheus files say
// what Vigil relies on, and the configurations shipped for Compose and Kubernetes
// load with Vigil's own config loader, given the environment a replica gets.
//
// promtool's checks of the alert rules run in `make deploy-check` (part of
// `make test`); this package checks that every rule has a unit test there.
package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-safety/vigil/internal/config"
)

// The test runs in deploy/ (its package directory).
const (
	composeDir  = "compose"
	k8sDir      = "kubernetes"
	rulesFile   = "prometheus/rules/vigil.rules.yml"
	rulesTest   = "prometheus/rules/vigil.rules.test.yml"
	promConfig  = "prometheus/prometheus.yml"
	redisConf   = "redis/redis.conf"
	systemdUnit = "systemd/vigil.service"
	dashboard   = "grafana/vigil-dashboard.json"
)

// ---------------------------------------------------------------- syntax --

// TestEveryFileParses parses every *.yaml, *.yml and *.json under deploy/, every
// YAML document of multi-document files, and the YAML embedded in ConfigMaps.
func TestEveryFileParses(t *testing.T) {
	var yamlFiles, jsonFiles int
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".yaml", ".yml":
			yamlFiles++
			docs := yamlDocs(t, p)
			if len(docs) == 0 {
				t.Errorf("%s: no YAML document", p)
			}
			for i, doc := range docs {
				checkEmbeddedYAML(t, fmt.Sprintf("%s (document %d)", p, i+1), doc)
			}
		case ".json":
			jsonFiles++
			b := readFile(t, p)
			dec := json.NewDecoder(bytes.NewReader(b))
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Errorf("%s: %v", p, err)
			} else if _, err := dec.Token(); err != io.EOF {
				t.Errorf("%s: data after the JSON value", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Guard against walking the wrong directory and checking nothing.
	if yamlFiles < 10 || jsonFiles < 1 {
		t.Fatalf("found only %d YAML and %d JSON files under deploy/", yamlFiles, jsonFiles)
	}
	t.Logf("parsed %d YAML and %d JSON files", yamlFiles, jsonFiles)
}

// yamlDocs decodes every document of a YAML file, failing the test on any
// syntax error (including a key repeated in one mapping).
func yamlDocs(t *testing.T, p string) []*yaml.Node {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, p)))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Errorf("%s: document %d: %v", p, len(docs)+1, err)
			return docs
		}
		// Decoding into a generic value also catches what the node tree allows,
		// such as a key repeated in one mapping.
		var v any
		if err := n.Decode(&v); err != nil {
			t.Errorf("%s: document %d: %v", p, len(docs)+1, err)
		}
		docs = append(docs, &n)
	}
}

// checkEmbeddedYAML parses the *.yaml / *.yml values of a ConfigMap's data.
func checkEmbeddedYAML(t *testing.T, where string, doc *yaml.Node) {
	t.Helper()
	var cm struct {
		Kind string            `yaml:"kind"`
		Data map[string]string `yaml:"data"`
	}
	if err := doc.Decode(&cm); err != nil || cm.Kind != "ConfigMap" {
		return
	}
	for key, text := range cm.Data {
		if !strings.HasSuffix(key, ".yaml") && !strings.HasSuffix(key, ".yml") {
			continue
		}
		var v any
		if err := yaml.Unmarshal([]byte(text), &v); err != nil {
			t.Errorf("%s: data.%s: %v", where, key, err)
		}
	}
}

// ------------------------------------------------------------ kubernetes --

type k8sMeta struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
}

type k8sDeployment struct {
	Spec struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
				SecurityContext              struct {
					RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
					SeccompProfile struct {
						Type string `yaml:"type"`
					} `yaml:"seccompProfile"`
				} `yaml:"securityContext"`
				Containers []k8sContainer `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name     string `yaml:"name"`
				Key      string `yaml:"key"`
				Optional *bool  `yaml:"optional"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// k8sObjects reads every manifest under deploy/kubernetes, by file.
func k8sObjects(t *testing.T) map[string][]*yaml.Node {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", k8sDir, err)
	}
	out := map[string][]*yaml.Node{}
	for _, f := range files {
		out[filepath.Base(f)] = yamlDocs(t, f)
	}
	return out
}

// k8sFind returns the one object of kind (and name, unless empty) in the
// manifests, decoded into v, and the file it is in.
func k8sFind(t *testing.T, objs map[string][]*yaml.Node, kind, name string, v any) string {
	t.Helper()
	var found []string
	for file, docs := range objs {
		for _, d := range docs {
			var m k8sMeta
			if err := d.Decode(&m); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if m.Kind == kind && (name == "" || m.Metadata.Name == name) {
				found = append(found, file)
				if err := d.Decode(v); err != nil {
					t.Fatalf("%s: %s: %v", file, kind, err)
				}
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s %q in %s, found %d (%v)", kind, name, k8sDir, len(found), found)
	}
	return found[0]
}

func TestKubernetesDeployment(t *testing.T) {
	objs := k8sObjects(t)
	var dep k8sDeployment
	k8sFind(t, objs, "Deployment", "vigil", &dep)
	spec := dep.Spec.Template.Spec

	if dep.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas = %d, want 2", dep.Spec.Replicas)
	}
	if !subset(dep.Spec.Selector.MatchLabels, dep.Spec.Template.Metadata.Labels) || len(dep.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("Deployment selector %v does not select its pods %v", dep.Spec.Selector.MatchLabels, dep.Spec.Template.Metadata.Labels)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	c := spec.Containers[0]

	// Probes: liveness on /healthz (process alive), readiness on /readyz.
	for _, p := range []struct {
		name  string
		probe *k8sProbe
		path  string
	}{{"livenessProbe", c.LivenessProbe, "/healthz"}, {"readinessProbe", c.ReadinessProbe, "/readyz"}} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			t.Errorf("%s: want an httpGet probe on %s", p.name, p.path)
		case p.probe.HTTPGet.Path != p.path:
			t.Errorf("%s path = %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
		case !containerHasPort(c, p.probe.HTTPGet.Port):
			t.Errorf("%s port %v is not a port of the container", p.name, p.probe.HTTPGet.Port)
		}
	}

	// Hardening.
	if !isTrue(spec.SecurityContext.RunAsNonRoot) && !isTrue(c.SecurityContext.RunAsNonRoot) {
		t.Error("runAsNonRoot is not set")
	}
	if !isTrue(c.SecurityContext.ReadOnlyRootFilesystem) {
		t.Error("readOnlyRootFilesystem is not true")
	}
	if c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation is not false")
	}
	if !slices.Contains(c.SecurityContext.Capabilities.Drop, "ALL") {
		t.Errorf("capabilities.drop = %v, want ALL", c.SecurityContext.Capabilities.Drop)
	}
	if spec.SecurityContext.SeccompProfile.Type != "RuntimeDefault" && c.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
		t.Error("seccompProfile is not RuntimeDefault")
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("resources.requests.%s is not set", r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Error("resources.limits.memory is not set")
	}

	// The configuration: the ConfigMap mounted at /etc/vigil, read by the args.
	var cmName string
	for _, m := range c.VolumeMounts {
		if m.MountPath != "/etc/vigil" {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				cmName = v.ConfigMap.Name
			}
		}
	}
	if cmName == "" {
		t.Fatal("no ConfigMap volume is mounted at /etc/vigil")
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	k8sFind(t, objs, "ConfigMap", cmName, &cm)
	if cm.Data["vigil.yaml"] == "" {
		t.Errorf("ConfigMap %s has no vigil.yaml", cmName)
	}
	if !slices.Equal(c.Args, []string{"serve", "--config", "/etc/vigil/vigil.yaml"}) {
		t.Errorf("args = %q, want serve --config /etc/vigil/vigil.yaml", c.Args)
	}

	// Secrets come by secretKeyRef from the Secret of secret.example.yaml.
	secret := k8sSecretExample(t)
	refs := map[string]bool{}
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		refs[e.Name] = true
		if ref.Name != secret.Metadata.Name {
			t.Errorf("env %s: secretKeyRef names Secret %q; secret.example.yaml is %q", e.Name, ref.Name, secret.Metadata.Name)
		}
		if _, ok := secret.StringData[ref.Key]; !ok {
			t.Errorf("env %s: key %q is not in secret.example.yaml", e.Name, ref.Key)
		}
		if isTrue(ref.Optional) {
			t.Errorf("env %s: an optional secret would let Vigil start half-configured", e.Name)
		}
	}
	for _, name := range []string{"VIGIL_REDIS_URL", "VIGIL_TWILIO_ACCOUNT_SID", "VIGIL_TWILIO_AUTH_TOKEN"} {
		if !refs[name] {
			t.Errorf("env %s does not come from the Secret", name)
		}
	}

	// Service and PodDisruptionBudget select the pods.
	var svc struct {
		Spec struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				TargetPort any `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	k8sFind(t, objs, "Service", "", &svc)
	if len(svc.Spec.Selector) == 0 || !subset(svc.Spec.Selector, dep.Spec.Template.Metadata.Labels) {
		t.Errorf("Service selector %v does not select the pods", svc.Spec.Selector)
	}
	for _, p := range svc.Spec.Ports {
		if !containerHasPort(c, p.TargetPort) {
			t.Errorf("Service targetPort %v is not a port of the container", p.TargetPort)
		}
	}
	var pdb struct {
		Spec struct {
			MinAvailable any `yaml:"minAvailable"`
			Selector     struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
		} `yaml:"spec"`
	}
	k8sFind(t, objs, "PodDisruptionBudget", "", &pdb)
	if fmt.Sprint(pdb.Spec.MinAvailable) != "1" {
		t.Errorf("PodDisruptionBudget minAvailable = %v, want 1", pdb.Spec.MinAvailable)
	}
	if len(pdb.Spec.Selector.MatchLabels) == 0 || !subset(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Metadata.Labels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the pods", pdb.Spec.Selector.MatchLabels)
	}
}

type k8sSecret struct {
	k8sMeta    `yaml:",inline"`
	StringData map[string]string `yaml:"stringData"`
}

func k8sSecretExample(t *testing.T) k8sSecret {
	t.Helper()
	docs := yamlDocs(t, filepath.Join(k8sDir, "secret.example.yaml"))
	if len(docs) != 1 {
		t.Fatalf("secret.example.yaml: want one document, got %d", len(docs))
	}
	var s k8sSecret
	if err := docs[0].Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.Kind != "Secret" || len(s.StringData) == 0 {
		t.Fatalf("secret.example.yaml: want a Secret with stringData, got kind %q", s.Kind)
	}
	return s
}

// TestKubernetesKustomization checks that kustomization.yaml lists every
// manifest but the Secret example (applying it would replace the real Secret
// with placeholders), and that the example's values are placeholders.
func TestKubernetesKustomization(t *testing.T) {
	var k struct {
		Resources []string `yaml:"resources"`
	}
	docs := yamlDocs(t, filepath.Join(k8sDir, "kustomization.yaml"))
	if len(docs) != 1 {
		t.Fatal("kustomization.yaml: want one document")
	}
	if err := docs[0].Decode(&k); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	for _, f := range files {
		base := filepath.Base(f)
		listed := slices.Contains(k.Resources, base)
		switch base {
		case "kustomization.yaml":
		case "secret.example.yaml":
			if listed {
				t.Error("kustomization.yaml must not list secret.example.yaml: `kubectl apply -k` would overwrite the real Secret")
			}
		default:
			if !listed {
				t.Errorf("kustomization.yaml does not list %s", base)
			}
		}
	}
	for _, r := range k.Resources {
		if _, err := os.Stat(filepath.Join(k8sDir, r)); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
	for key, v := range k8sSecretExample(t).StringData {
		if !isPlaceholder(v) {
			t.Errorf("secret.example.yaml: %s = %q does not look like a placeholder (want CHANGE-ME or XXXX in it)", key, v)
		}
	}
}

// --------------------------------------------------------------- compose --

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Build       any      `yaml:"build"`
	Image       string   `yaml:"image"`
	Command     any      `yaml:"command"`
	EnvFile     any      `yaml:"env_file"`
	Environment any      `yaml:"environment"`
	Volumes     []string `yaml:"volumes"`
	Healthcheck any      `yaml:"healthcheck"`
	ReadOnly    bool     `yaml:"read_only"`
	CapDrop     []string `yaml:"cap_drop"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	docs := yamlDocs(t, filepath.Join(composeDir, "compose.yaml"))
	if len(docs) != 1 {
		t.Fatalf("compose.yaml: want one document, got %d", len(docs))
	}
	var c composeFile
	if err := docs[0].Decode(&c); err != nil { // resolves the <<: merge keys
		t.Fatal(err)
	}
	return c
}

// vigilServices are the compose services built from the repository's Dockerfile.
func vigilServices(t *testing.T, c composeFile) []string {
	t.Helper()
	var names []string
	for name, s := range c.Services {
		ctx, dockerfile := "", "Dockerfile"
		switch b := s.Build.(type) {
		case nil:
			continue
		case string:
			ctx = b
		case map[string]any:
			ctx, _ = b["context"].(string)
			if d, ok := b["dockerfile"].(string); ok {
				dockerfile = d
			}
		}
		df := filepath.Join(composeDir, ctx, dockerfile)
		if abs, _ := filepath.Abs(df); abs != mustAbs(t, "../Dockerfile") {
			t.Errorf("service %s builds %s, not the repository's Dockerfile", name, df)
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	envExample := readEnvFile(t, filepath.Join(composeDir, "vigil.env.example"))

	vigil := vigilServices(t, c)
	if len(vigil) != 2 {
		t.Fatalf("want two Vigil replicas built from the Dockerfile, got %v", vigil)
	}
	redis, ok := c.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}

	for _, name := range vigil {
		s := c.Services[name]
		env := composeEnv(t, s.Environment, envExample)
		u, err := url.Parse(env["VIGIL_REDIS_URL"])
		if err != nil || u.Scheme != "redis" || u.Hostname() != "redis" {
			t.Errorf("%s: VIGIL_REDIS_URL = %q, want redis://...@redis:6379/...", name, env["VIGIL_REDIS_URL"])
		}
		if !slices.Contains(stringList(s.EnvFile), "vigil.env") {
			t.Errorf("%s: env_file = %v, want vigil.env", name, s.EnvFile)
		}
		if !slices.Contains(s.Volumes, "./vigil.yaml:/etc/vigil/vigil.yaml:ro") {
			t.Errorf("%s: vigil.yaml is not mounted read-only at /etc/vigil/vigil.yaml: %v", name, s.Volumes)
		}
		if cmd := strings.Join(stringList(s.Command), " "); cmd != "serve --config /etc/vigil/vigil.yaml" {
			t.Errorf("%s: command = %q", name, cmd)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: want read_only: true and cap_drop: [ALL]", name)
		}
		// Distroless: nothing in the image could run a healthcheck.
		if s.Healthcheck != nil {
			t.Errorf("%s: a healthcheck cannot run in the distroless image", name)
		}
	}

	// Redis: redis.conf and a named volume for /data.
	checkMounts(t, "redis", c, redis.Volumes)
	if !hasMount(redis.Volumes, "../redis/redis.conf", "/usr/local/etc/redis/redis.conf") {
		t.Errorf("redis: ../redis/redis.conf is not mounted: %v", redis.Volumes)
	}
	if !slices.Contains(stringList(redis.Command), "/usr/local/etc/redis/redis.conf") {
		t.Errorf("redis: command %v does not read redis.conf", redis.Command)
	}
	if !hasNamedVolumeAt(c, redis.Volumes, "/data") {
		t.Errorf("redis: no named volume at /data: %v", redis.Volumes)
	}

	// Prometheus: its config and the rules, where the config looks for them.
	prom, ok := c.Services["prometheus"]
	if !ok {
		t.Fatal("no prometheus service")
	}
	checkMounts(t, "prometheus", c, prom.Volumes)
	if !hasMount(prom.Volumes, "../prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml") {
		t.Errorf("prometheus: prometheus.yml is not mounted at /etc/prometheus/prometheus.yml: %v", prom.Volumes)
	}
	pc := loadPromConfig(t)
	for _, rf := range pc.RuleFiles {
		dir := path.Dir(path.Join("/etc/prometheus", rf))
		if !hasMount(prom.Volumes, "../prometheus/"+path.Dir(rf), dir) {
			t.Errorf("prometheus: rule_files %q: ../prometheus/%s is not mounted at %s", rf, path.Dir(rf), dir)
		}
	}
	var targets []string
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName != "vigil" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	slices.Sort(targets)
	var want []string
	for _, name := range vigil {
		want = append(want, name+":8080")
	}
	if !slices.Equal(targets, want) {
		t.Errorf("prometheus.yml: job vigil scrapes %v, want every replica: %v", targets, want)
	}

	// vigil.env holds secrets: git must ignore it.
	if !slices.Contains(strings.Fields(string(readFile(t, filepath.Join(composeDir, ".gitignore")))), "vigil.env") {
		t.Error("compose/.gitignore does not list vigil.env")
	}
	for k, v := range envExample {
		if !isPlaceholder(v) {
			t.Errorf("vigil.env.example: %s = %q does not look like a placeholder (want CHANGE-ME or XXXX in it)", k, v)
		}
	}
}

// checkMounts checks that every bind mount's source exists and every named
// volume is declared.
func checkMounts(t *testing.T, service string, c composeFile, volumes []string) {
	t.Helper()
	for _, v := range volumes {
		src, _, _ := strings.Cut(v, ":")
		if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
			if _, err := os.Stat(filepath.Join(composeDir, src)); err != nil {
				t.Errorf("%s: mount %q: %v", service, v, err)
			}
		} else if _, ok := c.Volumes[src]; !ok {
			t.Errorf("%s: volume %q is not declared under volumes:", service, src)
		}
	}
}

func hasMount(volumes []string, src, dst string) bool {
	return slices.ContainsFunc(volumes, func(v string) bool {
		parts := strings.Split(v, ":")
		return len(parts) >= 2 && parts[0] == src && parts[1] == dst
	})
}

func hasNamedVolumeAt(c composeFile, volumes []string, dst string) bool {
	return slices.ContainsFunc(volumes, func(v string) bool {
		parts := strings.Split(v, ":")
		_, named := c.Volumes[parts[0]]
		return len(parts) >= 2 && named && parts[1] == dst
	})
}

// composeEnv is a service's environment, with ${VAR}, ${VAR:?msg} and
// ${VAR:-default} substituted from vars, as `docker compose --env-file` does.
func composeEnv(t *testing.T, environment any, vars map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	switch e := environment.(type) {
	case map[string]any:
		for k, v := range e {
			env[k] = fmt.Sprint(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			env[k] = v
		}
	}
	for k, v := range env {
		env[k] = interpolate(t, v, vars)
	}
	return env
}

var interpolation = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

func interpolate(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	return interpolation.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		g := interpolation.FindStringSubmatch(m)
		v, ok := vars[g[1]]
		switch {
		case ok && v != "":
			return v
		case strings.HasSuffix(g[2], "-"):
			return g[3]
		case strings.HasSuffix(g[2], "?"):
			t.Errorf("compose: %s is required (%s) and not in vigil.env.example", g[1], g[3])
		}
		return ""
	})
}

// readEnvFile reads a KEY=value file as compose does (no quotes, # comments).
func readEnvFile(t *testing.T, p string) map[string]string {
	t.Helper()
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, p)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`).MatchString(k) {
			t.Errorf("%s:%d: want KEY=value, got %q", p, n, line)
			continue
		}
		vars[k] = v
	}
	return vars
}

// ---------------------------------------------------------------- config --

// TestShippedConfigsLoad loads the configuration of each deployment with Vigil's
// own loader (config.Load), given the environment its replicas get: for
// Kubernetes the Deployment's env with the Secret example's values, for Compose
// the service's environment and vigil.env.example.
func TestShippedConfigsLoad(t *testing.T) {
	t.Run("kubernetes", func(t *testing.T) {
		objs := k8sObjects(t)
		var dep k8sDeployment
		k8sFind(t, objs, "Deployment", "vigil", &dep)
		var cm struct {
			Data map[string]string `yaml:"data"`
		}
		k8sFind(t, objs, "ConfigMap", "vigil-config", &cm)
		secret := k8sSecretExample(t)
		var env []string
		for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
			v := e.Value
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				v = secret.StringData[e.ValueFrom.SecretKeyRef.Key]
			}
			env = append(env, e.Name+"="+v)
		}
		p := filepath.Join(t.TempDir(), "vigil.yaml")
		if err := os.WriteFile(p, []byte(cm.Data["vigil.yaml"]), 0o600); err != nil {
			t.Fatal(err)
		}
		checkDeployedConfig(t, p, env)
	})

	t.Run("compose", func(t *testing.T) {
		c := loadCompose(t)
		vars := readEnvFile(t, filepath.Join(composeDir, "vigil.env.example"))
		for _, name := range vigilServices(t, c) {
			var env []string
			for k, v := range vars { // env_file: vigil.env
				env = append(env, k+"="+v)
			}
			for k, v := range composeEnv(t, c.Services[name].Environment, vars) { // environment: wins
				env = append(env, k+"="+v)
			}
			checkDeployedConfig(t, filepath.Join(composeDir, "vigil.yaml"), env)
		}
	})
}

func checkDeployedConfig(t *testing.T, p string, env []string) {
	t.Helper()
	cfg, err := config.Load(p, env)
	if err != nil {
		t.Fatalf("config.Load(%s):\n%v", p, err)
	}
	if cfg.Listen != "0.0.0.0:8080" {
		t.Errorf("listen = %q, want 0.0.0.0:8080 (reachable from outside the container)", cfg.Listen)
	}
	if cfg.Redis.Embedded() {
		t.Error("no Redis configured: the embedded store keeps nothing across a restart")
	}
	if cfg.Twilio.Console() {
		t.Error("no Twilio credentials: messages would only be printed")
	}
	if !cfg.Twilio.ValidateSignatures {
		t.Error("twilio.validate_signatures is off")
	}
	if !strings.HasPrefix(cfg.PublicURL, "https://") {
		t.Errorf("public_url = %q, want https://", cfg.PublicURL)
	}
	if len(cfg.Directory.Schools) == 0 {
		t.Error("the directory has no school")
	}
}

// ------------------------------------------------------------ prometheus --

type promConfigFile struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func loadPromConfig(t *testing.T) promConfigFile {
	t.Helper()
	var pc promConfigFile
	if err := yaml.Unmarshal(readFile(t, promConfig), &pc); err != nil {
		t.Fatal(err)
	}
	return pc
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRules checks what promtool does not: every alert has a severity, a
// summary and a description, and a unit test in which it fires and one in
// which it stays quiet; and the Prometheus config loads the rules file.
func TestAlertRules(t *testing.T) {
	var rf ruleFile
	if err := yaml.Unmarshal(readFile(t, rulesFile), &rf); err != nil {
		t.Fatal(err)
	}
	var tf struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, rulesTest), &tf); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tf.RuleFiles, path.Base(rulesFile)) {
		t.Errorf("%s does not test %s (rule_files: %v)", rulesTest, rulesFile, tf.RuleFiles)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}

	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity = %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			if !fires[r.Alert] {
				t.Errorf("%s: no unit test in which it fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("%s: no unit test in which it stays quiet", r.Alert)
			}
		}
	}
	for _, want := range []string{
		"VigilDown", "VigilAbsent", "VigilSchedulerStalled", "VigilTimersLate", "VigilNotificationsFailing",
		"VigilAlertUnacknowledged", "VigilRedisUnreachable", "VigilOfficerUnreachableBySMS", "VigilOutboxBacklog",
	} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
	for _, name := range slices.Concat(slices.Collect(maps.Keys(fires)), slices.Collect(maps.Keys(quiet))) {
		if !alerts[name] {
			t.Errorf("%s tests alert %s, which is not in %s", rulesTest, name, rulesFile)
		}
	}

	pc := loadPromConfig(t)
	matched := false
	for _, rf := range pc.RuleFiles {
		ok, err := filepath.Match(filepath.Join(filepath.Dir(promConfig), rf), rulesFile)
		if err != nil {
			t.Errorf("prometheus.yml rule_files %q: %v", rf, err)
		}
		matched = matched || ok
	}
	if !matched {
		t.Errorf("prometheus.yml rule_files %v do not load %s", pc.RuleFiles, rulesFile)
	}
}

// pendingMetrics are metrics the rules and dashboard may name before Vigil
// exports them (a rule written ahead of the code, with a fallback). None now:
// remove a name as soon as Vigil exports it.
var pendingMetrics = map[string]bool{}

// TestMetricNamesExist checks that every vigil_* metric the rules and the
// dashboard use is one Vigil registers (a renamed metric would otherwise make
// an alert silently never fire).
func TestMetricNamesExist(t *testing.T) {
	defined := map[string]bool{}
	def := regexp.MustCompile(`Name:\s*"(vigil_[a-z0-9_]+)"`)
	err := filepath.WalkDir("../internal", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		for _, m := range def.FindAllStringSubmatch(string(readFile(t, p)), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(defined) == 0 {
		t.Fatal(`found no metric definitions (Name: "vigil_...") under internal/`)
	}
	use := regexp.MustCompile(`\bvigil_[a-z0-9_]+`)
	for _, f := range []string{rulesFile, rulesTest, dashboard} {
		for _, name := range use.FindAllString(string(readFile(t, f)), -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && defined[b] {
					base = b
				}
			}
			if !defined[base] && !pendingMetrics[base] {
				t.Errorf("%s uses %s, which Vigil does not export (nor is it in pendingMetrics)", f, name)
			}
		}
	}
}

// ---------------------------------------------------------------- grafana --

func TestDashboard(t *testing.T) {
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readFile(t, dashboard), &d); err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("dashboard has no title or uid")
	}
	var exprs []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"vigil_visits_open", "vigil_alerts_total", "vigil_alert_ack_seconds_bucket", "vigil_notifications_total",
		"vigil_timer_lateness_seconds_bucket", "vigil_scheduler_last_tick_timestamp_seconds", "vigil_outbox_depth",
		"vigil_alert_oldest_unacked_seconds", "vigil_redis_up", "vigil_delivery_failures_total",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no dashboard panel shows %s", want)
		}
	}
}

// ---------------------------------------------------------------- systemd --

func TestSystemdUnit(t *testing.T) {
	unit := map[string][]string{} // "Section.Key" → values
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, systemdUnit)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Errorf("%s:%d: not Key=value in a [Section]: %q", systemdUnit, n, line)
				continue
			}
			unit[section+"."+k] = append(unit[section+"."+k], v)
		}
	}
	for key, want := range map[string]string{
		"Service.ExecStart":               "/usr/local/bin/vigil serve --config /etc/vigil/vigil.yaml",
		"Service.ExecReload":              "/bin/kill -HUP $MAINPID",
		"Service.EnvironmentFile":         "-/etc/vigil/vigil.env",
		"Service.Restart":                 "on-failure",
		"Service.RestartSec":              "2",
		"Service.DynamicUser":             "yes",
		"Service.ProtectSystem":           "strict",
		"Service.ProtectHome":             "yes",
		"Service.PrivateTmp":              "yes",
		"Service.NoNewPrivileges":         "yes",
		"Service.CapabilityBoundingSet":   "",
		"Service.RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"Unit.StartLimitIntervalSec":      "0",
		"Install.WantedBy":                "multi-user.target",
	} {
		if got, ok := unit[key]; !ok || !slices.Contains(got, want) {
			t.Errorf("%s: %s = %q, want %q", systemdUnit, key, got, want)
		}
	}
	if v := unit["Service.TimeoutStopSec"]; len(v) == 0 {
		t.Errorf("%s: no TimeoutStopSec", systemdUnit)
	} else if d, err := time.ParseDuration(v[0] + "s"); err != nil || d < 15*time.Second {
		t.Errorf("%s: TimeoutStopSec = %q: want at least 15 (seconds) for a graceful stop", systemdUnit, v[0])
	}

	// systemd-analyze knows every directive: it reports a misspelt one, which
	// systemd itself would only log and ignore.
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not found: directive names not checked")
		return
	}
	dir := t.TempDir()
	unitText := strings.ReplaceAll(string(readFile(t, systemdUnit)), "/usr/local/bin/vigil", "/bin/true")
	p := filepath.Join(dir, "vigil.service")
	if err := os.WriteFile(p, []byte(unitText), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", p).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", systemdUnit, err, out)
	}
}

// ------------------------------------------------------------------ redis --

func TestRedisConf(t *testing.T) {
	directives := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, redisConf)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		directives[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	for k, want := range map[string]string{
		"appendonly":                "yes",
		"appendfsync":               "everysec",
		"maxmemory-policy":          "noeviction",
		"protected-mode":            "yes",
		"no-appendfsync-on-rewrite": "no",
	} {
		if directives[k] != want {
			t.Errorf("%s: %s = %q, want %q", redisConf, k, directives[k], want)
		}
	}
	if directives["bind"] == "" {
		t.Errorf("%s: no bind", redisConf)
	}
	if _, ok := directives["requirepass"]; ok {
		t.Errorf("%s: requirepass is set: the password must not be committed", redisConf)
	}

	// Redis itself refuses a file it does not understand: start it on the file.
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not found (CI is set): cannot check redis.conf")
		}
		t.Skip("redis-server not found: redis.conf not loaded by Redis")
	}
	dir := t.TempDir()
	text := regexp.MustCompile(`(?m)^dir .*$`).ReplaceAllString(string(readFile(t, redisConf)), "dir "+dir)
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "redis.sock")
	var log bytes.Buffer
	cmd := exec.Command(bin, conf, "--port", "0", "--unixsocket", sock, "--requirepass", "test")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	deadline := time.After(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return // Redis accepted the file and is serving
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("redis-server refused %s: %v\n%s", redisConf, err, log.String())
		case <-deadline:
			t.Fatalf("redis-server did not start on %s within 10 s\n%s", redisConf, log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ---------------------------------------------------------------- helpers --

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func isTrue(b *bool) bool { return b != nil && *b }

// isPlaceholder reports whether an example secret is visibly not a real one.
func isPlaceholder(v string) bool {
	return strings.Contains(v, "CHANGE-ME") || strings.Contains(v, "XXXX")
}

func subset(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return true
}

func containerHasPort(c k8sContainer, port any) bool {
	for _, p := range c.Ports {
		if fmt.Sprint(port) == p.Name || fmt.Sprint(port) == fmt.Sprint(p.ContainerPort) {
			return true
		}
	}
	return false
}

func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		var out []string
		for _, s := range v {
			out = append(out, fmt.Sprint(s))
		}
		return out
	}
	return nil
}
